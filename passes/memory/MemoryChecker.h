// An independent check of a memory plan (the `buffer` attributes of a graph).
#pragma once

#include "ir/Attribute.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

class Graph;
class Node;
struct Value;

/// One node result as the plan places it. Positions are node indices in the
/// graph's order; `graph.nodes().size()` stands for the end of the step,
/// where results are read and updates written.
struct PlacedValue {
  const Node *node = nullptr;
  const Value *value = nullptr; // the result: node->result(k)
  size_t position = 0; // where the value is written
  size_t lastUse = 0;  // its last reader; a node nobody reads: its own position
  int64_t bytes = 0;   // of the value's type
  BufferSlice slice;   // empty `buffer` when the node has no slice
};

/// True when some node of `graph` carries a `buffer` attribute.
bool hasMemoryPlan(const Graph &graph);

/// Every node's results, in node order and then result order, with liveness
/// recomputed from the node order (results and update sources live to the
/// end) and each slice read back from the `buffer` attribute (a list of
/// slices for a multi-output node).
std::vector<PlacedValue> readMemoryPlan(const Graph &graph);

/// Proves the plan of `graph` sound, from the node order and the `buffer`
/// attributes alone (it shares no code with the planner). Returns an empty
/// string when it is, or when no node has a `buffer` (nothing is planned);
/// otherwise the first problem, naming the values as printed (`%4`).
///
/// What it proves:
///  - every node has a slice; every slice starts 64-byte aligned, is as large
///    as its value and lies in the arena or in an argument's buffer (the
///    arena's size is the largest end of an arena slice, so every arena slice
///    lies in it);
///  - no two values live at the same time share a byte, except a node's
///    result taking exactly the slice of an operand of the same byte size
///    whose last use is that node, when the node reads that operand element by
///    element (an `Elementwise` op, or a fusion whose body gives the operand
///    to elementwise ops only): each element is read before it is written.
///    For a multi-output fusion, also: the result is computed by a body node
///    and no body node after it reads the operand (a kernel runs its body
///    nodes in order, each writing its result), and the body does not yield
///    the operand itself. Two results of one node never share bytes.
///    Results and `update` sources live to the end of the step, so an update
///    source is never overwritten before it is written back;
///  - an argument's buffer holds its value on entry until the last reader of
///    that value (the end of the step if it is a result or an update source,
///    and always, for an argument that no `update` writes). A value written
///    there must not overlap it while it is live (same in-place exception),
///    and, unless it is the source of `update %w` at exactly `%w[0:bytes]`,
///    must be dead at the end of the step, when the update writes `%w`.
std::string checkMemoryPlan(const Graph &graph);

} // namespace kiln
