#include "passes/optim/Optimizer.h"

#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "passes/autodiff/Autodiff.h"
#include "runtime/Error.h"

#include <cmath>

namespace kiln {

std::optional<OptimizerKind> parseOptimizerKind(const std::string &name) {
  for (OptimizerKind k : {OptimizerKind::Sgd, OptimizerKind::Momentum, OptimizerKind::Nesterov,
                          OptimizerKind::Adam, OptimizerKind::AdamW})
    if (name == optimizerName(k))
      return k;
  return std::nullopt;
}

const char *optimizerName(OptimizerKind kind) {
  switch (kind) {
  case OptimizerKind::Sgd: return "sgd";
  case OptimizerKind::Momentum: return "momentum";
  case OptimizerKind::Nesterov: return "nesterov";
  case OptimizerKind::Adam: return "adam";
  case OptimizerKind::AdamW: return "adamw";
  }
  return "?";
}

double OptimizerOptions::effectiveWeightDecay() const {
  return weightDecay.value_or(kind == OptimizerKind::AdamW ? 0.01 : 0.0);
}

namespace {

/// Emits the update arithmetic of one step. Scalars are splats of the
/// param's type; the `lr` input and the step counter are broadcast to it.
class StepWriter {
public:
  StepWriter(Graph &g, const OptimizerOptions &o) : g_(g), o_(o) {}

  void run(Value *loss);

private:
  Value *emit(OpKind kind, std::vector<Value *> operands, AttrMap attrs = {},
              const TensorType *given = nullptr) {
    return emitNode(g_, kind, std::move(operands), std::move(attrs), given);
  }
  Value *c(double v, const Value *like) { return emitConstant(g_, v, like->type); }
  Value *add(Value *a, Value *b) { return emit(OpKind::Add, {a, b}); }
  Value *sub(Value *a, Value *b) { return emit(OpKind::Sub, {a, b}); }
  Value *mul(Value *a, Value *b) { return emit(OpKind::Mul, {a, b}); }
  Value *div(Value *a, Value *b) { return emit(OpKind::Div, {a, b}); }
  /// A scalar (f32[]) as a value of `like`'s type.
  Value *spread(Value *scalar, const Value *like) {
    Value *s = scalar;
    if (s->type.dtype != like->type.dtype) {
      AttrMap to;
      to.set("to", like->type.dtype);
      s = emit(OpKind::Cast, {s}, to);
    }
    if (like->type.shape.rank() == 0)
      return s;
    AttrMap dims;
    dims.set("dims", Attribute(Attribute::IntList{}));
    return emit(OpKind::Broadcast, {s}, dims, &like->type);
  }
  Argument *newArgument(const std::string &name, TensorType type, ArgRole role, AttrMap attrs) {
    if (g_.findArgument(name))
      throwError("@" + g_.name(), "the optimizer needs an argument named '" + name +
                                      "', but the graph already has one");
    return g_.addArgument(name, std::move(type), role, std::move(attrs));
  }
  Value *zerosState(const Argument &param, const std::string &suffix) {
    AttrMap init;
    init.set("init", "zeros");
    return &newArgument(param.name + "." + suffix, param.value.type, ArgRole::State, init)->value;
  }
  void update(Value *target, Value *source) { g_.addUpdate(target->arg, source); }
  std::vector<Value *> clip(const std::vector<Value *> &grads);

