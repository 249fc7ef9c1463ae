// Built when KILN_ENABLE_CUDA is OFF: the CUDA target reports itself missing.
#include "compiler/CudaBackend.h"

#include "runtime/Error.h"

namespace kiln {

bool cudaBackendAvailable() { return false; }

CudaCompiled compileForCuda(const Graph &, const std::string &) {
  throwError("", "this build has no CUDA backend (the CUDA toolkit was not found; configure with "
                 "-DKILN_ENABLE_CUDA=ON)");
}

std::unique_ptr<cuda::Executable> compileCudaExecutable(const Graph &, std::shared_ptr<cuda::Device>,
                                                        cuda::ExecutableOptions) {
  throwError("", "this build has no CUDA backend (the CUDA toolkit was not found; configure with "
                 "-DKILN_ENABLE_CUDA=ON)");
}

std::string cudaText(const CudaCompiled &, const std::string &) { return ""; }

void dumpCudaKernels(const CudaCompiled &, const std::string &) {}

} // namespace kiln
