#include "passes/simplify/Canonicalize.h"

#include "ir/Graph.h"
#include "passes/Pass.h"
#include "passes/simplify/ConstantFold.h"
#include "passes/simplify/DeadCode.h"

#include <cmath>
#include <unordered_map>

namespace kiln {

namespace {

bool isKind(const Value *v, OpKind kind) { return v->node && v->node->kind() == kind; }

/// `v` is a splat of exactly `x`: a splat constant, or a broadcast of one.
bool isSplatOf(const Value *v, double x) {
  if (isKind(v, OpKind::Broadcast))
    v = v->node->operand(0);
  std::optional<Attribute> s = splatValue(*v);
  return s && s->asNumber() == x;
}

/// A transpose that swaps the last two dimensions and keeps the others.
bool swapsLastTwo(const std::vector<int64_t> &perm) {
  size_t rank = perm.size();
  if (rank < 2 || perm[rank - 2] != int64_t(rank - 1) || perm[rank - 1] != int64_t(rank - 2))
    return false;
  for (size_t i = 0; i + 2 < rank; ++i)
    if (perm[i] != int64_t(i))
      return false;
  return true;
}

bool isIdentity(const std::vector<int64_t> &perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != int64_t(i))
      return false;
  return true;
}

/// Integers below 2^53 are exact as doubles, so a float constant may hold
/// them as floats: both precisions of the interpreter read the same value.
bool exactAsDouble(int64_t v) { return v > -(int64_t(1) << 53) && v < (int64_t(1) << 53); }

/// The constant's value spelled canonically, if it is not: a splat for a
/// list of equal values, floats for a float dtype.
std::optional<Attribute> canonicalValue(const Node &constant) {
  // Compared by what changed, not with ==: NaN != NaN.
  std::optional<Attribute> canonical;
  const Attribute &value = constant.attr("value");
  if (!value.isNumber() && constant.type().numElements() > 0)
    canonical = splatValue(*constant.result());
  if (!isFloat(constant.type().dtype))
    return canonical;
  const Attribute &current = canonical ? *canonical : value;
  if (current.isInt() && exactAsDouble(current.asInt()))
    return Attribute(double(current.asInt()));
  if (current.isIntList()) {
    std::vector<double> reals;
    for (int64_t v : current.asIntList()) {
      if (!exactAsDouble(v))
        return canonical;
      reals.push_back(double(v));
    }
    return Attribute(std::move(reals));
  }
  return canonical;
}

class Rewriter {
public:
  explicit Rewriter(Graph &graph) : graph_(graph) {}

  bool run() {
    std::vector<Node *> nodes;
    for (const auto &node : graph_.nodes())
      nodes.push_back(node.get());
    for (Node *node : nodes) {
      foldChains(*node);
      Value *replacement = simplified(*node);
      if (!replacement)
        continue;
      graph_.replaceAllUses(node->result(), replacement);
      bypassed_.push_back(node);
      changed_ = true;
    }
    if (!created_.empty()) {
      std::vector<Node *> order;
      for (Node *node : nodes) {
        auto it = created_.find(node);
        if (it != created_.end())
          order.push_back(it->second);
        order.push_back(node);
      }
      graph_.reorderNodes(order);
    }
    eraseIfUnused(graph_, bypassed_);
    return changed_;
  }

private:
  /// Makes `node` read past a producer it composes with; the node keeps its
  /// type, location and place.
  void foldChains(Node &node) {
    switch (node.kind()) {
    case OpKind::Reshape:
      while (isKind(node.operand(0), OpKind::Reshape))
        bypass(node, 0, node.operand(0)->node->operand(0));
      break;
    case OpKind::Transpose:
      while (isKind(node.operand(0), OpKind::Transpose)) {
        const Node &inner = *node.operand(0)->node;
        const std::vector<int64_t> &outerPerm = node.intsAttr("perm");
        const std::vector<int64_t> &innerPerm = inner.intsAttr("perm");
        std::vector<int64_t> perm;
        for (int64_t p : outerPerm)
          perm.push_back(innerPerm[size_t(p)]);
        node.attrs().set("perm", Attribute(std::move(perm)));
        bypass(node, 0, inner.operand(0));
      }
      break;
    case OpKind::Broadcast:
      while (isKind(node.operand(0), OpKind::Broadcast)) {
        const Node &inner = *node.operand(0)->node;
        const std::vector<int64_t> &outerDims = node.intsAttr("dims");
        std::vector<int64_t> dims;
        for (int64_t d : inner.intsAttr("dims"))
          dims.push_back(outerDims[size_t(d)]);
        node.attrs().set("dims", Attribute(std::move(dims)));
        bypass(node, 0, inner.operand(0));
      }
      break;
    case OpKind::Matmul:
      for (size_t i = 0; i < 2; ++i) {
        const char *flag = i == 0 ? "transpose_a" : "transpose_b";
        while (isKind(node.operand(i), OpKind::Transpose) &&
               swapsLastTwo(node.operand(i)->node->intsAttr("perm"))) {
          node.attrs().set(flag, !node.boolAttr(flag));
          bypass(node, i, node.operand(i)->node->operand(0));
        }
      }
      break;
    case OpKind::Constant:
      if (std::optional<Attribute> value = canonicalValue(node)) {
        node.attrs().set("value", std::move(*value));
        changed_ = true;
      }
      break;
    default: break;
    }
  }

