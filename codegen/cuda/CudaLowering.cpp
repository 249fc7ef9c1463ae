// A planned graph -> CudaProgram: the shared Program lowering, then one
// generated kernel per kernel step and per library step other than matmul,
// batched into translation units.
#include "codegen/ProgramLowering.h"
#include "codegen/cuda/CudaCodegen.h"

namespace kiln {

CudaProgram lowerForCuda(const Graph &planned, size_t kernelsPerModule) {
  CudaProgram out;
  std::vector<const Node *> kernelNodes;
  out.program = lowerToProgram(planned, "CUDA", kernelNodes);
  std::vector<CudaKernel> kernels;
  size_t nextNode = 0;
  for (const Step &step : out.program.steps) {
    CudaLaunch launch;
    std::string name = "kiln_kernel_" + std::to_string(kernels.size());
    if (step.kind == StepKind::Kernel)
      kernels.push_back(generateCudaKernel(*kernelNodes[nextNode++], name));
    else if (step.kind != StepKind::Matmul && step.kind != StepKind::Copy)
      kernels.push_back(generateLibraryKernel(step, name));
    if (!kernels.empty() && kernels.back().launch.kernel == name) {
      launch = kernels.back().launch;
      out.strategies.push_back(kernels.back().strategy);
    }
    out.launches.push_back(launch);
  }
  kernelsPerModule = std::max<size_t>(kernelsPerModule, 1);
  for (size_t first = 0; first < kernels.size(); first += kernelsPerModule) {
    CudaModule module;
    module.name = "kiln_module_" + std::to_string(out.modules.size());
    module.source = cudaPreamble();
    for (size_t k = first; k < std::min(kernels.size(), first + kernelsPerModule); ++k) {
      module.source += "\n" + kernels[k].source;
      module.kernels.push_back(kernels[k].launch.kernel);
    }
    out.modules.push_back(std::move(module));
  }
  return out;
}

} // namespace kiln
