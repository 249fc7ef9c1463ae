#include "compiler/CpuBackend.h"

#include "codegen/ProgramLowering.h"
#include "codegen/cpu/CpuCodegen.h"
#include "ir/Graph.h"
#include "ir/Verifier.h"
#include "runtime/Error.h"
#include "runtime/Program.h"
#include "runtime/ProgramFile.h"
#include "runtime/cpu/Executable.h"


namespace kiln {

bool cpuBackendAvailable() { return true; }

namespace {

/// The kernel request for `node`, whose step has its buffers: which operands
/// share a result's buffer (in place) and whether any overlap otherwise.
KernelRequest kernelRequest(const Node &node, const Step &step, std::string name) {
  KernelRequest request{&node, std::move(name), {}, false, {}};
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
      request.overlappedOperands.resize(results.size());
      request.overlappedOperands[r].push_back(i);
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

/// The shared Program lowering, and a kernel request per kernel step.
Program lower(const Graph &planned, std::vector<KernelRequest> &requests) {
  std::vector<const Node *> kernelNodes;
  Program program = lowerToProgram(planned, "CPU", kernelNodes);
  for (const Step &step : program.steps)
    if (step.kind == StepKind::Kernel)
      requests.push_back(kernelRequest(*kernelNodes[requests.size()], step,
                                       "kiln_kernel_" + std::to_string(requests.size())));
  return program;
}

/// Sets each kernel step's iteration count and cost from its kernel's schedule.
void applySchedules(Program &program, const std::vector<KernelSchedule> &schedules) {
  size_t k = 0;
  for (Step &step : program.steps)
    if (step.kind == StepKind::Kernel) {
      step.iterations = schedules.at(k).iterations;
      step.iterationCost = schedules.at(k++).iterationCost;
    }
}

} // namespace

std::unique_ptr<CpuCompiled> compileForCpu(const Graph &planned) {
  std::vector<KernelRequest> requests;
  Program program = lower(planned, requests);
  auto compiled = std::make_unique<CpuCompiled>();
  compiled->kernels = compileCpuKernels(requests);
  compiled->mlir = compiled->kernels->mlir();
  applySchedules(program, compiled->kernels->schedules());
  size_t k = 0;
  for (Step &step : program.steps)
    if (step.kind == StepKind::Kernel)
      step.kernel = compiled->kernels->function(requests[k++].name);
  compiled->executable = std::make_shared<cpu::Executable>(std::move(program));
  return compiled;
}

CpuAotCompiled compileForCpuAot(const Graph &planned, CpuCodeOptions options) {
  std::vector<KernelRequest> requests;
  CpuAotCompiled compiled;
  compiled.program = lower(planned, requests);
  for (const Step &step : compiled.program.steps)
    if (step.kind == StepKind::Kernel)
      compiled.kernelSteps.push_back(step.name);
  options.programData = [&](const std::vector<KernelSchedule> &schedules) {
    Program program = compiled.program;
    applySchedules(program, schedules);
    return serializeProgram(program);
  };
  compiled.code = generateCpuCode(requests, options);
  applySchedules(compiled.program, compiled.code.schedules);
  return compiled;
}

} // namespace kiln
