#include "passes/simplify/CommonSubexpressions.h"

#include "ir/Graph.h"
#include "passes/Pass.h"
#include "passes/simplify/ConstantFold.h"
#include "passes/simplify/DeadCode.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace kiln {

namespace {

bool isCommutative(OpKind kind) {
  switch (kind) {
  case OpKind::Add:
  case OpKind::Mul:
  case OpKind::Max:
  case OpKind::Min:
  case OpKind::Eq:
  case OpKind::Ne:
  case OpKind::And:
  case OpKind::Or: return true;
  default: return false;
  }
}

/// One element of a constant's value, spelled so that equal values of one
/// type read the same: integers exactly, integral floats as integers (not
/// -0.0), other floats in shortest round-trip form.
std::string numberKey(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9007199254740992.0 &&
      !(v == 0 && std::signbit(v)))
    return std::to_string(int64_t(v));
  return formatFloat(v);
}
std::string numberKey(const Attribute &a) {
  return a.isInt() ? std::to_string(a.asInt()) : numberKey(a.asFloat());
}

std::string constantKey(const Node &node) {
  if (std::optional<Attribute> s = splatValue(*node.result()))
    return "splat " + numberKey(*s);
  const Attribute &value = node.attr("value");
  std::string key = "list";
  if (value.isIntList())
    for (int64_t x : value.asIntList())
      key += " " + std::to_string(x);
  else
    for (double x : value.asFloatList())
      key += " " + numberKey(x);
  return key;
}

class CommonSubexpressions final : public Pass {
  std::string_view name() const override { return "cse"; }
  std::string_view description() const override {
    return "merges nodes with the same op, operands, attributes and type (the first one stays)";
  }
  PassResult run(Graph &graph) override {
    std::unordered_map<const Value *, size_t> ids;
    for (const auto &arg : graph.arguments())
      ids.emplace(&arg->value, ids.size());
    std::unordered_map<std::string, Value *> first;
    std::vector<const Node *> merged;
    for (const auto &node : graph.nodes()) {
      if (node->body()) { // a fusion kernel: never merged
        for (size_t r = 0; r < node->numResults(); ++r)
          ids.emplace(node->result(r), ids.size());
        continue;
      }
      std::string key = keyOf(*node, ids);
      auto [it, inserted] = first.emplace(std::move(key), node->result());
      if (inserted) {
        ids.emplace(node->result(), ids.size());
        continue;
      }
      graph.replaceAllUses(node->result(), it->second);
      merged.push_back(node.get());
    }
    if (merged.empty())
      return PassResult::Unchanged;
    eraseIfUnused(graph, merged);
    return PassResult::Changed;
  }

  /// Equal keys for nodes that compute the same value. `ids` numbers the
  /// values that stay; operands always have one, being defined earlier.
  static std::string keyOf(const Node &node, const std::unordered_map<const Value *, size_t> &ids) {
    std::string key(opName(node.kind()));
    key += " " + node.type().toString();
    std::vector<size_t> operands;
    for (const Value *v : node.operands())
      operands.push_back(ids.at(v));
    if (isCommutative(node.kind()))
      std::sort(operands.begin(), operands.end());
    for (size_t id : operands)
      key += " %" + std::to_string(id);
    if (node.kind() == OpKind::Constant) {
      key += " " + constantKey(node);
      AttrMap rest = node.attrs();
      rest.erase("value");
      for (const auto &[name, value] : canonicalAttributes(node.kind(), rest))
        key += " " + name + "=" + value.toString();
      return key;
    }
    for (const auto &[name, value] : canonicalAttributes(node.kind(), node.attrs()))
      key += " " + name + "=" + value.toString();
    return key;
  }
};

} // namespace

std::unique_ptr<Pass> createCommonSubexpressionsPass() {
  return std::make_unique<CommonSubexpressions>();
}

} // namespace kiln
