// Optimizers as graph rewrites: one training step in one graph.
#pragma once

#include <optional>
#include <string>

namespace kiln {

class Graph;
struct Value;

enum class OptimizerKind { Sgd, Momentum, Nesterov, Adam, AdamW };

/// `sgd momentum nesterov adam adamw`.
std::optional<OptimizerKind> parseOptimizerKind(const std::string &name);
const char *optimizerName(OptimizerKind kind);

/// Hyper-parameters, with PyTorch's meanings and defaults (torch.optim.SGD,
/// Adam, AdamW); `weightDecay` unset means PyTorch's default (0, or 0.01 for
/// AdamW).
struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::Sgd;
  double learningRate = 0.01; // the default value of the `lr` input
  double momentum = 0.9;      // momentum and nesterov
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::optional<double> weightDecay;
  double clipNorm = 0; // > 0: clip the global gradient norm to this (clip_grad_norm_)

  double effectiveWeightDecay() const;
};

/// Turns `graph`, whose value `loss` is a float scalar, into a whole training
/// step: the gradient of the loss with respect to every float param
/// (passes/autodiff), optional global-norm clipping, then the optimizer's
/// update of every param as `update` statements.
///
/// Adds to the graph: an input `lr: f32[] {default = LR}` (a schedule feeds it,
/// nothing is recompiled), the optimizer's state as `state` arguments named as
/// in PyTorch's optimizer state (`NAME.momentum_buffer`, `NAME.exp_avg`,
/// `NAME.exp_avg_sq`; zeros initially), and for Adam/AdamW a step counter
/// `optimizer.step: f32[]` used for bias correction. The graph's results are
/// unchanged. Throws `kiln::Error` when the graph has no float param, already
/// updates one, or an argument name the optimizer needs is taken.
void appendOptimizerStep(Graph &graph, Value *loss, const OptimizerOptions &options);

} // namespace kiln
