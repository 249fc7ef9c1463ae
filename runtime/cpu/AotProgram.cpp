#include "runtime/cpu/AotProgram.h"

#include "runtime/Error.h"
#include "runtime/ProgramFile.h"

namespace kiln {
namespace cpu {

Executable loadEmbeddedProgram(const char *image, int64_t imageSize, const KernelFunction *kernels,
                               int64_t kernelCount) {
  if (!image || imageSize < 0 || (kernelCount > 0 && !kernels))
    throwError("embedded program", "no program image or kernel table");
  Program program = parseProgram(std::string(image, size_t(imageSize)), "embedded program");
  int64_t k = 0;
  for (Step &step : program.steps)
    if (step.kind == StepKind::Kernel) {
      if (k >= kernelCount)
        throwError("embedded program", "more kernel steps than the " + std::to_string(kernelCount) +
                                           " kernels of the object");
      step.kernel = kernels[k++];
    }
  if (k != kernelCount)
    throwError("embedded program", std::to_string(k) + " kernel steps but " +
                                       std::to_string(kernelCount) + " kernels in the object");
  return Executable(std::move(program));
}

void initializeArguments(Executable &executable, uint64_t seed) {
  for (const ArgumentSpec &arg : executable.program().arguments)
    executable.setArgument(arg.name, initialArgumentValue(arg.name, arg.dtype, arg.shape, arg.init, seed));
}

} // namespace cpu
} // namespace kiln
