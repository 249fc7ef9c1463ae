#include "passes/fusion/Fusion.h"

#include "ir/Graph.h"
#include "passes/Pass.h"
#include "passes/fusion/FusionRules.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <functional>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace kiln {

using namespace fusion;

namespace {

class FusionPass final : public Pass {
  std::string_view name() const override { return "fuse"; }
  std::string_view description() const override {
    return "groups elementwise, shape and reduction ops into fusion kernels";
  }
  PassResult run(Graph &graph) override;

  void outline(Graph &graph, const std::vector<Node *> &members,
               std::unordered_set<const Node *> &copied);
};

/// A broadcast whose users sit in different kernels is copied into each of
/// them (it only re-reads its smaller operand) instead of being written out
/// by a kernel of its own.
bool copyIntoConsumers(const Node &producer, const std::vector<Node *> &users,
                       const std::unordered_set<const Value *> &escaping) {
  if (producer.kind() != OpKind::Broadcast || escaping.count(producer.result()))
    return false;
  for (const Node *user : users)
    if (user->info().has(OpTrait::Library) || isDuplicable(*user))
      return false;
  return true;
}

/// Whether a value computed in a kernel of `inGroup` is read outside it: by a
/// node of another kernel, as a result or update source, or through a copied
/// broadcast by a node outside.
bool readOutside(const Value *v, const std::unordered_set<const Node *> &inGroup,
                 const std::unordered_map<const Value *, std::vector<Node *>> &users,
                 const std::unordered_set<const Value *> &escaping,
                 const std::unordered_set<const Node *> &copied) {
  if (escaping.count(v))
    return true;
  auto found = users.find(v);
  if (found == users.end())
    return false;
  for (const Node *user : found->second) {
    if (inGroup.count(user))
      continue;
    if (!copied.count(user))
      return true;
    for (size_t r = 0; r < user->numResults(); ++r)
      if (readOutside(user->result(r), inGroup, users, escaping, copied))
        return true;
  }
  return false;
}

/// Sibling (multi-output) fusion over the groups of the first stage, as XLA's
/// sibling fusion: groups that read a common input worth sharing, with the
/// same iteration space, become one kernel when that forms no cycle. Visits
/// the shared values in graph order and each value's readers in order, each
/// joining the first earlier reader's kernel it can. Returns the kernels.
class SiblingMerger {
public:
  SiblingMerger(const Graph &graph, const std::vector<std::vector<Node *>> &groups,
                const std::unordered_set<const Node *> &copied)
      : copied_(copied), escaping_(escapingValues(graph)) {
    std::unordered_map<const Node *, size_t> position;
    for (const auto &n : graph.nodes())
      position[n.get()] = position.size();
    for (const auto &members : groups) {
      Unit unit;
      unit.members = members;
      unit.first = SIZE_MAX;
      std::vector<const Node *> ops(members.begin(), members.end());
      const Node *root = members.front();
      for (const Node *m : members)
        unit.first = std::min(unit.first, position.at(m));
      unit.space = iterationSpace(ops, root->type(), nullptr);
      for (Node *m : members)
        unitOf_[m] = units_.size();
      units_.push_back(std::move(unit));
    }
    for (const auto &n : graph.nodes())
      if (n->info().has(OpTrait::Library) && !unitOf_.count(n.get())) {
        unitOf_[n.get()] = units_.size();
        Unit unit;
        unit.members = {n.get()};
        unit.first = position.at(n.get());
        units_.push_back(std::move(unit));
      }
    for (size_t u = 0; u < units_.size(); ++u) {
      parent_.push_back(u);
      for (Node *m : units_[u].members)
        for (Value *v : m->operands())
          addInputs(u, v);
    }
    users_ = usersOf(graph);
    for (size_t u = 0; u < units_.size(); ++u)
      for (const Value *v : units_[u].inputs)
        if (v->node && unitOf_.count(v->node) && unitOf_.at(v->node) != u) {
          units_[unitOf_.at(v->node)].successors.insert(u);
          units_[u].predecessors.insert(unitOf_.at(v->node));
        }
    // The shared values, in graph order.
    for (const auto &arg : graph.arguments())
      shared_.push_back(&arg->value);
    for (const auto &n : graph.nodes())
      shared_.push_back(n->result());
  }

