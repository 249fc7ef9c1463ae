// A Program as bytes: what an AOT object file embeds so that the runtime can
// rebuild the Program without the IR. The image is JSON ("format":
// "kiln.program", a version number); kernel steps carry no function pointer:
// the k-th kernel step runs entry k of the object's kernel table.
#pragma once

#include "runtime/Program.h"

#include <string>

namespace kiln {

/// The format version serializeProgram writes and parseProgram accepts.
inline constexpr int kProgramFileVersion = 1;

/// The image of `program` (kernel function pointers are not part of it).
std::string serializeProgram(const Program &program);

/// Rebuilds a Program from an image. Every field is checked for presence,
/// type and range (enums, dtypes, non-negative sizes, argument indices) and
/// the version must be kProgramFileVersion; a defect is a kiln::Error naming
/// `displayName` and the field. Buffer bounds and step layouts are checked
/// later, by the Executable that runs it. Kernel steps get no function.
Program parseProgram(const std::string &image, const std::string &displayName);

} // namespace kiln
