// A Program for the GPU: the runtime steps, how each kernel is launched, and
// the compiled modules that define the kernels. Produced by codegen/cuda and
// compiler/CudaBackend, run by runtime/cuda/Executable.h.
#pragma once

#include "runtime/Program.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

/// How a kernel is launched: a 1-D grid of 1-D blocks. Shared memory is
/// static (declared in the source), so `sharedBytes` is the dynamic amount: 0.
struct CudaLaunch {
  std::string kernel; // extern "C" name; empty: the step launches no kernel (matmul, copy)
  int64_t grid = 0, block = 0, sharedBytes = 0;
  /// Every pointer argument must be a multiple of this many bytes (16: the
  /// kernel loads and stores float4/int4); the Executable checks it.
  int64_t alignment = 1;
  /// How many pointers the kernel takes (its operands, then its results);
  /// the Executable checks the step passes as many.
  int64_t parameters = 0;
};

/// One translation unit of kernels: its CUDA C++ (code generation), then
/// NVRTC's output for it (compileForCuda fills `cubin` and `ptx`).
struct CudaModule {
  std::string name;                 // "kiln_module_0"
  std::string source;               // cudaPreamble() + the kernels' sources
  std::vector<std::string> kernels; // the extern "C" names it defines
  std::string cubin;                // for one compute capability; empty: not compiled (or PTX only)
  std::string ptx;
};

/// A graph lowered for the GPU: the runtime Program (steps over the planned
/// buffers; `Step::kernel` stays null), per step its launch (empty for
/// matmul, which runs through cuBLASLt with `Step::matmul`, and for copies),
/// and the modules holding every kernel.
struct CudaProgram {
  Program program;
  std::vector<CudaLaunch> launches; // one per program.steps entry
  std::vector<CudaModule> modules;
  /// Per kernel, in launch order: its strategy ("loop", "row", "library").
  std::vector<std::string> strategies;
};

} // namespace kiln