  std::vector<std::vector<Node *>> run(size_t groupCount) {
    std::unordered_map<const Value *, std::vector<size_t>> readers;
    for (size_t u = 0; u < groupCount; ++u)
      for (const Value *v : units_[u].inputs)
        readers[v].push_back(u);
    for (const Value *v : shared_) {
      auto found = readers.find(v);
      if (found == readers.end() || found->second.size() < 2 || !worthSharing(v))
        continue;
      std::vector<size_t> order = found->second;
      std::sort(order.begin(), order.end(),
                [&](size_t a, size_t b) { return units_[a].first < units_[b].first; });
      std::vector<size_t> kernels; // representatives of the kernels reading v so far
      for (size_t u : order) {
        size_t unit = find(u);
        bool joined = std::find(kernels.begin(), kernels.end(), unit) != kernels.end();
        for (size_t k = 0; k < kernels.size() && !joined; ++k)
          if (canMerge(kernels[k], unit)) {
            merge(kernels[k], unit);
            joined = true;
          }
        if (!joined)
          kernels.push_back(unit);
      }
    }
    fuseIntoSoleConsumers(groupCount);
    std::vector<std::vector<Node *>> kernels;
    for (size_t u = 0; u < groupCount; ++u)
      if (find(u) == u)
        kernels.push_back(units_[u].members);
    return kernels;
  }

private:
  /// After merging, a kernel whose values are all read by one other kernel
  /// (a producer read by several siblings that became one) joins it, as the
  /// first stage would have: nothing is computed twice and no cycle forms.
  /// Consumers first, to a fixed point.
  void fuseIntoSoleConsumers(size_t groupCount) {
    for (bool changed = true; changed;) {
      changed = false;
      std::vector<size_t> order;
      for (size_t u = 0; u < groupCount; ++u)
        if (find(u) == u)
          order.push_back(u);
      std::sort(order.begin(), order.end(),
                [&](size_t a, size_t b) { return units_[a].first > units_[b].first; });
      for (size_t producer : order) {
        if (find(producer) != producer)
          continue;
        std::set<size_t> consumers;
        bool escapes = false;
        for (const Node *m : units_[producer].members)
          escapes = escapes || !consumerUnits(m->result(), producer, consumers);
        if (escapes || consumers.size() != 1 || *consumers.begin() >= groupCount)
          continue;
        size_t consumer = *consumers.begin();
        if (bufferCount(consumer, producer) > kMaxKernelBuffers)
          continue;
        merge(consumer, producer);
        changed = true;
      }
    }
  }

  /// Adds the kernels other than `self` that read `v` (through copied
  /// broadcasts) to `out`; false when `v` is a result or update source.
  bool consumerUnits(const Value *v, size_t self, std::set<size_t> &out) {
    if (escaping_.count(v))
      return false;
    auto found = users_.find(v);
    if (found == users_.end())
      return true;
    for (const Node *user : found->second) {
      auto unit = unitOf_.find(user);
      if (unit != unitOf_.end()) {
        if (find(unit->second) != self)
          out.insert(find(unit->second));
      } else if (copied_.count(user) && !consumerUnits(user->result(), self, out)) {
        return false;
      }
    }
    return true;
  }

  struct Unit {
    std::vector<Node *> members;
    size_t first = 0;                  // its first member's position in the graph
    std::string space;                 // iterationSpace; empty: merges with nothing
    std::vector<const Value *> inputs; // values it reads from outside, distinct, in order
    std::set<size_t> successors, predecessors; // units (maybe merged away: use find)
  };

  /// The values a kernel reads for operand `v`: `v` itself, or, for a
  /// constant or copied broadcast (copied into the kernel), its operands.
  void addInputs(size_t u, Value *v) {
    Node *producer = v->node;
    if (producer && !unitOf_.count(producer) && (isDuplicable(*producer) || copied_.count(producer))) {
      for (Value *o : producer->operands())
        addInputs(u, o);
      return;
    }
    if (producer && unitOf_.count(producer) && unitOf_.at(producer) == u)
      return;
    std::vector<const Value *> &inputs = units_[u].inputs;
    if (std::find(inputs.begin(), inputs.end(), v) == inputs.end())
      inputs.push_back(v);
  }

  size_t find(size_t u) {
    while (parent_[u] != u)
      u = parent_[u] = parent_[parent_[u]];
    return u;
  }

  bool canMerge(size_t a, size_t b) {
    const Unit &x = units_[a], &y = units_[b];
    if (x.space.empty() || x.space != y.space)
      return false;
    return bufferCount(a, b) <= kMaxKernelBuffers && !reachesThroughOthers(a, b) &&
           !reachesThroughOthers(b, a);
  }

  /// Operands and results of the kernel that `a` and `b` would make.
  size_t bufferCount(size_t a, size_t b) {
    std::unordered_set<const Node *> inside;
    for (size_t u : {a, b})
      inside.insert(units_[u].members.begin(), units_[u].members.end());
    std::unordered_set<const Value *> inputs;
    for (size_t u : {a, b})
      for (const Value *v : units_[u].inputs)
        if (!v->node || !inside.count(v->node))
          inputs.insert(v);
    size_t outputs = 0;
    for (const Node *m : inside) {
      auto found = users_.find(m->result());
      bool unread = found == users_.end() || found->second.empty();
      outputs += unread || readOutside(m->result(), inside, users_, escaping_, copied_) ? 1 : 0;
    }
    return inputs.size() + outputs;
  }

