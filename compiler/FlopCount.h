// Floating-point operations of a graph, counted from its ops and shapes: the
// numerator of the GFLOP/s and of the efficiency figures of kiln-bench.
#pragma once

#include <cstdint>

namespace kiln {

class Graph;

/// What one run of a graph computes, in floating-point operations.
///
///   - `contraction`: matmul 2*B*M*N*K (B the batch dims of the result; a
///     multiply and an add per multiply-accumulate); conv2d,
///     conv2d_grad_input and conv2d_grad_filter each 2*N*O*OH*OW*(C/groups)*KH*KW,
///     the multiply-accumulates of the forward convolution (each gradient
///     does as many). Gradients are ops of a training step like any other,
///     so a step counts its forward and backward contractions. This is the
///     figure GFLOP/s and the sgemm-limit efficiency are computed from.
///   - `elementwise`: 1 per result element of each elementwise op
///     (arithmetic, transcendental, comparison, select, cast; a constant 0)
///     and 1 per operand element of each reduction (reduce_sum, reduce_max,
///     argmax). Reported separately, never added to `contraction`.
///   - Everything else counts 0: shape ops (broadcast, reshape, transpose,
///     slice, pad, concat), gather, scatter_add, pooling and its gradients,
///     iota, rng_uniform.
///
/// A fusion counts the ops of its body, so the count does not change when
/// the fusion pass groups ops (nor with the memory plan).
struct FlopCount {
  int64_t contraction = 0;
  int64_t elementwise = 0;
};

FlopCount countFlops(const Graph &graph);

} // namespace kiln
