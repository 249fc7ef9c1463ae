#include "passes/fusion/Fusion.h"

#include "ir/Graph.h"
#include "ir/Printer.h"
#include "passes/Pass.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <cstdio>
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

  void outline(Graph &graph, const std::vector<Node *> &members, Node *root,
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

PassResult FusionPass::run(Graph &graph) {
  auto users = usersOf(graph);
  std::unordered_set<const Value *> escaping = escapingValues(graph);
  std::unordered_map<const Node *, size_t> groupOf;
  std::vector<std::vector<Node *>> groups; // members in reverse visiting order
  std::vector<Node *> roots;

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
      roots.push_back(node);
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

  bool changed = false;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].size() < 2)
      continue;
    outline(graph, groups[g], roots[g], copied);
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

void FusionPass::outline(Graph &graph, const std::vector<Node *> &members, Node *root,
                         const std::unordered_set<const Node *> &copied) {
  std::unordered_set<const Node *> inGroup(members.begin(), members.end());
  std::vector<Node *> ordered; // members in graph order
  for (const auto &n : graph.nodes())
    if (inGroup.count(n.get()))
      ordered.push_back(n.get());

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
  body->addResult(inner.at(root->result()));
  // Constants were added while walking the members: move them first so the
  // body is in a valid order.
  body->sortNodesTopologically();

  bool epilogue = false;
  if (onlyElementwise) {
    auto users = usersOf(graph);
    for (Value *v : operands)
      if (v->node && v->node->kind() == OpKind::Matmul && users[v].size() == 1 &&
          !escapingValues(graph).count(v))
        epilogue = true;
  }
  AttrMap attrs;
  attrs.set("kind", hasReduction ? "reduction" : epilogue ? "epilogue" : "loop");
  Node *fusion = graph.addNode(OpKind::Fusion, operands, attrs, root->type(), root->loc());
  fusion->setBody(std::move(body));
  graph.replaceAllUses(root->result(), fusion->result());

  std::vector<Node *> order;
  for (const auto &n : graph.nodes()) {
    if (n.get() == root)
      order.push_back(fusion);
    else if (!inGroup.count(n.get()) && n.get() != fusion)
      order.push_back(n.get());
  }
  graph.eraseNodesIf([&](const Node &n) { return inGroup.count(&n) > 0; });
  graph.reorderNodes(order);
}

/// The printed names (%N) of a graph's top-level values.
std::unordered_map<const Value *, std::string> valueNames(const Graph &graph) {
  std::unordered_map<const Value *, std::string> names;
  for (const auto &arg : graph.arguments())
    names[&arg->value] = "%" + arg->name;
  size_t i = 0;
  for (const auto &n : graph.nodes())
    names[n->result()] = "%" + std::to_string(i++);
  return names;
}

} // namespace

std::string whyNotFused(const Graph &graph, const Node &producer, const Node &consumer) {
  if (producer.info().has(OpTrait::Library) && producer.kind() != OpKind::Fusion)
    return std::string(opName(producer.kind())) + " is a library op and stays its own kernel";
  if (consumer.info().has(OpTrait::Library) && consumer.kind() != OpKind::Fusion)
    return std::string(opName(consumer.kind())) + " is a library op; nothing is fused into it";
  for (const Value *r : graph.results())
    if (r == producer.result())
      return "its value is a result of the graph";
  for (const Update &u : graph.updates())
    if (u.source == producer.result())
      return "its value is the new value of %" + u.target->name;
  auto names = valueNames(graph);
  std::vector<std::string> others;
  for (const auto &n : graph.nodes())
    if (n.get() != &consumer &&
        std::find(n->operands().begin(), n->operands().end(), producer.result()) != n->operands().end())
      others.push_back(names.at(n->result()) + " (" + std::string(opName(n->kind())) + ")");
  if (!others.empty()) {
    std::string list;
    for (size_t i = 0; i < others.size() && i < 3; ++i)
      list += (i ? ", " : "") + others[i];
    if (others.size() > 3)
      list += " and " + std::to_string(others.size() - 3) + " more";
    return "its value is also used by " + list + ", so fusing would compute it twice";
  }
  return "a group of one op is not wrapped";
}

std::string fusionReport(const Graph &graph, bool json) {
  auto names = valueNames(graph);
  nlohmann::ordered_json kernels = nlohmann::ordered_json::array();
  int64_t fusions = 0, library = 0, single = 0, ops = 0;
  std::string text;
  for (const auto &node : graph.nodes()) {
    if (isDuplicable(*node))
      continue;
    std::vector<std::string> opNames;
    if (const Graph *body = node->body()) {
      for (const auto &inner : body->nodes())
        if (!isDuplicable(*inner))
          opNames.push_back(std::string(opName(inner->kind())));
      ++fusions;
    } else {
      opNames.push_back(std::string(opName(node->kind())));
      node->info().has(OpTrait::Library) ? ++library : ++single;
    }
    ops += int64_t(opNames.size());
    int64_t bytesIn = 0;
    nlohmann::ordered_json notFused = nlohmann::ordered_json::array();
    for (const Value *v : node->operands()) {
      bytesIn += bytesOf(v->type);
      if (v->node && !isDuplicable(*v->node))
        notFused.push_back({{"value", names.at(v)}, {"reason", whyNotFused(graph, *v->node, *node)}});
    }
    std::string kind = node->body() ? "fusion (" + node->attr("kind").asString() + ")"
                       : node->info().has(OpTrait::Library) ? "library" : "single op";
    nlohmann::ordered_json k = {{"kernel", names.at(node->result())}, {"kind", kind},
                                {"ops", opNames}, {"bytes_in", bytesIn},
                                {"bytes_out", bytesOf(node->type())}, {"not_fused", notFused}};
    kernels.push_back(k);
    std::string opList;
    for (size_t i = 0; i < opNames.size(); ++i)
      opList += (i ? " " : "") + opNames[i];
    char line[160];
    std::snprintf(line, sizeof line, "%-6s %-20s %10lld B in %10lld B out  ", names.at(node->result()).c_str(),
                  kind.c_str(), (long long)bytesIn, (long long)bytesOf(node->type()));
    text += line + opList + "\n";
    for (const auto &nf : notFused)
      text += "         not fused with " + nf["value"].get<std::string>() + ": " +
              nf["reason"].get<std::string>() + "\n";
  }
  int64_t total = fusions + library + single;
  if (json) {
    nlohmann::ordered_json out = {{"graph", graph.name()}, {"kernels", total}, {"fusions", fusions},
                                  {"library_ops", library}, {"single_ops", single}, {"ops", ops},
                                  {"kernel_list", kernels}};
    return out.dump(1) + "\n";
  }
  char summary[200];
  std::snprintf(summary, sizeof summary,
                "@%s: %lld kernels (%lld fusions, %lld library ops, %lld single ops) for %lld ops\n",
                graph.name().c_str(), (long long)total, (long long)fusions, (long long)library,
                (long long)single, (long long)ops);
  return summary + text;
}

std::unique_ptr<Pass> createFusionPass() { return std::make_unique<FusionPass>(); }

} // namespace kiln
