// The symbols and the C header of a program compiled ahead of time.
#pragma once

#include "runtime/Program.h"

#include <string>

namespace kiln {
namespace cpu {

/// An AOT object of the program named `api` (a C identifier) defines, with
/// PREFIX = `kiln_<api>`: PREFIX_program (the image, runtime/ProgramFile.h),
/// PREFIX_program_size (int64), PREFIX_kernels (the kernels' addresses, in
/// kernel-step order) and PREFIX_kernel_count (int64). A standalone
/// executable's object uses the api name `aot` (runtime/cpu/AotMain.cpp).
std::string aotSymbolPrefix(const std::string &api);

/// NAME.h of `kiln compile --emit=obj`: the C API (runtime/cpu/AotApi.h),
/// the object's symbols, `kiln_<api>_create(seed)`, and the program's
/// arguments and results with their types as comments.
std::string aotHeader(const std::string &api, const Program &program);

} // namespace cpu
} // namespace kiln
