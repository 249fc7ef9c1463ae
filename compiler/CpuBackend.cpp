#include "compiler/CpuBackend.h"

#include "codegen/ProgramLowering.h"
#include "codegen/cpu/CpuCodegen.h"
#include "ir/Graph.h"
#include "ir/Verifier.h"
#include "runtime/Error.h"
#include "runtime/Program.h"
#include "runtime/cpu/Executable.h"

#include <unordered_map>

namespace kiln {

bool cpuBackendAvailable() { return true; }

namespace {

/// The kernel request for `node`, whose step has its buffers: which operands
/// share a result's buffer (in place) and whether any overlap otherwise.
KernelRequest kernelRequest(const Node &node, const Step &step, std::string name) {
  KernelRequest request{&node, std::move(name), {}, false};
  std::vector<BufferRef> results{step.result};
  results.insert(results.end(), step.extraResults.begin(), step.extraResults.end());
  std::vector<const Value *> resultValues{node.result()};
  if (const Graph *body = node.body())
    resultValues.assign(body->results().begin(), body->results().end());
  for (size_t i = 0; i < step.operands.size(); ++i) {
    const BufferRef &a = step.operands[i];
    int shared = -1;
    for (size_t r = 0; r < results.size(); ++r) {
      const BufferRef &b = results[r];
      bool sameSpace = a.space == b.space && (a.space == BufferRef::Space::Arena || a.argument == b.argument);
      if (!sameSpace || a.offset + a.bytes <= b.offset || b.offset + b.bytes <= a.offset)
        continue; // disjoint
      bool exact = a.offset == b.offset && a.bytes == b.bytes && r < resultValues.size() &&
                   node.operand(i)->type.dtype == resultValues[r]->type.dtype;
      if (exact && shared < 0)
        shared = int(r);
      else
        request.overlapping = true;
    }
    request.inPlace.push_back(shared);
  }
  return request;
}

} // namespace

std::unique_ptr<CpuCompiled> compileForCpu(const Graph &planned) {
  std::vector<const Node *> kernelNodes;
  Program program = lowerToProgram(planned, "CPU", kernelNodes);
  std::vector<KernelRequest> requests;
  for (const Step &step : program.steps)
    if (step.kind == StepKind::Kernel)
      requests.push_back(kernelRequest(*kernelNodes[requests.size()], step,
                                       "kiln_kernel_" + std::to_string(requests.size())));
  auto compiled = std::make_unique<CpuCompiled>();
  compiled->kernels = compileCpuKernels(requests);
  compiled->mlir = compiled->kernels->mlir();
  size_t k = 0;
  for (Step &step : program.steps)
    if (step.kind == StepKind::Kernel) {
      const KernelSchedule &schedule = compiled->kernels->schedule(k);
      step.iterations = schedule.iterations;
      step.iterationCost = schedule.iterationCost;
      step.kernel = compiled->kernels->function(requests[k++].name);
    }
  compiled->executable = std::make_shared<cpu::Executable>(std::move(program));
  return compiled;
}

} // namespace kiln
