// What the example programs' main functions share: the error handling and the
// number options.
#pragma once

#include "tools/CommandLine.h"

#include <string>

namespace kiln::examples {

/// Calls `run(argc, argv)` and returns its exit code; a kiln::Error is printed
/// as its one line (`TOOL: error: ...`), an exception as such, and both
/// return `errorCode` (the examples 2; the bench tools 1).
int exampleMain(const char *tool, int (*run)(int, char **), int argc, char **argv, int errorCode = 2);

/// Option `name` as a number in (0, 1e6] (with `zeroAllowed`, [0, 1e6]), or
/// `fallback` when absent; a kiln::Error otherwise.
double numberOption(const CommandLine &cl, const std::string &name, double fallback,
                    bool zeroAllowed = false);

} // namespace kiln::examples
