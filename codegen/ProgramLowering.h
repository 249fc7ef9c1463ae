// A planned graph -> a runtime Program (steps over buffers), shared by the
// backends: which nodes are generated kernels and which are library steps,
// with their buffers and shapes. The backends then generate the kernels.
#pragma once

#include "runtime/Program.h"

#include <string>
#include <vector>

namespace kiln {

class Graph;
class Node;

/// Lowers a graph on which `plan-memory` ran (every node has a `buffer`) to a
/// Program: one step per node in schedule order; a `fusion` or any op that is
/// not a `Library` op is a StepKind::Kernel step (its `kernel` left null) and
/// its node is appended to `kernelNodes`; matmul, convolutions, pooling,
/// gather and scatter_add get their library params. `backend` ("CPU", "CUDA")
/// names the backend in errors: a kiln::Error for a graph without a plan or a
/// library op the backend has no kernel for.
Program lowerToProgram(const Graph &planned, const std::string &backend,
                       std::vector<const Node *> &kernelNodes);

} // namespace kiln
