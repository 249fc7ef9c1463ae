#include "passes/fusion/Fusion.h"

#include "ir/Graph.h"
#include "ir/Printer.h"
#include "passes/Pass.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace kiln {

namespace {

bool isReduction(OpKind kind) { return opInfo(kind).has(OpTrait::Reduction); }
/// constant and iota: copied into each group that uses them.
bool isDuplicable(const Node &n) { return n.operands().empty(); }

/// Users of every value, in node order.
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

/// Values that must stay visible outside any kernel: results and update sources.
std::unordered_set<const Value *> escapingValues(const Graph &graph) {
  std::unordered_set<const Value *> out(graph.results().begin(), graph.results().end());
  for (const Update &u : graph.updates())
    out.insert(u.source);
  return out;
}

int64_t bytesOf(const TensorType &t) { return t.numElements() * int64_t(dtypeSize(t.dtype)); }

class FusionPass final : public Pass {
  std::string_view name() const override { return "fuse"; }
  std::string_view description() const override {
    return "groups elementwise, shape and reduction ops into fusion kernels";
  }
  PassResult run(Graph &graph) override;

  void outline(Graph &graph, const std::vector<Node *> &members,
               const std::unordered_set<const Node *> &copied);
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

/// The loop nest a kernel made of `ops` runs, as text equal for kernels that
/// may share one: `loop [8,128]` when no op reduces (the shape of `rootType`,
/// its first result), `reduce [8,128,256] over [2]` when every reduction
/// reads that shape over those axes. Empty when the reductions differ, with
/// the reason in `why`.
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

/// The most buffers one kernel may take, operands and results together (the
/// CPU runtime's kernel ABI passes at most 32 pointers).
constexpr size_t kMaxKernelBuffers = 32;

/// A value worth sharing a kernel for: not a scalar, nor a splat (a constant
/// or a broadcast of a scalar), which every kernel re-reads for nothing.
bool worthSharing(const Value *v) {
  if (v->type.numElements() < 2)
    return false;
  const Node *producer = v->node;
  return !producer || !(isDuplicable(*producer) ||
                        (producer->kind() == OpKind::Broadcast &&
                         producer->operand(0)->type.numElements() == 1));
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
                         const std::unordered_set<const Node *> &copied) {
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
  graph.eraseNodesIf([&](const Node &n) { return inGroup.count(&n) > 0; });
  graph.reorderNodes(order);
  if (outputs.size() > 1)
    graph.sortNodesTopologically();
}

/// The printed names of a graph's top-level values: `%x`, `%N`, `%N#k`.
std::unordered_map<const Value *, std::string> valueNames(const Graph &graph) {
  std::unordered_map<const Value *, std::string> names;
  for (const auto &arg : graph.arguments())
    names[&arg->value] = "%" + arg->name;
  size_t i = 0;
  for (const auto &n : graph.nodes()) {
    for (size_t r = 0; r < n->numResults(); ++r)
      names[n->result(r)] = "%" + std::to_string(i) + resultSuffix(*n->result(r));
    ++i;
  }
  return names;
}

/// `%N (op)`: a node as the report names it.
std::string describeNode(const Node &node, const std::unordered_map<const Value *, std::string> &names) {
  std::string name = names.at(node.result());
  if (node.numResults() > 1)
    name = name.substr(0, name.find('#'));
  return name + " (" + std::string(opName(node.kind())) + ")";
}

/// The iteration space of a kernel node (see iterationSpace).
std::string kernelSpace(const Node &node, std::string *why) {
  std::vector<const Node *> ops;
  if (const Graph *body = node.body())
    for (const auto &inner : body->nodes())
      ops.push_back(inner.get());
  else
    ops.push_back(&node);
  return iterationSpace(ops, node.type(), why);
}

/// The first node on a path from `from` to `to` through other nodes, or null.
const Node *pathThroughOthers(const Graph &graph, const Node &from, const Node &to) {
  auto users = usersOf(graph);
  std::unordered_map<const Node *, bool> reaches; // whether `to` is reachable from a node
  std::function<bool(const Node *)> leadsTo = [&](const Node *n) -> bool {
    if (n == &to)
      return true;
    auto known = reaches.find(n);
    if (known != reaches.end())
      return known->second;
    reaches[n] = false;
    bool found = false;
    for (size_t r = 0; r < n->numResults() && !found; ++r)
      for (const Node *user : users[n->result(r)])
        if ((found = leadsTo(user)))
          break;
    return reaches[n] = found;
  };
  for (size_t r = 0; r < from.numResults(); ++r)
    for (const Node *user : users[from.result(r)])
      if (user != &to && leadsTo(user))
        return user;
  return nullptr;
}

} // namespace

std::string whyNotFused(const Graph &graph, const Value &value, const Node &consumer) {
  const Node &producer = *value.node;
  if (producer.info().has(OpTrait::Library) && producer.kind() != OpKind::Fusion)
    return std::string(opName(producer.kind())) + " is a library op and stays its own kernel";
  if (consumer.info().has(OpTrait::Library) && consumer.kind() != OpKind::Fusion)
    return std::string(opName(consumer.kind())) + " is a library op; nothing is fused into it";
  for (const Value *r : graph.results())
    if (r == &value)
      return "its value is a result of the graph";
  for (const Update &u : graph.updates())
    if (u.source == &value)
      return "its value is the new value of %" + u.target->name;
  auto names = valueNames(graph);
  std::vector<std::string> others;
  for (const auto &n : graph.nodes())
    if (n.get() != &consumer &&
        std::find(n->operands().begin(), n->operands().end(), &value) != n->operands().end())
      others.push_back(describeNode(*n, names));
  if (!others.empty()) {
    std::string list;
    for (size_t i = 0; i < others.size() && i < 3; ++i)
      list += (i ? ", " : "") + others[i];
    if (others.size() > 3)
      list += " and " + std::to_string(others.size() - 3) + " more";
    return "its value is also used by " + list + ", so fusing would compute it twice";
  }
  if (producer.numResults() > 1)
    return "it comes from a multi-output kernel whose other results are read elsewhere";
  return "a group of one op is not wrapped";
}

std::string whyNotSiblings(const Graph &graph, const Node &first, const Node &second) {
  std::string why;
  std::string a = kernelSpace(first, &why);
  if (a.empty())
    return why;
  std::string b = kernelSpace(second, &why);
  if (b.empty())
    return why;
  auto names = valueNames(graph);
  if (a != b)
    return "it iterates over " + b + ", " + describeNode(first, names) + " over " + a;
  for (const auto &[from, to] : {std::pair(&first, &second), std::pair(&second, &first)})
    if (const Node *via = pathThroughOthers(graph, *from, *to))
      return "one kernel of both would feed and read " + describeNode(*via, names) + ", a cycle";
  std::unordered_set<const Value *> buffers;
  for (const Node *n : {&first, &second}) {
    buffers.insert(n->operands().begin(), n->operands().end());
    for (size_t r = 0; r < n->numResults(); ++r)
      buffers.insert(n->result(r));
  }
  if (buffers.size() > kMaxKernelBuffers)
    return "one kernel of both would take " + std::to_string(buffers.size()) + " buffers, more than " +
           std::to_string(kMaxKernelBuffers);
  return "none found: the pass left them apart";
}

std::string fusionReport(const Graph &graph, bool json) {
  auto names = valueNames(graph);
  nlohmann::ordered_json kernels = nlohmann::ordered_json::array();
  int64_t fusions = 0, library = 0, single = 0, ops = 0, multiOutput = 0;
  std::string text;
  std::vector<const Node *> earlier; // kernels that may have siblings: not library ops
  for (const auto &node : graph.nodes()) {
    if (isDuplicable(*node))
      continue;
    std::vector<std::string> opNames;
    if (const Graph *body = node->body()) {
      for (const auto &inner : body->nodes())
        if (!isDuplicable(*inner))
          opNames.push_back(std::string(opName(inner->kind())));
      ++fusions;
      multiOutput += node->numResults() > 1 ? 1 : 0;
    } else {
      opNames.push_back(std::string(opName(node->kind())));
      node->info().has(OpTrait::Library) ? ++library : ++single;
    }
    ops += int64_t(opNames.size());
    int64_t bytesIn = 0, bytesOut = 0;
    nlohmann::ordered_json outputs = nlohmann::ordered_json::array();
    for (size_t r = 0; r < node->numResults(); ++r) {
      bytesOut += bytesOf(node->result(r)->type);
      outputs.push_back(names.at(node->result(r)));
    }
    nlohmann::ordered_json notFused = nlohmann::ordered_json::array();
    for (const Value *v : node->operands()) {
      bytesIn += bytesOf(v->type);
      if (v->node && !isDuplicable(*v->node))
        notFused.push_back({{"value", names.at(v)}, {"reason", whyNotFused(graph, *v, *node)}});
    }
    // Siblings: earlier kernels reading an operand worth sharing, not merged.
    nlohmann::ordered_json notMerged = nlohmann::ordered_json::array();
    bool library = node->info().has(OpTrait::Library) && !node->body();
    if (!library) {
      std::unordered_set<const Node *> reported;
      for (const Value *v : node->operands()) {
        if (!worthSharing(v))
          continue;
        for (const Node *other : earlier)
          if (!reported.count(other) &&
              std::find(other->operands().begin(), other->operands().end(), v) != other->operands().end()) {
            reported.insert(other);
            std::string name = describeNode(*other, names);
            notMerged.push_back({{"kernel", name.substr(0, name.find(' '))}, {"shared", names.at(v)},
                                 {"reason", whyNotSiblings(graph, *other, *node)}});
          }
      }
      earlier.push_back(node.get());
    }
    std::string kind = node->body() ? "fusion (" + node->attr("kind").asString() + ")"
                       : library ? "library" : "single op";
    std::string kernelName = describeNode(*node, names);
    kernelName = kernelName.substr(0, kernelName.find(' '));
    nlohmann::ordered_json k = {{"kernel", kernelName}, {"kind", kind}, {"outputs", outputs},
                                {"ops", opNames}, {"bytes_in", bytesIn}, {"bytes_out", bytesOut},
                                {"not_fused", notFused}, {"siblings_not_merged", notMerged}};
    kernels.push_back(k);
    std::string opList;
    for (size_t i = 0; i < opNames.size(); ++i)
      opList += (i ? " " : "") + opNames[i];
    char line[160];
    std::snprintf(line, sizeof line, "%-6s %-20s %10lld B in %10lld B out  ", kernelName.c_str(),
                  kind.c_str(), (long long)bytesIn, (long long)bytesOut);
    text += line + opList + "\n";
    if (node->numResults() > 1) {
      text += "         outputs";
      for (size_t r = 0; r < node->numResults(); ++r)
        text += (r ? ", " : " ") + names.at(node->result(r)) + " " + node->result(r)->type.toString();
      text += "\n";
    }
    for (const auto &nf : notFused)
      text += "         not fused with " + nf["value"].get<std::string>() + ": " +
              nf["reason"].get<std::string>() + "\n";
    for (const auto &nm : notMerged)
      text += "         not merged with sibling " + nm["kernel"].get<std::string>() + " (both read " +
              nm["shared"].get<std::string>() + "): " + nm["reason"].get<std::string>() + "\n";
  }
  int64_t total = fusions + library + single;
  if (json) {
    nlohmann::ordered_json out = {{"graph", graph.name()}, {"kernels", total}, {"fusions", fusions},
                                  {"multi_output_fusions", multiOutput}, {"library_ops", library},
                                  {"single_ops", single}, {"ops", ops}, {"kernel_list", kernels}};
    return out.dump(1) + "\n";
  }
  char summary[240];
  std::snprintf(summary, sizeof summary,
                "@%s: %lld kernels (%lld fusions, %lld library ops, %lld single ops) for %lld ops",
                graph.name().c_str(), (long long)total, (long long)fusions, (long long)library,
                (long long)single, (long long)ops);
  std::string multi = multiOutput ? "; " + std::to_string(multiOutput) + " multi-output fusions" : "";
  return summary + multi + "\n" + text;
}

std::unique_ptr<Pass> createFusionPass() { return std::make_unique<FusionPass>(); }

} // namespace kiln
