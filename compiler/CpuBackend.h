// The CPU backend: a planned graph -> a runtime Program with JIT kernels, or
// ahead of time with its kernels' code.
#pragma once

#include "codegen/cpu/CpuCodegen.h"

#include <memory>
#include <string>
#include <vector>

namespace kiln {

class Graph;
class CpuKernels;
namespace cpu {
class Executable;
}
struct Program;

/// A graph compiled for the CPU: the generated kernels and the executable
/// that calls them (declared after them, so destroyed first). shared_ptr,
/// so that code without the backend's headers may hold one.
struct CpuCompiled {
  std::shared_ptr<CpuKernels> kernels;
  std::shared_ptr<cpu::Executable> executable;
  std::string mlir; // the kernels' MLIR before lowering
};

/// Lowers a graph on which `plan-memory` ran (every node has a `buffer`) to
/// a Program: one generated kernel per fusion or non-library node, the
/// runtime's library kernels for matmul, convolutions, pooling, gather and
/// scatter_add, the plan's arena and argument buffers, results and updates.
/// Throws kiln::Error for a graph without a plan or with an op the CPU
/// backend cannot run (naming it).
std::unique_ptr<CpuCompiled> compileForCpu(const Graph &planned);

/// A graph compiled ahead of time (`kiln compile --target=cpu`).
struct CpuAotCompiled {
  /// Kernel steps have no function; arguments carry their initializers.
  Program program;
  /// Per kernel, in the code's order: the step that runs it ("%12 fusion",
  /// the node's number in the planned IR).
  std::vector<std::string> kernelSteps;
  CpuCode code;
};

/// Lowers `planned` like compileForCpu and generates its kernels' code with
/// `options` (codegen/cpu/CpuCodegen.h). With `options.object` and a
/// `symbolPrefix`, the object embeds the Program's image (runtime/ProgramFile.h).
CpuAotCompiled compileForCpuAot(const Graph &planned, CpuCodeOptions options);

/// True when this build has the CPU backend.
bool cpuBackendAvailable();

} // namespace kiln
