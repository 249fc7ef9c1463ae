// Rules shared by the fusion pass and its report (internal to passes/fusion).
#pragma once

#include "ir/Graph.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace kiln::fusion {

bool isReduction(OpKind kind);
/// constant and iota: copied into each group that uses them.
bool isDuplicable(const Node &n);
/// Users of every value, in node order.
std::unordered_map<const Value *, std::vector<Node *>> usersOf(const Graph &graph);
/// Values that must stay visible outside any kernel: results and update sources.
std::unordered_set<const Value *> escapingValues(const Graph &graph);
int64_t bytesOf(const TensorType &t);

/// The loop nest a kernel made of `ops` runs, as text equal for kernels that
/// may share one: `loop [8,128]` when no op reduces (the shape of `rootType`,
/// its first result), `reduce [8,128,256] over [2]` when every reduction
/// reads that shape over those axes. Empty when the reductions differ, with
/// the reason in `why`.
std::string iterationSpace(const std::vector<const Node *> &ops, const TensorType &rootType,
                           std::string *why);

/// The most buffers one kernel may take, operands and results together (the
/// CPU runtime's kernel ABI passes at most 32 pointers).
constexpr size_t kMaxKernelBuffers = 32;

/// A value worth sharing a kernel for: not a scalar, nor a splat (a constant
/// or a broadcast of a scalar), which every kernel re-reads for nothing.
bool worthSharing(const Value *v);

} // namespace kiln::fusion