  /// Whether a path leads from `from` to `to` through some other unit: then
  /// one kernel of both would feed and consume that unit, a cycle.
  bool reachesThroughOthers(size_t from, size_t to) {
    std::vector<size_t> stack;
    std::unordered_set<size_t> seen;
    for (size_t s : units_[from].successors)
      if (find(s) != to && find(s) != from && seen.insert(find(s)).second)
        stack.push_back(find(s));
    while (!stack.empty()) {
      size_t u = stack.back();
      stack.pop_back();
      if (u == to)
        return true;
      for (size_t s : units_[u].successors)
        if (seen.insert(find(s)).second)
          stack.push_back(find(s));
    }
    return false;
  }

  void merge(size_t into, size_t from) {
    Unit &x = units_[into], &y = units_[from];
    parent_[from] = into;
    x.members.insert(x.members.end(), y.members.begin(), y.members.end());
    for (const Value *v : y.inputs)
      if (std::find(x.inputs.begin(), x.inputs.end(), v) == x.inputs.end())
        x.inputs.push_back(v);
    x.successors.insert(y.successors.begin(), y.successors.end());
    x.predecessors.insert(y.predecessors.begin(), y.predecessors.end());
    x.first = std::min(x.first, y.first);
    for (size_t p : y.predecessors) // so that paths through `from` reach `into`
      units_[find(p)].successors.insert(into);
  }

  const std::unordered_set<const Node *> &copied_;
  std::unordered_set<const Value *> escaping_;
  std::unordered_map<const Value *, std::vector<Node *>> users_;
  std::unordered_map<const Node *, size_t> unitOf_;
  std::vector<Unit> units_; // the groups first, then library ops
  std::vector<size_t> parent_;
  std::vector<const Value *> shared_;
};

std::vector<std::vector<Node *>> mergeSiblings(const Graph &graph,
                                               const std::vector<std::vector<Node *>> &groups,
                                               const std::unordered_set<const Node *> &copied) {
  return SiblingMerger(graph, groups, copied).run(groups.size());
}

PassResult FusionPass::run(Graph &graph) {
  auto users = usersOf(graph);
  std::unordered_set<const Value *> escaping = escapingValues(graph);
  std::unordered_map<const Node *, size_t> groupOf;
  std::vector<std::vector<Node *>> groups; // members in reverse visiting order

  std::unordered_set<const Node *> copied; // broadcasts copied into their consumers
  const auto &nodes = graph.nodes();
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    Node *node = it->get();
    if (node->info().has(OpTrait::Library) || isDuplicable(*node))
      continue;
    if (copied.count(node) && !groupOf.count(node))
      continue;
    auto found = groupOf.find(node);
    size_t group;
    if (found == groupOf.end()) {
      group = groups.size();
      groups.push_back({node});
      groupOf[node] = group;
    } else {
      group = found->second;
    }
    for (Value *operand : node->operands()) {
      Node *producer = operand->node;
      if (!producer || groupOf.count(producer) || isDuplicable(*producer) ||
          producer->info().has(OpTrait::Library) || escaping.count(operand))
        continue;
      bool allUsersInGroup = true;
      for (Node *user : users[operand]) {
        auto g = groupOf.find(user);
        allUsersInGroup = allUsersInGroup && g != groupOf.end() && g->second == group;
      }
      if (!allUsersInGroup) {
        if (copyIntoConsumers(*producer, users[operand], escaping))
          copied.insert(producer);
        continue;
      }
      groupOf[producer] = group;
      groups[group].push_back(producer);
    }
  }

  std::vector<std::vector<Node *>> kernels = mergeSiblings(graph, groups, copied);
  bool changed = false;
  for (const std::vector<Node *> &members : kernels) {
    // A lone op is wrapped only to take in a copied broadcast, which then
    // need not be written out for it.
    bool readsCopy = false;
    for (const Value *v : members[0]->operands())
      readsCopy = readsCopy || (v->node && copied.count(v->node) && !groupOf.count(v->node));
    if (members.size() < 2 && !readsCopy)
      continue;
    outline(graph, members, copied);
    changed = true;
  }
  if (!changed)
    return PassResult::Unchanged;
  // Constants and broadcasts whose every user moved into a body are dead now
  // (a broadcast first: it may hold the last use of a constant).
  for (int round = 0; round < 2; ++round) {
    auto remaining = usersOf(graph);
    graph.eraseNodesIf([&](const Node &n) {
      return (isDuplicable(n) || copied.count(&n)) && !remaining.count(n.result()) &&
             !escaping.count(n.result());
    });
  }
  return PassResult::Changed;
}

