// `kiln compile --emit=dot`: a graph as a Graphviz digraph.
#pragma once

#include <string>

namespace kiln {

class Graph;
struct Module;

/// `graph` as a Graphviz `digraph`: one box per node labelled with its
/// printed name and op (`%3 matmul`), one ellipse per argument (`%x input`),
/// edges from each value to its readers labelled with the value's type
/// (`f32[64,128]`), the results (`return loss`, `return out1` when unnamed)
/// and the updates (`update %fc1.weight`, dashed) as their own nodes. A
/// `fusion` node is drawn as a `subgraph cluster_N` (N counts the fusions
/// from 0) holding its body's nodes: edges enter the cluster at the body
/// nodes that read each operand and leave it from the nodes the body yields
/// (one per result of a multi-output fusion, `%5:2 = fusion`).
/// Deterministic: names and order follow the `.kir` printer (ir/Printer.h).
std::string printDotGraph(const Graph &graph);
/// Every graph of `module`, one `digraph` after another (dot draws each).
std::string printDotModule(const Module &module);

} // namespace kiln