  /// What `node` can be replaced by: an existing value or a new node; null
  /// when it stays.
  Value *simplified(Node &node) {
    auto operand = [&](size_t i) { return node.operand(i); };
    switch (node.kind()) {
    case OpKind::Add:
      if (isSplatOf(operand(1), 0))
        return operand(0);
      if (isSplatOf(operand(0), 0))
        return operand(1);
      return nullptr;
    case OpKind::Sub: return isSplatOf(operand(1), 0) ? operand(0) : nullptr;
    case OpKind::Mul:
      if (isSplatOf(operand(1), 1))
        return operand(0);
      if (isSplatOf(operand(0), 1))
        return operand(1);
      return nullptr;
    case OpKind::Div: return isSplatOf(operand(1), 1) ? operand(0) : nullptr;
    case OpKind::Neg:
      return isKind(operand(0), OpKind::Neg) ? operand(0)->node->operand(0) : nullptr;
    case OpKind::Cast:
    case OpKind::Reshape: return operand(0)->type == node.type() ? operand(0) : nullptr;
    case OpKind::Transpose: return isIdentity(node.intsAttr("perm")) ? operand(0) : nullptr;
    case OpKind::Broadcast: {
      if (operand(0)->type == node.type())
        return operand(0);
      std::optional<Attribute> s = splatValue(*operand(0));
      if (!s)
        return nullptr;
      AttrMap attrs;
      attrs.set("value", *s);
      Node *constant =
          graph_.addNode(OpKind::Constant, {}, std::move(attrs), node.type(), node.loc());
      if (std::optional<Attribute> value = canonicalValue(*constant))
        constant->attrs().set("value", std::move(*value));
      created_.emplace(&node, constant);
      bypassed_.push_back(constant); // later rewrites may leave it unused
      return constant->result();
    }
    default: return nullptr;
    }
  }

  /// Sets operand `i` of `node` to `to`; its old producer may now be unused.
  void bypass(Node &node, size_t i, Value *to) {
    if (node.operand(i)->node)
      bypassed_.push_back(node.operand(i)->node);
    node.setOperand(i, to);
    changed_ = true;
  }

  Graph &graph_;
  std::vector<const Node *> bypassed_;
  std::unordered_map<const Node *, Node *> created_; // replaced node -> new node in its place
  bool changed_ = false;
};

class Canonicalize final : public Pass {
  std::string_view name() const override { return "canonicalize"; }
  std::string_view description() const override {
    return "algebraic identities (x+0, x*1, neg(neg x), ...), shape-op chains, transposes into "
           "matmul flags";
  }
  PassResult run(Graph &graph) override {
    return Rewriter(graph).run() ? PassResult::Changed : PassResult::Unchanged;
  }
};

} // namespace

std::unique_ptr<Pass> createCanonicalizePass() { return std::make_unique<Canonicalize>(); }

} // namespace kiln
