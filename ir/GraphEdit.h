// Editing graphs from passes: typed node creation, copies, dtype promotion.
#pragma once

#include "ir/Graph.h"

#include <memory>
#include <unordered_map>

namespace kiln {

/// Appends a node whose result type is inferred by `inferType` (for
/// `GivenType` ops, `given` is the type) and returns its result. A type error
/// throws `kiln::Error` naming the graph and the op: a pass that builds an
/// ill-typed node has a bug, and the message says which.
Value *emitNode(Graph &graph, OpKind kind, std::vector<Value *> operands, AttrMap attrs = {},
                const TensorType *given = nullptr, Location loc = {});

/// A constant splat of `value` with `type`.
Value *emitConstant(Graph &graph, double value, const TensorType &type);

/// A deep copy. `mapping`, when given, receives old value -> new value.
std::unique_ptr<Graph> cloneGraph(const Graph &graph,
                                  std::unordered_map<const Value *, Value *> *mapping = nullptr);

/// A copy in which every float type (arguments, nodes, `cast` targets) is
/// f64: what gradient checks run on, so that finite differences are not
/// drowned by f32 rounding of the perturbed inputs.
std::unique_ptr<Graph> promoteFloatsToF64(const Graph &graph);

} // namespace kiln
