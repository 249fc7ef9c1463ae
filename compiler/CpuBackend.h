// The CPU backend: a planned graph -> a runtime Program with JIT kernels.
#pragma once

#include <memory>
#include <string>

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

/// True when this build has the CPU backend.
bool cpuBackendAvailable();

} // namespace kiln
