#include "passes/autodiff/Autodiff.h"

#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Verifier.h"
#include "passes/Pass.h"
#include "runtime/Error.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

namespace kiln {

namespace {

/// One reverse sweep over a graph: cotangents by value, the vector-Jacobian
/// rule of every op, and the checks that keep gradients out of integers.
class ReverseSweep {
public:
  ReverseSweep(Graph &graph, Value *loss) : g_(graph), loss_(loss) {}

  std::vector<Value *> run(const std::vector<Argument *> &wrt);

private:
  // Emission helpers; every node's type comes from inferType.
  Value *emit(OpKind kind, std::vector<Value *> operands, AttrMap attrs = {},
              const TensorType *given = nullptr) {
    return emitNode(g_, kind, std::move(operands), std::move(attrs), given);
  }
  Value *splat(double v, const TensorType &type) { return emitConstant(g_, v, type); }
  Value *add(Value *a, Value *b) { return emit(OpKind::Add, {a, b}); }
  Value *sub(Value *a, Value *b) { return emit(OpKind::Sub, {a, b}); }
  Value *mul(Value *a, Value *b) { return emit(OpKind::Mul, {a, b}); }
  Value *div(Value *a, Value *b) { return emit(OpKind::Div, {a, b}); }
  Value *neg(Value *a) { return emit(OpKind::Neg, {a}); }
  Value *scale(Value *a, double s) { return mul(a, splat(s, a->type)); }
  Value *select(Value *c, Value *a, Value *b) { return emit(OpKind::Select, {c, a, b}); }
  Value *zerosLike(const Value *v) { return splat(0.0, v->type); }
  Value *cmp(OpKind kind, Value *a, Value *b) { return emit(kind, {a, b}); }
  Value *reshape(Value *v, const Shape &shape) {
    TensorType t{v->type.dtype, shape};
    return emit(OpKind::Reshape, {v}, {}, &t);
  }
  Value *broadcast(Value *v, const TensorType &to, std::vector<int64_t> dims) {
    AttrMap attrs;
    attrs.set("dims", Attribute(std::move(dims)));
    return emit(OpKind::Broadcast, {v}, std::move(attrs), &to);
  }
  Value *reduceSum(Value *v, std::vector<int64_t> axes) {
    AttrMap attrs;
    attrs.set("axes", Attribute(std::move(axes)));
    return emit(OpKind::ReduceSum, {v}, std::move(attrs));
  }
  Value *sliceOf(Value *v, std::vector<int64_t> start, std::vector<int64_t> limit,
                 std::vector<int64_t> stride) {
    AttrMap attrs;
    attrs.set("start", Attribute(std::move(start)));
    attrs.set("limit", Attribute(std::move(limit)));
    attrs.set("stride", Attribute(std::move(stride)));
    return emit(OpKind::Slice, {v}, std::move(attrs));
  }
  Value *padOf(Value *v, std::vector<int64_t> low, std::vector<int64_t> high) {
    AttrMap attrs;
    attrs.set("low", Attribute(std::move(low)));
    attrs.set("high", Attribute(std::move(high)));
    return emit(OpKind::Pad, {v}, std::move(attrs));
  }
  /// Broadcast of a reduced value (axes removed) back to `to`.
  Value *unreduce(Value *v, const TensorType &to, const std::vector<int64_t> &axes) {
    std::vector<int64_t> kept;
    for (int64_t d = 0; d < int64_t(to.shape.rank()); ++d)
      if (std::find(axes.begin(), axes.end(), d) == axes.end())
        kept.push_back(d);
    return broadcast(v, TensorType{v->type.dtype, to.shape}, kept);
  }

  void accumulate(const Value *v, Value *contribution) {
    auto [it, inserted] = cotangent_.emplace(v, contribution);
    if (!inserted)
      it->second = add(it->second, contribution);
  }
  /// Where messages about the whole graph point: its header.
  std::string graphLocation() const {
    return g_.loc().known() ? g_.loc().toString() : "@" + g_.name();
  }

