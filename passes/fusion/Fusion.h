// Fusion: grouping ops into kernels.
#pragma once

#include <memory>
#include <string>

namespace kiln {

class Graph;
class Node;
class Pass;
struct Value;

/// Groups ops into `fusion` nodes whose bodies are the grouped ops, so that
/// each fusion is one kernel. Greedy, consumers first (XLA's instruction
/// fusion): visiting nodes from last to first, a node pulls each operand's
/// producer into its group when the producer is not a `Library` op (matmul,
/// conv2d and its grads, pooling, gather, scatter_add stay their own
/// kernels), its value is not a graph result or an update source, and every
/// user of it is already in the group — so nothing is computed twice and no
/// cycle can form. `constant` and `iota` (no operands) are copied into every
/// group that uses them, and so is a `broadcast` whose users are in several
/// groups (each re-reads its smaller operand instead of a materialized copy). This fuses elementwise chains, elementwise producers
/// into reductions and reductions into their elementwise consumers (a softmax
/// or layer_norm row becomes one kernel). A group whose operand is a matmul
/// result used by nothing else, and which holds only elementwise and
/// broadcast ops, is marked `kind = "epilogue"` for backends that fuse bias
/// and activation into the matmul.
///
/// Then sibling fusion: groups reading a common input worth sharing (not a
/// scalar or splat), with the same iteration space (`loop S`, or `reduce S
/// over A` for every reduction), become one multi-output kernel when no path
/// leads from one to the other through a third kernel (no cycle) and the
/// kernel takes at most 32 buffers; then a kernel read only by one other joins
/// it. Deterministic: shared values in graph order, readers in order. Each
/// value of a kernel read outside it is one of its results, in graph order.
/// Groups of one op stay plain nodes, unless they read a copied broadcast.
/// Requires a verified graph without fusions; run after autodiff and simplify.
std::unique_ptr<Pass> createFusionPass();

/// Why `value` (a node's result) is not computed inside `consumer`'s
/// kernel, in a phrase for reports ("matmul is a library op and stays its own kernel").
std::string whyNotFused(const Graph &graph, const Value &value, const Node &consumer);

/// Why two kernels reading a common operand are not one multi-output kernel:
/// different iteration spaces, a cycle through another node, or too many buffers.
std::string whyNotSiblings(const Graph &graph, const Node &first, const Node &second);

/// `--report=fusion`: the kernel and op counts, then every kernel (fusion,
/// library op or single op) with its ops, its outputs when it has several,
/// bytes in and out, for each operand computed by another kernel the reason
/// it was not fused, and for each earlier kernel (not a library op) reading a
/// common operand worth sharing, why the two are not one. Text, or JSON.
std::string fusionReport(const Graph &graph, bool json);

} // namespace kiln
