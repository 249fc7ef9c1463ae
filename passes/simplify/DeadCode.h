// Dead-code elimination over the graph IR.
#pragma once

#include <memory>
#include <vector>

namespace kiln {

class Graph;
class Node;
class Pass;

/// The `dce` pass: removes every node whose value reaches no root. The roots
/// are the graph's results and the sources of its `update` statements.
/// Arguments are never removed (an unused param is still fed and updated by
/// whoever holds it), and the order of the nodes that stay is kept.
/// Requires a verified graph; keeps it verified.
std::unique_ptr<Pass> createDeadCodePass();

/// Erases the nodes of `candidates` that nothing uses (no operand, result or
/// update source), then the producers that lose their last use that way, and
/// so on. The rewriting passes call it on the nodes they bypassed; a node that
/// was unused before stays for `dce`. Returns the number of nodes erased.
size_t eraseIfUnused(Graph &graph, const std::vector<const Node *> &candidates);

} // namespace kiln
