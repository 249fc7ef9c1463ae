#include "ir/Graph.h"

#include <cassert>
#include <unordered_map>
#include <unordered_set>

namespace kiln {

std::string TensorType::toString() const {
  return std::string(dtypeName(dtype)) + shape.toString();
}

std::string Location::toString() const {
  if (!known())
    return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(col);
}

std::string_view argRoleName(ArgRole role) {
  switch (role) {
  case ArgRole::Input: return "input";
  case ArgRole::Param: return "param";
  case ArgRole::State: return "state";
  }
  return "?";
}

Node::Node(OpKind kind, std::vector<Value *> operands, AttrMap attrs, TensorType type, Location loc)
    : kind_(kind), operands_(std::move(operands)), attrs_(std::move(attrs)), loc_(std::move(loc)) {
  result_.type = std::move(type);
  result_.node = this;
}

Node::Node(OpKind kind, std::vector<Value *> operands, AttrMap attrs,
           const std::vector<TensorType> &types, Location loc)
    : Node(kind, std::move(operands), std::move(attrs), types.at(0), std::move(loc)) {
  for (size_t i = 1; i < types.size(); ++i) {
    auto v = std::make_unique<Value>();
    v->type = types[i];
    v->node = this;
    v->index = unsigned(i);
    extraResults_.push_back(std::move(v));
  }
}

Node::~Node() = default;

std::vector<TensorType> Node::resultTypes() const {
  std::vector<TensorType> types;
  for (size_t i = 0; i < numResults(); ++i)
    types.push_back(result(i)->type);
  return types;
}

void Node::setBody(std::unique_ptr<Graph> body) { body_ = std::move(body); }

const Attribute &Node::attr(const std::string &name) const {
  if (const Attribute *a = attrs_.find(name))
    return *a;
  const AttrSpec *spec = info().findAttr(name);
  assert(spec && spec->defaultValue && "attribute is neither set nor defaulted");
  return *spec->defaultValue;
}

std::string resultSuffix(const Value &v) {
  if (!v.node || v.node->numResults() == 1)
    return {};
  return "#" + std::to_string(v.index);
}

Argument *Graph::addArgument(std::string name, TensorType type, ArgRole role, AttrMap attrs,
                             Location loc) {
  auto arg = std::make_unique<Argument>();
  arg->name = std::move(name);
  arg->role = role;
  arg->attrs = std::move(attrs);
  arg->loc = std::move(loc);
  arg->value.type = std::move(type);
  arg->value.arg = arg.get();
  args_.push_back(std::move(arg));
  return args_.back().get();
}

Node *Graph::addNode(OpKind kind, std::vector<Value *> operands, AttrMap attrs, TensorType type,
                     Location loc) {
  nodes_.push_back(std::make_unique<Node>(kind, std::move(operands), std::move(attrs),
                                          std::move(type), std::move(loc)));
  return nodes_.back().get();
}

Node *Graph::addNode(OpKind kind, std::vector<Value *> operands, AttrMap attrs,
                     const std::vector<TensorType> &types, Location loc) {
  nodes_.push_back(std::make_unique<Node>(kind, std::move(operands), std::move(attrs), types,
                                          std::move(loc)));
  return nodes_.back().get();
}

void Graph::addResult(Value *v, std::string name) {
  results_.push_back(v);
  resultNames_.push_back(std::move(name));
}

void Graph::addUpdate(Argument *target, Value *source, Location loc) {
  updates_.push_back(Update{target, source, std::move(loc)});
}

std::string Graph::resultName(size_t i) const {
  return resultNames_[i].empty() ? "out" + std::to_string(i) : resultNames_[i];
}

Argument *Graph::findArgument(const std::string &name) const {
  for (const auto &arg : args_)
    if (arg->name == name)
      return arg.get();
  return nullptr;
}

size_t Graph::eraseNodesIf(const std::function<bool(const Node &)> &pred) {
  size_t before = nodes_.size();
  std::vector<std::unique_ptr<Node>> kept;
  kept.reserve(nodes_.size());
  for (auto &n : nodes_)
    if (!pred(*n))
      kept.push_back(std::move(n));
  nodes_ = std::move(kept);
  return before - nodes_.size();
}

size_t Graph::replaceAllUses(const Value *from, Value *to) {
  size_t changed = 0;
  for (auto &node : nodes_)
    for (size_t i = 0; i < node->operands().size(); ++i)
      if (node->operand(i) == from) {
        node->setOperand(i, to);
        ++changed;
      }
  for (Value *&r : results_)
    if (r == from) {
      r = to;
      ++changed;
    }
  for (Update &u : updates_)
    if (u.source == from) {
      u.source = to;
      ++changed;
    }
  return changed;
}

void Graph::sortNodesTopologically() {
  // Repeatedly take the first node (in current order) whose operands are all
  // defined: stable, deterministic, O(n^2) in the worst case but linear when
  // the order is already valid.
  std::unordered_set<const Value *> defined;
  for (const auto &arg : args_)
    defined.insert(&arg->value);
  std::vector<std::unique_ptr<Node>> pending = std::move(nodes_);
  nodes_.clear();
  while (!pending.empty()) {
    bool progressed = false;
    std::vector<std::unique_ptr<Node>> rest;
    for (auto &node : pending) {
      bool ready = true;
      for (const Value *v : node->operands())
        ready = ready && defined.count(v);
      if (ready) {
        for (size_t r = 0; r < node->numResults(); ++r)
          defined.insert(node->result(r));
        nodes_.push_back(std::move(node));
        progressed = true;
      } else {
        rest.push_back(std::move(node));
      }
    }
    assert(progressed && "the graph has a cycle");
    if (!progressed) { // keep the nodes rather than lose them; the verifier reports it
      for (auto &node : rest)
        nodes_.push_back(std::move(node));
      return;
    }
    pending = std::move(rest);
  }
}

void Graph::reorderNodes(const std::vector<Node *> &order) {
  assert(order.size() == nodes_.size() && "a schedule must hold every node once");
  std::unordered_map<const Node *, std::unique_ptr<Node>> owned;
  for (auto &node : nodes_)
    owned[node.get()] = std::move(node);
  nodes_.clear();
  for (Node *n : order)
    nodes_.push_back(std::move(owned.at(n)));
}

} // namespace kiln
