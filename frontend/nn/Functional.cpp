#include "frontend/nn/Functional.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kiln::nn {

namespace {

/// The most negative finite value of a float type: the masked score. Finite so
/// that a fully masked row stays NaN-free and the text form stays parseable.
double lowestFinite(DType dtype) {
  switch (dtype) {
  case DType::F16: return -65504.0;
  case DType::BF16: return -3.3895313892515355e38;
  case DType::F32: return double(std::numeric_limits<float>::lowest());
  default: return std::numeric_limits<double>::lowest();
  }
}

int64_t normalizeAxis(const Tensor &x, int64_t axis, const char *what) {
  int64_t rank = int64_t(x.rank());
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    x.builder().fail(std::string(what) + " axis " + std::to_string(axis) +
                     " is out of range for " + x.type().toString());
  return a;
}

/// The axes of `x` not in `axes` (sorted), i.e. what a reduction over `axes` keeps.
std::vector<int64_t> keptAxes(const Tensor &x, const std::vector<int64_t> &axes) {
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < int64_t(x.rank()); ++i)
    if (std::find(axes.begin(), axes.end(), i) == axes.end())
      kept.push_back(i);
  return kept;
}

/// A reduction of `like` over `axes` broadcast back to like's shape: one
/// `broadcast` whose dims are the kept axes (no keepdims reshape needed).
Tensor expandReduced(Tensor reduced, const Tensor &like, const std::vector<int64_t> &axes) {
  return broadcast(reduced, like.shape(), keptAxes(like, axes));
}

constexpr double kPi = 3.14159265358979323846;

} // namespace

Tensor linear(Tensor x, Tensor weight, Tensor bias) {
  GraphBuilder &gb = x.builder();
  if (weight.rank() != 2 || x.rank() < 1 || x.dim(-1) != weight.dim(1))
    gb.fail(OpKind::Matmul, "linear expects input [..., in] and weight [out, in], got " +
                                x.type().toString() + " and " + weight.type().toString());
  Tensor flat = x.rank() == 2 ? x : reshape(x, {-1, x.dim(-1)});
  Tensor y = matmul(flat, weight, /*transposeA=*/false, /*transposeB=*/true);
  if (bias.defined())
    y = y + bias;
  if (x.rank() == 2)
    return y;
  std::vector<int64_t> dims = x.shape().dims();
  dims.back() = weight.dim(0);
  return reshape(y, dims);
}

Tensor relu(Tensor x) { return maximum(x, 0.0); }

Tensor sigmoid(Tensor x) { return logistic(x); }

Tensor gelu(Tensor x, GeluApproximation approximate) {
  if (approximate == GeluApproximation::Tanh) {
    const double c = std::sqrt(2.0 / kPi);
    Tensor inner = (x + x * x * x * 0.044715) * c;
    return x * 0.5 * (tanh(inner) + 1.0);
  }
  return x * 0.5 * (erf(x * (1 / std::sqrt(2.0))) + 1.0);
}

Tensor softmax(Tensor x, int64_t axis) {
  std::vector<int64_t> axes{normalizeAxis(x, axis, "softmax")};
  Tensor e = exp(x - expandReduced(reduceMax(x, axes), x, axes));
  return e / expandReduced(reduceSum(e, axes), x, axes);
}

Tensor logSoftmax(Tensor x, int64_t axis) {
  std::vector<int64_t> axes{normalizeAxis(x, axis, "log_softmax")};
  Tensor shifted = x - expandReduced(reduceMax(x, axes), x, axes);
  return shifted - expandReduced(log(reduceSum(exp(shifted), axes)), x, axes);
}

Tensor layerNorm(Tensor x, int64_t normalizedRank, Tensor weight, Tensor bias, double eps) {
  if (normalizedRank < 1 || normalizedRank > int64_t(x.rank()))
    x.builder().fail("layer_norm over the last " + std::to_string(normalizedRank) +
                     " dims of " + x.type().toString());
  std::vector<int64_t> axes;
  for (int64_t i = int64_t(x.rank()) - normalizedRank; i < int64_t(x.rank()); ++i)
    axes.push_back(i);
  Tensor centered = x - expandReduced(reduceMean(x, axes), x, axes);
  Tensor var = reduceMean(centered * centered, axes);
  Tensor y = centered * expandReduced(rsqrt(var + eps), x, axes);
  if (weight.defined())
    y = y * weight;
  if (bias.defined())
    y = y + bias;
  return y;
}

Tensor batchNorm(Tensor x, Tensor weight, Tensor bias, bool training,
                 const BatchNormRunningStats *running, double eps) {
  GraphBuilder &gb = x.builder();
  if (x.rank() < 2)
    gb.fail("batch_norm expects [N, C, ...], got " + x.type().toString());
  int64_t channels = x.dim(1);
  std::vector<int64_t> axes = keptAxes(x, {1});
  // [C] statistics and affine parameters, broadcast along dim 1 of x.
  auto asStat = [&](Tensor t) { return broadcast(t, x.shape(), {1}); };

  Tensor mean, var;
  if (training) {
    mean = reduceMean(x, axes);
    Tensor centered = x - asStat(mean);
    var = reduceMean(centered * centered, axes);
    if (running) {
      int64_t count = x.numElements() / channels;
      double m = running->momentum;
      Tensor unbiased = count > 1 ? var * (double(count) / double(count - 1)) : var;
      gb.update(running->mean, running->mean * (1 - m) + mean * m);
      gb.update(running->var, running->var * (1 - m) + unbiased * m);
    }
  } else {
    if (!running)
      gb.fail("batch_norm in evaluation needs running statistics");
    mean = running->mean;
    var = running->var;
  }
  Tensor y = (x - asStat(mean)) * asStat(rsqrt(var + eps));
  if (weight.defined())
    y = y * asStat(weight);
  if (bias.defined())
    y = y + asStat(bias);
  return y;
}

