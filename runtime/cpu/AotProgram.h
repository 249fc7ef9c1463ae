// The runtime side of ahead-of-time compilation: a program embedded in an
// object file (`kiln compile --target=cpu`, `--emit=obj`) back to an Executable.
#pragma once

#include "runtime/cpu/Executable.h"

#include <cstdint>

namespace kiln {
namespace cpu {

/// The Executable of an embedded program: its image (runtime/ProgramFile.h)
/// and its kernel table, the k-th kernel step running `kernels[k]`. A defect
/// of the image, or a table of another size than the kernel steps, is a
/// kiln::Error.
Executable loadEmbeddedProgram(const char *image, int64_t imageSize, const KernelFunction *kernels,
                               int64_t kernelCount);

/// Sets every argument to its value under `seed` (runtime/ArgumentInit.h):
/// params and state from their initializer, inputs as seeded random feeds or
/// their default; the values `kiln run --seed` gives them.
void initializeArguments(Executable &executable, uint64_t seed);

} // namespace cpu
} // namespace kiln