void FusionPass::outline(Graph &graph, const std::vector<Node *> &members,
                         std::unordered_set<const Node *> &copied) {
  std::unordered_set<const Node *> inGroup(members.begin(), members.end());
  std::vector<Node *> ordered; // members in graph order
  for (const auto &n : graph.nodes())
    if (inGroup.count(n.get()))
      ordered.push_back(n.get());
  auto users = usersOf(graph);
  std::unordered_set<const Value *> escaping = escapingValues(graph);
  // Outputs, in graph order: members whose value is read outside, and those
  // nothing reads (dead ends stay results, as unfused; dce removes them).
  std::vector<Node *> outputs;
  for (Node *n : ordered)
    if (readOutside(n->result(), inGroup, users, escaping, copied) || users[n->result()].empty())
      outputs.push_back(n);

  auto body = std::make_unique<Graph>(graph.name() + ".fusion");
  std::unordered_map<const Value *, Value *> inner;
  std::vector<Value *> operands;
  // The body's value for outer value `v`: a copy of a constant or of a copied
  // broadcast (whose operand is mapped the same way), or a new argument.
  std::function<Value *(Value *)> innerValue = [&](Value *v) -> Value * {
    auto mapped = inner.find(v);
    if (mapped != inner.end())
      return mapped->second;
    Node *producer = v->node;
    if (producer && !inGroup.count(producer) && (isDuplicable(*producer) || copied.count(producer))) {
      std::vector<Value *> copyOperands;
      for (Value *o : producer->operands())
        copyOperands.push_back(innerValue(o));
      Node *copy = body->addNode(producer->kind(), copyOperands, producer->attrs(), v->type,
                                 producer->loc());
      return inner[v] = copy->result();
    }
    Argument *arg = body->addArgument("arg" + std::to_string(operands.size()), v->type, ArgRole::Input);
    operands.push_back(v);
    return inner[v] = &arg->value;
  };
  bool hasReduction = false, onlyElementwise = true;
  for (Node *n : ordered) {
    std::vector<Value *> innerOperands;
    for (Value *v : n->operands())
      innerOperands.push_back(innerValue(v));
    Node *copy = body->addNode(n->kind(), innerOperands, n->attrs(), n->type(), n->loc());
    inner[n->result()] = copy->result();
    hasReduction = hasReduction || isReduction(n->kind());
    onlyElementwise = onlyElementwise && (n->info().has(OpTrait::Elementwise) ||
                                          n->kind() == OpKind::Broadcast);
  }
  std::vector<TensorType> types;
  for (Node *out : outputs) {
    body->addResult(inner.at(out->result()));
    types.push_back(out->type());
  }
  // Constants were added while walking the members: move them first so the
  // body is in a valid order.
  body->sortNodesTopologically();

  bool epilogue = false;
  if (onlyElementwise && outputs.size() == 1)
    for (Value *v : operands)
      if (v->node && v->node->kind() == OpKind::Matmul && users[v].size() == 1 && !escaping.count(v))
        epilogue = true;
  AttrMap attrs;
  attrs.set("kind", hasReduction ? "reduction" : epilogue ? "epilogue" : "loop");
  Node *last = outputs.back();
  Node *fusion = graph.addNode(OpKind::Fusion, operands, attrs, types, last->loc());
  fusion->setBody(std::move(body));
  for (size_t r = 0; r < outputs.size(); ++r)
    graph.replaceAllUses(outputs[r]->result(), fusion->result(r));

  // The fusion takes its last member's place; readers of an earlier output
  // placed before that move after it.
  std::vector<Node *> order;
  for (const auto &n : graph.nodes()) {
    if (n.get() == ordered.back())
      order.push_back(fusion);
    else if (!inGroup.count(n.get()) && n.get() != fusion)
      order.push_back(n.get());
  }
  // A copied broadcast of a member value that is no output is read only in
  // this kernel (where it is copied): it goes with the members.
  std::unordered_set<const Node *> gone = inGroup;
  for (const auto &n : graph.nodes())
    if (copied.count(n.get()) && !inGroup.count(n.get()) && n->operand(0)->node &&
        inGroup.count(n->operand(0)->node) &&
        std::find(outputs.begin(), outputs.end(), n->operand(0)->node) == outputs.end()) {
      gone.insert(n.get());
      copied.erase(n.get());
    }
  order.erase(std::remove_if(order.begin(), order.end(), [&](Node *n) { return gone.count(n) > 0; }),
              order.end());
  graph.eraseNodesIf([&](const Node &n) { return gone.count(&n) > 0; });
  graph.reorderNodes(order);
  if (outputs.size() > 1)
    graph.sortNodesTopologically();
}

} // namespace

std::unique_ptr<Pass> createFusionPass() { return std::make_unique<FusionPass>(); }

} // namespace kiln