  Graph &g_;
  const OptimizerOptions &o_;
};

std::vector<Value *> StepWriter::clip(const std::vector<Value *> &grads) {
  // torch.nn.utils.clip_grad_norm_: total = sqrt(sum of all g^2);
  // g *= min(max_norm / (total + 1e-6), 1).
  Value *total = nullptr;
  for (Value *gr : grads) {
    std::vector<int64_t> axes;
    for (int64_t d = 0; d < int64_t(gr->type.shape.rank()); ++d)
      axes.push_back(d);
    AttrMap attrs;
    attrs.set("axes", Attribute(axes));
    Value *sq = emit(OpKind::ReduceSum, {mul(gr, gr)}, attrs);
    if (sq->type.dtype != DType::F32) {
      AttrMap to;
      to.set("to", DType::F32);
      sq = emit(OpKind::Cast, {sq}, to);
    }
    total = total ? add(total, sq) : sq;
  }
  Value *norm = emit(OpKind::Sqrt, {total});
  Value *coef = emit(OpKind::Min, {div(c(o_.clipNorm, norm), add(norm, c(1e-6, norm))), c(1.0, norm)});
  std::vector<Value *> clipped;
  for (Value *gr : grads)
    clipped.push_back(mul(gr, spread(coef, gr)));
  return clipped;
}

void StepWriter::run(Value *loss) {
  std::vector<Argument *> params;
  for (const auto &arg : g_.arguments())
    if (arg->role == ArgRole::Param && isFloat(arg->value.type.dtype))
      params.push_back(arg.get());
  if (params.empty())
    throwError("@" + g_.name(), "a training step needs at least one float param to train");
  for (const Update &u : g_.updates())
    if (u.target->role == ArgRole::Param)
      throwError("@" + g_.name(), "param '%" + u.target->name +
                                      "' is already updated; the optimizer updates every param");

  std::vector<Value *> grads = appendGradients(g_, loss, params);
  if (o_.clipNorm > 0)
    grads = clip(grads);

  AttrMap lrAttrs;
  lrAttrs.set("default", o_.learningRate);
  Value *lr = &newArgument("lr", TensorType{DType::F32, Shape{}}, ArgRole::Input, lrAttrs)->value;
  double wd = o_.effectiveWeightDecay();
  bool adam = o_.kind == OptimizerKind::Adam || o_.kind == OptimizerKind::AdamW;

  // Adam's bias corrections from a step counter kept in state.
  Value *stepSize = nullptr, *bc2Sqrt = nullptr;
  if (adam) {
    AttrMap init;
    init.set("init", "zeros");
    Value *step = &newArgument("optimizer.step", TensorType{DType::F32, Shape{}}, ArgRole::State,
                               init)->value;
    Value *t = add(step, c(1.0, step));
    update(step, t);
    Value *bc1 = sub(c(1.0, t), emit(OpKind::Pow, {c(o_.beta1, t), t}));
    Value *bc2 = sub(c(1.0, t), emit(OpKind::Pow, {c(o_.beta2, t), t}));
    stepSize = div(lr, bc1);
    bc2Sqrt = emit(OpKind::Sqrt, {bc2});
  }

  for (size_t i = 0; i < params.size(); ++i) {
    Value *w = &params[i]->value, *grad = grads[i];
    Value *lrW = spread(lr, w);
    if (wd != 0 && o_.kind != OptimizerKind::AdamW)
      grad = add(grad, mul(c(wd, w), w)); // L2 penalty in the gradient (SGD, Adam)
    switch (o_.kind) {
    case OptimizerKind::Sgd:
      update(w, sub(w, mul(lrW, grad)));
      break;
    case OptimizerKind::Momentum:
    case OptimizerKind::Nesterov: {
      Value *buf = zerosState(*params[i], "momentum_buffer");
      Value *newBuf = add(mul(c(o_.momentum, buf), buf), grad);
      update(buf, newBuf);
      Value *direction = o_.kind == OptimizerKind::Nesterov
                             ? add(grad, mul(c(o_.momentum, newBuf), newBuf))
                             : newBuf;
      update(w, sub(w, mul(lrW, direction)));
      break;
    }
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: {
      Value *decayed = w;
      if (o_.kind == OptimizerKind::AdamW && wd != 0) // decoupled: w *= 1 - lr * wd
        decayed = mul(w, sub(c(1.0, w), mul(lrW, c(wd, w))));
      Value *m = zerosState(*params[i], "exp_avg");
      Value *v = zerosState(*params[i], "exp_avg_sq");
      Value *newM = add(mul(c(o_.beta1, m), m), mul(c(1 - o_.beta1, grad), grad));
      Value *newV = add(mul(c(o_.beta2, v), v), mul(c(1 - o_.beta2, grad), mul(grad, grad)));
      update(m, newM);
      update(v, newV);
      Value *denom = add(div(emit(OpKind::Sqrt, {newV}), spread(bc2Sqrt, w)), c(o_.eps, w));
      update(w, sub(decayed, mul(spread(stepSize, w), div(newM, denom))));
      break;
    }
    }
  }
}

} // namespace

void appendOptimizerStep(Graph &graph, Value *loss, const OptimizerOptions &options) {
  StepWriter(graph, options).run(loss);
}

} // namespace kiln
