// Neural-network composites: each emits IR primitives through the builder
// (the IR keeps few ops; fusion rebuilds the fast kernels). Semantics follow
// torch.nn.functional.
#pragma once

#include "frontend/GraphBuilder.h"

namespace kiln::nn {

/// x @ weightᵀ + bias over the last dim of x ([..., in]); weight is [out, in]
/// (PyTorch's layout), bias [out] or undefined.
Tensor linear(Tensor x, Tensor weight, Tensor bias = {});
Tensor relu(Tensor x);
Tensor sigmoid(Tensor x);

enum class GeluApproximation { None, Tanh };
/// None: x/2 (1 + erf(x/sqrt 2)); Tanh: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
Tensor gelu(Tensor x, GeluApproximation approximate = GeluApproximation::None);

/// exp(x - max) / sum(exp(x - max)) along `axis`.
Tensor softmax(Tensor x, int64_t axis = -1);
/// (x - max) - log(sum(exp(x - max))) along `axis`.
Tensor logSoftmax(Tensor x, int64_t axis = -1);

/// Normalizes over the last `normalizedRank` dims with the biased variance, then
/// scales by weight and shifts by bias (each shaped like those dims, or undefined).
Tensor layerNorm(Tensor x, int64_t normalizedRank, Tensor weight = {}, Tensor bias = {},
                 double eps = 1e-5);

/// Running statistics of batch norm: state arguments of shape [C].
struct BatchNormRunningStats {
  Tensor mean;
  Tensor var;
  double momentum = 0.1;
};
/// Batch norm over [N, C] or [N, C, H, W]: statistics per channel over every other
/// dim. Training uses the batch's statistics (biased variance) and, when
/// `running` is given, emits `update`s of the running mean and of the running
/// variance (unbiased), as torch.nn.functional.batch_norm does in place.
/// Evaluation normalizes with the running statistics (required then).
Tensor batchNorm(Tensor x, Tensor weight, Tensor bias, bool training,
                 const BatchNormRunningStats *running = nullptr, double eps = 1e-5);

/// Zeroes each element with probability p and scales the rest by 1/(1-p), from
/// `rng_uniform` of the i64[] `seed` (a fresh counter range of the graph).
/// The identity when p == 0 or not training.
Tensor dropout(Tensor x, double p, Tensor seed, bool training = true);

/// Rows of `weight` ([num, dim]) at integer `indices`: indices.shape + [dim].
Tensor embedding(Tensor indices, Tensor weight);

/// softmax(q kᵀ · scale + mask) v on [..., T, D] (q, k, v of equal batch dims).
/// `causal`: position i attends to j <= i (torch's is_causal). scale defaults to 1/sqrt(D).
Tensor scaledDotProductAttention(Tensor q, Tensor k, Tensor v, bool causal,
                                 std::optional<double> scale = std::nullopt);
/// [B, T, C] -> [B, heads, T, C/heads].
Tensor splitHeads(Tensor x, int64_t heads);
/// [B, heads, T, D] -> [B, T, heads*D].
Tensor mergeHeads(Tensor x);
/// Multi-head causal self-attention on x [B, T, C]: q, k, v = split(linear(x, qkvWeight
/// [3C, C], qkvBias)), per-head causal attention, then linear(projWeight [C, C], projBias).
Tensor causalSelfAttention(Tensor x, int64_t heads, Tensor qkvWeight, Tensor qkvBias,
                           Tensor projWeight, Tensor projBias);

/// Mean over all rows of -log_softmax(logits)[label]: logits [..., C], integer labels [...].
Tensor crossEntropy(Tensor logits, Tensor labels);
/// mean((prediction - target)^2).
Tensor mse(Tensor prediction, Tensor target);
/// Fraction (f32 scalar) of rows where argmax(logits, -1) == label.
Tensor accuracy(Tensor logits, Tensor labels);

} // namespace kiln::nn
