// Loading a module from a file in either form, chosen by extension.
#pragma once

#include <string>

namespace kiln {

struct Module;

/// Reads `path`: `.json` files through the JSON reader, anything else as
/// `.kir` text; `-` reads standard input (JSON when it starts with `{`, else `.kir`). Verified.
Module loadModuleFile(const std::string &path);

/// Reads all of standard input.
std::string readStdin();

} // namespace kiln
