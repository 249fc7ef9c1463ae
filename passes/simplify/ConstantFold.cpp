#include "passes/simplify/ConstantFold.h"

#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Verifier.h"
#include "passes/Pass.h"
#include "passes/simplify/DeadCode.h"

#include <cmath>
#include <cstring>
#include <unordered_map>

namespace kiln {

namespace {

/// Results up to this many elements are folded even when not a splat.
constexpr int64_t kMaxLiteralElements = 64;
/// A node is evaluated on full-size operands only if its operands and result
/// hold at most this many elements together: folding stays cheap.
constexpr int64_t kMaxEvaluatedElements = int64_t(1) << 18;
/// A reduction or matmul of splats is evaluated on one output element; this
/// bounds how many operand elements that one element sums.
constexpr int64_t kMaxReducedElements = int64_t(1) << 22;

/// Equal as stored values: NaN equals NaN, -0.0 differs from 0.0.
bool sameReal(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || (a == b && std::signbit(a) == std::signbit(b));
}

bool isConstant(const Value *v) { return v->node && v->node->kind() == OpKind::Constant; }

/// Runs a copy of `node` whose operands are constants of `types` holding
/// `values`, through the reference interpreter in Precision::Native. For
/// `GivenType` ops `given` is the result type.
HostTensor evaluate(const Node &node, const std::vector<TensorType> &types,
                    const std::vector<Attribute> &values, const TensorType *given) {
  Graph graph("fold");
  std::vector<Value *> operands;
  for (size_t i = 0; i < types.size(); ++i) {
    AttrMap attrs;
    attrs.set("value", values[i]);
    operands.push_back(graph.addNode(OpKind::Constant, {}, std::move(attrs), types[i])->result());
  }
  AttrMap attrs = node.attrs();
  attrs.erase(kBufferAttr);
  graph.addResult(emitNode(graph, node.kind(), operands, std::move(attrs), given));
  return interpret(graph, {}, Precision::Native).results[0];
}

/// The `value` attribute of a constant holding `t`: a splat when every
/// element is equal, else a list (only when `allowList`).
std::optional<Attribute> literalOf(const HostTensor &t, bool allowList) {
  int64_t n = t.numElements();
  if (n == 0)
    return std::nullopt;
  if (isFloat(t.dtype())) {
    std::vector<double> values = t.toDoubles();
    bool splat = true;
    for (double v : values)
      splat = splat && sameReal(v, values[0]);
    if (splat)
      return Attribute(values[0]);
    return allowList ? std::optional<Attribute>(Attribute(std::move(values))) : std::nullopt;
  }
  std::vector<int64_t> values;
  for (int64_t i = 0; i < n; ++i)
    values.push_back(t.getInt(i));
  bool splat = true;
  for (int64_t v : values)
    splat = splat && v == values[0];
  if (splat)
    return Attribute(values[0]);
  return allowList ? std::optional<Attribute>(Attribute(std::move(values))) : std::nullopt;
}

/// `type` with every dimension 1 except those `keep` says to keep.
TensorType shrink(const TensorType &type, const std::vector<bool> &keep) {
  TensorType t = type;
  for (size_t d = 0; d < t.shape.rank(); ++d)
    if (!keep[d])
      t.shape[d] = 1;
  return t;
}

/// The value of a reduction or matmul whose operands are splats: every output
/// element is the same sum, so one output element is evaluated, on operands
/// shrunk to what that element reads.
std::optional<Attribute> foldSplatContraction(const Node &node,
                                              const std::vector<Attribute> &splats) {
  std::vector<TensorType> types;
  for (const Value *v : node.operands())
    types.push_back(v->type);
  int64_t summed = 1;
  if (node.kind() == OpKind::Matmul) {
    size_t rank = types[0].shape.rank();
    size_t kA = node.boolAttr("transpose_a") ? rank - 2 : rank - 1;
    size_t kB = node.boolAttr("transpose_b") ? rank - 1 : rank - 2;
    std::vector<bool> keepA(rank, false), keepB(rank, false);
    keepA[kA] = keepB[kB] = true;
    summed = types[0].shape[kA];
    types = {shrink(types[0], keepA), shrink(types[1], keepB)};
  } else {
    std::vector<int64_t> axes = node.kind() == OpKind::Argmax
                                    ? std::vector<int64_t>{node.intAttr("axis")}
                                    : node.intsAttr("axes");
    std::vector<bool> keep(types[0].shape.rank(), false);
    for (int64_t a : axes) {
      keep[size_t(a)] = true;
      summed *= types[0].shape[size_t(a)];
    }
    types[0] = shrink(types[0], keep);
  }
  if (summed > kMaxReducedElements)
    return std::nullopt;
  return literalOf(evaluate(node, types, splats, nullptr), false);
}

/// The `value` of the constant that `node` folds to, or nothing.
std::optional<Attribute> foldedValue(const Node &node) {
  OpKind kind = node.kind();
  // A fusion node would need its body evaluated: fold before fusing.
  if (kind == OpKind::Constant || kind == OpKind::RngUniform || node.body())
    return std::nullopt;
  std::vector<Attribute> splats;
  bool allSplats = true;
  int64_t operandElements = 0;
  for (const Value *v : node.operands()) {
    if (!isConstant(v))
      return std::nullopt;
    std::optional<Attribute> s = splatValue(*v);
    allSplats = allSplats && s;
    if (s)
      splats.push_back(*s);
    operandElements += v->type.numElements();
  }
  const TensorType &type = node.type();
  if (type.numElements() == 0)
    return isFloat(type.dtype) ? Attribute(0.0) : Attribute(int64_t(0));

  if (allSplats && !node.operands().empty()) {
    if (node.info().has(OpTrait::Elementwise)) {
      // Every element is the same computation: evaluate it once, on scalars.
      std::vector<TensorType> scalars;
      for (const Value *v : node.operands())
        scalars.push_back(TensorType{v->type.dtype, Shape{}});
      return literalOf(evaluate(node, scalars, splats, nullptr), false);
    }
    switch (kind) {
    case OpKind::Broadcast:
    case OpKind::Reshape:
    case OpKind::Transpose:
    case OpKind::Slice: return splats[0]; // moves elements, so the splat stays
    case OpKind::ReduceSum:
    case OpKind::ReduceMax:
    case OpKind::Argmax:
    case OpKind::Matmul:
      if (std::optional<Attribute> value = foldSplatContraction(node, splats))
        return value;
      break;
    default: break; // evaluated in full below: pad, concat, conv2d, ... of splats
    }
  }

  // A large result of non-splats is hardly ever a splat: not worth running.
  bool small = type.numElements() <= kMaxLiteralElements;
  if ((!small && !(allSplats && !node.operands().empty())) ||
      operandElements + type.numElements() > kMaxEvaluatedElements)
    return std::nullopt;
  std::vector<TensorType> types;
  std::vector<Attribute> values;
  for (const Value *v : node.operands()) {
    types.push_back(v->type);
    values.push_back(v->node->attr("value"));
  }
  const TensorType *given = node.info().has(OpTrait::GivenType) ? &type : nullptr;
  return literalOf(evaluate(node, types, values, given), small);
}

class ConstantFold final : public Pass {
  std::string_view name() const override { return "constant-fold"; }
  std::string_view description() const override {
    return "replaces nodes of constants by the constant the interpreter computes (small or splat "
           "results)";
  }
  PassResult run(Graph &graph) override {
    std::vector<Node *> nodes;
    for (const auto &node : graph.nodes())
      nodes.push_back(node.get());
    std::unordered_map<const Node *, Node *> folded; // node -> the constant that replaces it
    std::vector<const Node *> bypassed;
    for (Node *node : nodes) {
      std::optional<Attribute> value = foldedValue(*node);
      if (!value)
        continue;
      AttrMap attrs;
      attrs.set("value", std::move(*value));
      Node *constant =
          graph.addNode(OpKind::Constant, {}, std::move(attrs), node->type(), node->loc());
      graph.replaceAllUses(node->result(), constant->result());
      folded.emplace(node, constant);
      bypassed.push_back(node);
      bypassed.push_back(constant); // later folds may leave it unused
    }
    if (folded.empty())
      return PassResult::Unchanged;
    // Each new constant goes where the node it replaces was.
    std::vector<Node *> order;
    for (Node *node : nodes) {
      auto it = folded.find(node);
      if (it != folded.end())
        order.push_back(it->second);
      order.push_back(node);
    }
    graph.reorderNodes(order);
    eraseIfUnused(graph, bypassed);
    return PassResult::Changed;
  }
};

} // namespace

std::optional<Attribute> splatValue(const Value &v) {
  if (!isConstant(&v))
    return std::nullopt;
  const Attribute &value = v.node->attr("value");
  if (value.isNumber())
    return value;
  if (value.isIntList() && !value.asIntList().empty()) {
    const auto &list = value.asIntList();
    for (int64_t x : list)
      if (x != list[0])
        return std::nullopt;
    return Attribute(list[0]);
  }
  if (value.isFloatList() && !value.asFloatList().empty()) {
    const auto &list = value.asFloatList();
    for (double x : list)
      if (!sameReal(x, list[0]))
        return std::nullopt;
    return Attribute(list[0]);
  }
  return std::nullopt;
}

std::unique_ptr<Pass> createConstantFoldPass() { return std::make_unique<ConstantFold>(); }

} // namespace kiln
