// Parsing the `.kir` text form (syntax: docs/ir.md).
#pragma once

#include <string>
#include <vector>

namespace kiln {

struct Module;

/// Parses and verifies every graph in `text`. `fileName` and `firstLine` locate
/// messages (`file:line:col: error: ...`); any mistake throws `kiln::Error`.
Module parseModule(const std::string &text, const std::string &fileName, int firstLine = 1);

/// One chunk of a file split at lines `// -----`, with the line it starts on.
struct InputChunk {
  std::string text;
  int firstLine;
};
std::vector<InputChunk> splitInputFile(const std::string &text);

} // namespace kiln