  [[noreturn]] void notDifferentiable(const Node &node, const std::string &why) {
    throwError(describeNodeLocation(g_, node),
               "cannot differentiate @" + g_.name() + "'s loss through " +
                   std::string(opName(node.kind())) + ": " + why);
  }

  void propagate(const Node &node, Value *g);
  void broadcastRule(const Node &node, Value *g);
  void sliceRule(const Node &node, Value *g);
  void matmulRule(const Node &node, Value *g);
  void indexRule(const Node &node, Value *g);

  /// Operand `i` of `node` wants a gradient: it depends on a `wrt` argument.
  bool wants(const Node &node, size_t i) const { return active_.count(node.operand(i)) > 0; }

  Graph &g_;
  Value *loss_;
  std::unordered_set<const Value *> active_;
  std::unordered_map<const Value *, Value *> cotangent_;
};

std::vector<Value *> ReverseSweep::run(const std::vector<Argument *> &wrt) {
  if (!isFloat(loss_->type.dtype) || loss_->type.shape.rank() != 0)
    throwError(graphLocation(), "the loss must be a float scalar, got " + loss_->type.toString());
  for (const Argument *arg : wrt) {
    if (!isFloat(arg->value.type.dtype))
      throwError(arg->loc.known() ? arg->loc.toString() : graphLocation(),
                 "cannot differentiate with respect to '%" + arg->name + "' of type " +
                     arg->value.type.toString() + " (not a float type)");
    active_.insert(&arg->value);
  }
  // Forward: which values depend on a wrt argument.
  std::vector<Node *> order;
  for (const auto &node : g_.nodes()) {
    order.push_back(node.get());
    for (const Value *v : node->operands())
      if (active_.count(v)) {
        for (size_t r = 0; r < node->numResults(); ++r)
          active_.insert(node->result(r));
        break;
      }
  }
  // Backward from the loss, over the forward nodes only (new nodes are appended as we go).
  cotangent_[loss_] = splat(1.0, loss_->type);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node &node = **it;
    for (size_t r = 1; r < node.numResults(); ++r)
      if (cotangent_.count(node.result(r)) && active_.count(node.result(r)))
        notDifferentiable(node, "it has " + std::to_string(node.numResults()) +
                                    " results (a multi-output fusion; autodiff runs before fusion)");
    auto found = cotangent_.find(node.result());
    if (found == cotangent_.end() || !active_.count(node.result()))
      continue;
    propagate(node, found->second);
  }
  std::vector<Value *> grads;
  for (const Argument *arg : wrt) {
    auto it = cotangent_.find(&arg->value);
    grads.push_back(it != cotangent_.end() ? it->second : zerosLike(&arg->value));
  }
  return grads;
}

void ReverseSweep::propagate(const Node &node, Value *g) {
  if (!isFloat(node.type().dtype)) {
    // An integer value the loss depends on (through a cast to float) and
    // that depends on a param: the error belongs to the op that left the
    // floats (argmax, a comparison, a cast to an integer), so integer
    // arithmetic in between passes the mark on to its active operands.
    if (!node.info().has(OpTrait::Differentiable))
      notDifferentiable(node, "the op is not differentiable");
    if (node.kind() == OpKind::Cast || node.operands().empty())
      notDifferentiable(node, "its result is of integer type " + node.type().toString());
    for (size_t i = 0; i < node.operands().size(); ++i)
      if (wants(node, i))
        cotangent_.emplace(node.operand(i), nullptr);
    return;
  }
  if (!node.info().has(OpTrait::Differentiable))
    notDifferentiable(node, "the op is not differentiable");
  Value *x = node.operands().empty() ? nullptr : node.operand(0);
  Value *y = const_cast<Node &>(node).result();
  switch (node.kind()) {
  case OpKind::Neg: accumulate(x, neg(g)); return;
  case OpKind::Abs: accumulate(x, mul(g, emit(OpKind::Sign, {x}))); return;
  case OpKind::Exp: accumulate(x, mul(g, y)); return;
  case OpKind::Log: accumulate(x, div(g, x)); return;
  case OpKind::Sqrt: accumulate(x, div(scale(g, 0.5), y)); return;
  case OpKind::Rsqrt: accumulate(x, mul(scale(g, -0.5), div(y, x))); return;
  case OpKind::Tanh: accumulate(x, mul(g, sub(splat(1.0, y->type), mul(y, y)))); return;
  case OpKind::Logistic: accumulate(x, mul(g, mul(y, sub(splat(1.0, y->type), y)))); return;
  case OpKind::Erf: {
    Value *gauss = emit(OpKind::Exp, {neg(mul(x, x))});
    accumulate(x, mul(scale(g, 2.0 / std::sqrt(M_PI)), gauss));
    return;
  }
  case OpKind::Sin: accumulate(x, mul(g, emit(OpKind::Cos, {x}))); return;
  case OpKind::Cos: accumulate(x, neg(mul(g, emit(OpKind::Sin, {x})))); return;
  case OpKind::Cast: {
    if (!isFloat(x->type.dtype)) { // marks the integer operand: see the top of propagate
      cotangent_.emplace(x, nullptr);
      return;
    }
    AttrMap attrs;
    attrs.set("to", x->type.dtype);
    accumulate(x, emit(OpKind::Cast, {g}, attrs));
    return;
  }
  case OpKind::Add:
    if (wants(node, 0)) accumulate(node.operand(0), g);
    if (wants(node, 1)) accumulate(node.operand(1), g);
    return;
  case OpKind::Sub:
    if (wants(node, 0)) accumulate(node.operand(0), g);
    if (wants(node, 1)) accumulate(node.operand(1), neg(g));
    return;
  case OpKind::Mul:
    if (wants(node, 0)) accumulate(node.operand(0), mul(g, node.operand(1)));
    if (wants(node, 1)) accumulate(node.operand(1), mul(g, node.operand(0)));
    return;
  case OpKind::Div:
    if (wants(node, 0)) accumulate(node.operand(0), div(g, node.operand(1)));
    if (wants(node, 1)) accumulate(node.operand(1), neg(div(mul(g, y), node.operand(1))));
    return;
  case OpKind::Max:
  case OpKind::Min: {
    // As PyTorch's maximum/minimum: the winner takes the gradient, a tie splits it.
    Value *a = node.operand(0), *b = node.operand(1);
    OpKind wins = node.kind() == OpKind::Max ? OpKind::Gt : OpKind::Lt;
    Value *half = scale(g, 0.5), *zero = zerosLike(g);
    Value *tie = cmp(OpKind::Eq, a, b);
    if (wants(node, 0)) accumulate(a, select(cmp(wins, a, b), g, select(tie, half, zero)));
    if (wants(node, 1)) accumulate(b, select(cmp(wins, b, a), g, select(tie, half, zero)));
    return;
  }
  case OpKind::Pow: {
    Value *a = node.operand(0), *b = node.operand(1);
    if (wants(node, 0)) {
      Value *powMinus1 = emit(OpKind::Pow, {a, sub(b, splat(1.0, b->type))});
      accumulate(a, mul(g, mul(b, powMinus1)));
    }
    if (wants(node, 1)) {
      // y * log(a), with 0 where a == 0 (as PyTorch), so 0^b does not give NaN.
      Value *isZero = cmp(OpKind::Eq, a, zerosLike(a));
      Value *safeA = select(isZero, splat(1.0, a->type), a);
      accumulate(b, mul(g, select(isZero, zerosLike(a), mul(y, emit(OpKind::Log, {safeA})))));
    }
    return;
  }
  case OpKind::Select: {
    Value *c = node.operand(0), *zero = zerosLike(g);
    if (wants(node, 1)) accumulate(node.operand(1), select(c, g, zero));
    if (wants(node, 2)) accumulate(node.operand(2), select(c, zero, g));
    return;
  }
  case OpKind::Broadcast: broadcastRule(node, g); return;
  case OpKind::Reshape: accumulate(x, reshape(g, x->type.shape)); return;
  case OpKind::Transpose: {
    const auto &perm = node.intsAttr("perm");
    std::vector<int64_t> inverse(perm.size());
    for (size_t i = 0; i < perm.size(); ++i)
      inverse[size_t(perm[i])] = int64_t(i);
    AttrMap attrs;
    attrs.set("perm", Attribute(inverse));
    accumulate(x, emit(OpKind::Transpose, {g}, attrs));
    return;
  }
  case OpKind::Slice: sliceRule(node, g); return;
  case OpKind::Pad: {
    const auto &low = node.intsAttr("low");
    std::vector<int64_t> limit(low.size()), stride(low.size(), 1);
    for (size_t i = 0; i < low.size(); ++i)
      limit[i] = low[i] + x->type.shape[i];
    accumulate(x, sliceOf(g, low, limit, stride));
    return;
  }
  case OpKind::Concat: {
    size_t axis = size_t(node.intAttr("axis"));
    int64_t offset = 0;
    for (size_t i = 0; i < node.operands().size(); ++i) {
      const Shape &s = node.operand(i)->type.shape;
      if (wants(node, i)) {
        std::vector<int64_t> start(s.rank(), 0), limit = y->type.shape.dims(), stride(s.rank(), 1);
        start[axis] = offset;
        limit[axis] = offset + s[axis];
        accumulate(node.operand(i), sliceOf(g, start, limit, stride));
      }
      offset += s[axis];
    }
    return;
  }
  case OpKind::ReduceSum:
    accumulate(x, unreduce(g, x->type, node.intsAttr("axes")));
    return;
  case OpKind::ReduceMax: {
    // Ties share the gradient equally (as PyTorch's amax): deterministic and
    // what finite differences of a max over tied values average to.
    const auto &axes = node.intsAttr("axes");
    Value *isMax = cmp(OpKind::Eq, x, unreduce(y, x->type, axes));
    Value *count = reduceSum(select(isMax, splat(1.0, x->type), zerosLike(x)), axes);
    Value *share = unreduce(div(g, count), x->type, axes);
    accumulate(x, select(isMax, share, zerosLike(x)));
    return;
  }
  case OpKind::Matmul: matmulRule(node, g); return;
  case OpKind::Conv2d:
  case OpKind::Conv2dGradInput:
  case OpKind::Conv2dGradFilter: {
    // conv2d(x, w) = y is bilinear; its two gradients are the grad ops, and
    // the grad ops' gradients are conv2d and the other grad op.
    AttrMap attrs = node.attrs();
    Value *a = node.operand(0), *b = node.operand(1);
    auto gradInput = [&](Value *dy, Value *w, const TensorType &xType) {
      return emit(OpKind::Conv2dGradInput, {dy, w}, attrs, &xType);
    };
    auto gradFilter = [&](Value *xv, Value *dy, const TensorType &wType) {
      return emit(OpKind::Conv2dGradFilter, {xv, dy}, attrs, &wType);
    };
    auto conv = [&](Value *xv, Value *w) { return emit(OpKind::Conv2d, {xv, w}, attrs); };
    if (node.kind() == OpKind::Conv2d) { // a = x, b = w
      if (wants(node, 0)) accumulate(a, gradInput(g, b, a->type));
      if (wants(node, 1)) accumulate(b, gradFilter(a, g, b->type));
    } else if (node.kind() == OpKind::Conv2dGradInput) { // a = dy, b = w, result x
      if (wants(node, 0)) accumulate(a, conv(g, b));
      if (wants(node, 1)) accumulate(b, gradFilter(g, a, b->type));
    } else { // a = x, b = dy, result w
      if (wants(node, 0)) accumulate(a, gradInput(b, g, a->type));
      if (wants(node, 1)) accumulate(b, conv(a, g));
    }
    return;
  }
  case OpKind::MaxPool2d:
    accumulate(x, emit(OpKind::MaxPool2dGrad, {x, g}, node.attrs()));
    return;
  case OpKind::AvgPool2d:
    accumulate(x, emit(OpKind::AvgPool2dGrad, {g}, node.attrs(), &x->type));
    return;
  case OpKind::AvgPool2dGrad: // linear; its adjoint is the pooling itself
    accumulate(x, emit(OpKind::AvgPool2d, {g}, node.attrs()));
    return;
  case OpKind::Gather:
  case OpKind::ScatterAdd:
    indexRule(node, g);
    return;
  // Ops without the Differentiable trait were rejected above; these never get here.
  case OpKind::Sign: case OpKind::Floor: case OpKind::Not: case OpKind::Eq: case OpKind::Ne:
  case OpKind::Lt: case OpKind::Le: case OpKind::Gt: case OpKind::Ge: case OpKind::And:
  case OpKind::Or: case OpKind::Constant: case OpKind::Iota: case OpKind::Argmax:
  case OpKind::MaxPool2dGrad: case OpKind::RngUniform: case OpKind::Fusion:
    break;
  }
  assert(false && "an op without the Differentiable trait reached its rule");
}

void ReverseSweep::broadcastRule(const Node &node, Value *g) {
  Value *x = node.operand(0);
  const auto &dims = node.intsAttr("dims");
  const Shape &to = node.type().shape;
  std::vector<bool> keep(to.rank(), false);
  for (size_t i = 0; i < dims.size(); ++i)
    keep[size_t(dims[i])] = x->type.shape[i] == to[size_t(dims[i])];
  std::vector<int64_t> axes;
  for (size_t d = 0; d < to.rank(); ++d)
    if (!keep[d])
      axes.push_back(int64_t(d));
  Value *summed = axes.empty() ? g : reduceSum(g, axes);
  accumulate(x, summed->type.shape == x->type.shape ? summed : reshape(summed, x->type.shape));
}

void ReverseSweep::sliceRule(const Node &node, Value *g) {
  // Spread the strided elements apart with zeros between them, then pad to
  // the operand's shape: reshape [.., n, ..] -> [.., n, 1, ..], pad that axis
  // to the stride, merge back, drop the trailing zeros.
  Value *x = node.operand(0);
  const auto &start = node.intsAttr("start"), &stride = node.intsAttr("stride");
  size_t rank = x->type.shape.rank();
  Value *spread = g;
  for (size_t d = 0; d < rank; ++d) {
    int64_t n = spread->type.shape[d], s = stride[d];
    if (s == 1 || n == 0)
      continue;
    std::vector<int64_t> split = spread->type.shape.dims();
    split.insert(split.begin() + int64_t(d) + 1, 1);
    std::vector<int64_t> low(rank + 1, 0), high(rank + 1, 0);
    high[d + 1] = s - 1;
    Value *padded = padOf(reshape(spread, Shape(split)), low, high);
    std::vector<int64_t> merged = spread->type.shape.dims();
    merged[d] = n * s;
    Value *flat = reshape(padded, Shape(merged));
    std::vector<int64_t> begin(rank, 0), limit = merged, ones(rank, 1);
    limit[d] = (n - 1) * s + 1;
    spread = sliceOf(flat, begin, limit, ones);
  }
  std::vector<int64_t> low(rank), high(rank);
  for (size_t d = 0; d < rank; ++d) {
    low[d] = start[d];
    high[d] = x->type.shape[d] - start[d] - spread->type.shape[d];
  }
  accumulate(x, padOf(spread, low, high));
}

void ReverseSweep::matmulRule(const Node &node, Value *g) {
  // C = op(A) op(B). The gradients, written so that each is one matmul with
  // transpose flags and comes out in A's and B's stored layout.
  Value *a = node.operand(0), *b = node.operand(1);
  bool ta = node.boolAttr("transpose_a"), tb = node.boolAttr("transpose_b");
  auto matmul = [&](Value *l, Value *r, bool tl, bool tr) {
    AttrMap attrs;
    if (tl) attrs.set("transpose_a", true);
    if (tr) attrs.set("transpose_b", true);
    return emit(OpKind::Matmul, {l, r}, attrs);
  };
  if (wants(node, 0)) {
    if (!ta)
      accumulate(a, tb ? matmul(g, b, false, false) : matmul(g, b, false, true));
    else
      accumulate(a, tb ? matmul(b, g, true, true) : matmul(b, g, false, true));
  }
  if (wants(node, 1)) {
    if (!tb)
      accumulate(b, ta ? matmul(a, g, false, false) : matmul(a, g, true, false));
    else
      accumulate(b, ta ? matmul(g, a, true, true) : matmul(g, a, true, false));
  }
}

void ReverseSweep::indexRule(const Node &node, Value *g) {
  int64_t axis = node.intAttr("axis");
  AttrMap attrs;
  attrs.set("axis", axis);
  if (node.kind() == OpKind::Gather) {
    // gather clamps indices into range; its gradient goes to the clamped index.
    if (!wants(node, 0))
      return; // only the (integer) indices depend on a param: nothing to build
    Value *table = node.operand(0), *idx = node.operand(1);
    int64_t n = table->type.shape[size_t(axis)];
    Value *clamped = emit(OpKind::Max, {emit(OpKind::Min, {idx, splat(double(n - 1), idx->type)}),
                                        splat(0.0, idx->type)});
    accumulate(table, emit(OpKind::ScatterAdd, {clamped, g}, attrs, &table->type));
    return;
  }
  // scatter_add drops out-of-range updates: they get no gradient.
  if (!wants(node, 1))
    return;
  Value *idx = node.operand(0), *upd = node.operand(1);
  int64_t n = node.type().shape[size_t(axis)];
  Value *inRange = emit(OpKind::And, {cmp(OpKind::Ge, idx, splat(0.0, idx->type)),
                                      cmp(OpKind::Lt, idx, splat(double(n), idx->type))});
  std::vector<int64_t> dims;
  for (size_t i = 0; i < idx->type.shape.rank(); ++i)
    dims.push_back(axis + int64_t(i));
  Value *mask = broadcast(inRange, TensorType{DType::I1, upd->type.shape}, dims);
  Value *gathered = emit(OpKind::Gather, {g, idx}, attrs);
  accumulate(upd, select(mask, gathered, zerosLike(upd)));
}

class AutodiffPass final : public Pass {
  std::string_view name() const override { return "autodiff"; }
  std::string_view description() const override {
    return "appends the gradient of the first result w.r.t. every float param as results grad.NAME";
  }
  PassResult run(Graph &graph) override {
    if (graph.results().empty())
      throwError(graph.loc().known() ? graph.loc().toString() : "@" + graph.name(),
                 "autodiff needs a result to differentiate (the loss)");
    std::vector<Argument *> params;
    for (const auto &arg : graph.arguments())
      if (arg->role == ArgRole::Param && isFloat(arg->value.type.dtype))
        params.push_back(arg.get());
    if (params.empty())
      return PassResult::Unchanged;
    std::vector<Value *> grads = appendGradients(graph, graph.results()[0], params);
    for (size_t i = 0; i < params.size(); ++i)
      graph.addResult(grads[i], "grad." + params[i]->name);
    return PassResult::Changed;
  }
};

} // namespace

std::vector<Value *> appendGradients(Graph &graph, Value *loss, const std::vector<Argument *> &wrt) {
  return ReverseSweep(graph, loss).run(wrt);
}

std::unique_ptr<Pass> createAutodiffPass() { return std::make_unique<AutodiffPass>(); }

} // namespace kiln
