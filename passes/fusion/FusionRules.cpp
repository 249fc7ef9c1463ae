#include "passes/fusion/FusionRules.h"

#include "ir/Graph.h"

namespace kiln::fusion {

bool isReduction(OpKind kind) { return opInfo(kind).has(OpTrait::Reduction); }
bool isDuplicable(const Node &n) { return n.operands().empty(); }

std::unordered_map<const Value *, std::vector<Node *>> usersOf(const Graph &graph) {
  std::unordered_map<const Value *, std::vector<Node *>> users;
  for (const auto &node : graph.nodes())
    for (const Value *v : node->operands()) {
      auto &list = users[v];
      if (list.empty() || list.back() != node.get())
        list.push_back(node.get());
    }
  return users;
}

std::unordered_set<const Value *> escapingValues(const Graph &graph) {
  std::unordered_set<const Value *> out(graph.results().begin(), graph.results().end());
  for (const Update &u : graph.updates())
    out.insert(u.source);
  return out;
}

int64_t bytesOf(const TensorType &t) { return t.numElements() * int64_t(dtypeSize(t.dtype)); }

std::string iterationSpace(const std::vector<const Node *> &ops, const TensorType &rootType,
                           std::string *why) {
  std::string space;
  for (const Node *op : ops) {
    if (!isReduction(op->kind()))
      continue;
    std::vector<int64_t> axes = op->kind() == OpKind::Argmax
                                    ? std::vector<int64_t>{op->intAttr("axis")}
                                    : op->intsAttr("axes");
    std::string mine = "reduce " + op->operand(0)->type.shape.toString() + " over " +
                       Attribute(axes).toString();
    if (!space.empty() && space != mine) {
      if (why)
        *why = "its reductions differ (" + space + ", " + mine + ")";
      return {};
    }
    space = mine;
  }
  return space.empty() ? "loop " + rootType.shape.toString() : space;
}

bool worthSharing(const Value *v) {
  if (v->type.numElements() < 2)
    return false;
  const Node *producer = v->node;
  return !producer || !(isDuplicable(*producer) ||
                        (producer->kind() == OpKind::Broadcast &&
                         producer->operand(0)->type.numElements() == 1));
}

} // namespace kiln::fusion