Tensor dropout(Tensor x, double p, Tensor seed, bool training) {
  if (!(p >= 0 && p <= 1))
    x.builder().fail("dropout probability must be in [0, 1], got " + formatFloat(p));
  if (!training || p == 0)
    return x;
  if (p == 1)
    return x.builder().constant(0.0, x.dtype(), x.shape());
  Tensor u = rngUniform(seed, x.dtype(), x.shape());
  return select(ge(u, p), x * (1 / (1 - p)), 0.0);
}

Tensor embedding(Tensor indices, Tensor weight) { return gather(weight, indices, 0); }

Tensor scaledDotProductAttention(Tensor q, Tensor k, Tensor v, bool causal,
                                 std::optional<double> scale) {
  GraphBuilder &gb = q.builder();
  if (q.rank() < 2)
    gb.fail("attention expects [..., T, D] queries, got " + q.type().toString());
  double s = scale ? *scale : 1 / std::sqrt(double(q.dim(-1)));
  Tensor scores = matmul(q, k, /*transposeA=*/false, /*transposeB=*/true) * s;
  if (causal) {
    int64_t tq = scores.dim(-2), tk = scores.dim(-1);
    Tensor row = gb.iota(DType::I32, {tq, tk}, 0);
    Tensor col = gb.iota(DType::I32, {tq, tk}, 1);
    scores = select(ge(row, col), scores, lowestFinite(scores.dtype()));
  }
  return matmul(softmax(scores, -1), v);
}

Tensor splitHeads(Tensor x, int64_t heads) {
  if (x.rank() != 3 || heads < 1 || x.dim(2) % heads != 0)
    x.builder().fail("cannot split " + x.type().toString() + " into " + std::to_string(heads) +
                     " heads");
  return transpose(reshape(x, {x.dim(0), x.dim(1), heads, x.dim(2) / heads}), {0, 2, 1, 3});
}

Tensor mergeHeads(Tensor x) {
  if (x.rank() != 4)
    x.builder().fail("cannot merge the heads of " + x.type().toString());
  Tensor t = transpose(x, {0, 2, 1, 3});
  return reshape(t, {t.dim(0), t.dim(1), t.dim(2) * t.dim(3)});
}

Tensor causalSelfAttention(Tensor x, int64_t heads, Tensor qkvWeight, Tensor qkvBias,
                           Tensor projWeight, Tensor projBias) {
  int64_t c = x.dim(-1);
  Tensor qkv = linear(x, qkvWeight, qkvBias);
  Tensor q = splitHeads(sliceAxis(qkv, -1, 0, c), heads);
  Tensor k = splitHeads(sliceAxis(qkv, -1, c, 2 * c), heads);
  Tensor v = splitHeads(sliceAxis(qkv, -1, 2 * c, 3 * c), heads);
  Tensor y = mergeHeads(scaledDotProductAttention(q, k, v, /*causal=*/true));
  return linear(y, projWeight, projBias);
}

Tensor crossEntropy(Tensor logits, Tensor labels) {
  GraphBuilder &gb = logits.builder();
  std::vector<int64_t> rowDims(logits.shape().dims().begin(), logits.shape().dims().end() - 1);
  if (logits.rank() < 2 || labels.shape() != Shape(rowDims) || isFloat(labels.dtype()))
    gb.fail("cross_entropy expects logits [..., C] and integer labels [...], got " +
            logits.type().toString() + " and " + labels.type().toString());
  int64_t classes = logits.dim(-1);
  Tensor flatLogits = reshape(logits, {-1, classes});
  int64_t rows = flatLogits.dim(0);
  Tensor flatLabels = labels.rank() == 1 ? labels : reshape(labels, {rows});
  // One-hot by comparing each class index with the row's label.
  Tensor classIds = gb.iota(labels.dtype(), {rows, classes}, 1);
  Tensor isLabel = eq(classIds, broadcast(flatLabels, {rows, classes}, {0}));
  Tensor picked = select(isLabel, logSoftmax(flatLogits, -1), 0.0);
  return -(reduceSum(picked, {0, 1}) / double(rows));
}

Tensor mse(Tensor prediction, Tensor target) {
  Tensor d = prediction - target;
  std::vector<int64_t> axes(d.rank());
  for (size_t i = 0; i < axes.size(); ++i)
    axes[i] = int64_t(i);
  return reduceMean(d * d, axes);
}

Tensor accuracy(Tensor logits, Tensor labels) {
  Tensor predicted = argmax(logits, -1);
  if (predicted.dtype() != labels.dtype())
    predicted = cast(predicted, labels.dtype());
  Tensor hit = cast(eq(predicted, labels), DType::F32);
  std::vector<int64_t> axes(hit.rank());
  for (size_t i = 0; i < axes.size(); ++i)
    axes[i] = int64_t(i);
  return reduceMean(hit, axes);
}

} // namespace kiln::nn
