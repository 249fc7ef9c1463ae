// The CUDA backend's compile side: a planned graph -> CUDA C++ kernels ->
// NVRTC cubin/PTX, which runtime/cuda/Executable.h runs.
#pragma once

#include "runtime/cuda/Executable.h"

#include <memory>
#include <string>
#include <vector>

namespace kiln {

class Graph;
struct CudaProgram;

/// A graph compiled for the GPU: the CudaProgram (steps, launches, modules,
/// each module with NVRTC's cubin for `arch` and PTX).
struct CudaCompiled {
  std::shared_ptr<CudaProgram> program;
};

/// Lowers a graph on which `plan-memory` ran and compiles every kernel with
/// NVRTC for `arch` ("sm_90", "sm_80": cubin and PTX), modules in parallel,
/// through the disk cache ($KILN_CACHE_DIR, else ~/.cache/kiln). Throws kiln::Error
/// for an op the backend cannot compile or NVRTC's log when a kernel fails,
/// and when this build has no CUDA backend.
CudaCompiled compileForCuda(const Graph &planned, const std::string &arch = "sm_90");

/// Compiles a graph on which `plan-memory` ran for `device` (NVRTC for its
/// compute capability, through the disk cache) and loads it there: the
/// executable of a GPU training step or forward pass. kiln::Error as
/// compileForCuda, and for the device's failures (out of memory, no driver).
std::unique_ptr<cuda::Executable> compileCudaExecutable(const Graph &planned, std::shared_ptr<cuda::Device> device,
                                                        cuda::ExecutableOptions options = {});

/// The kernels as one text: `what` "cuda" (the CUDA C++ of every module) or
/// "ptx" (NVRTC's PTX of every module).
std::string cudaText(const CudaCompiled &compiled, const std::string &what);

/// Writes one file per kernel into `dir` (created if missing):
/// `cuda.NN.<kernel>.cu` (its source, compilable alone: preamble included)
/// and `cuda.program.txt` (each step: kind, kernel, grid, block); plus
/// `cuda.<module>.ptx` per module.
void dumpCudaKernels(const CudaCompiled &compiled, const std::string &dir);

/// True when this build has the CUDA code generator (the CUDA toolkit was found).
bool cudaBackendAvailable();

} // namespace kiln
