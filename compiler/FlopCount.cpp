#include "compiler/FlopCount.h"

#include "ir/Graph.h"

namespace kiln {

namespace {

int64_t product(const std::vector<int64_t> &dims, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i)
    p *= dims[i];
  return p;
}

/// The multiply-accumulates of the forward convolution behind a conv2d or
/// one of its gradients: N*O*OH*OW*(C/groups)*KH*KW, read from the shapes of
/// input x [N,C,H,W], filter w [O,C/g,KH,KW] and output y [N,O,OH,OW].
int64_t convMacs(const Node &node) {
  const Shape &a = node.operand(0)->type.shape, &b = node.operand(1)->type.shape;
  const Shape &r = node.type().shape;
  const Shape *w = nullptr, *y = nullptr;
  switch (node.kind()) {
  case OpKind::Conv2d: w = &b, y = &r; break;           // conv2d(x, w) -> y
  case OpKind::Conv2dGradInput: w = &b, y = &a; break;  // (dy, w) -> dx
  case OpKind::Conv2dGradFilter: w = &r, y = &b; break; // (x, dy) -> dw
  default: return 0;
  }
  // y: N, O, OH, OW; w: O, C/g, KH, KW.
  return (*y)[0] * (*y)[1] * (*y)[2] * (*y)[3] * (*w)[1] * (*w)[2] * (*w)[3];
}

void count(const Graph &graph, FlopCount &flops) {
  for (const auto &node : graph.nodes()) {
    switch (node->kind()) {
    case OpKind::Fusion:
      count(*node->body(), flops);
      continue;
    case OpKind::Matmul: {
      const Shape &a = node->operand(0)->type.shape, &y = node->type().shape;
      size_t rank = y.rank();
      int64_t k = node->boolAttr("transpose_a") ? a[rank - 2] : a[rank - 1];
      flops.contraction += 2 * product(y.dims(), 0, rank) * k;
      continue;
    }
    case OpKind::Conv2d:
    case OpKind::Conv2dGradInput:
    case OpKind::Conv2dGradFilter:
      flops.contraction += 2 * convMacs(*node);
      continue;
    case OpKind::Constant:
      continue;
    default:
      break;
    }
    if (node->info().has(OpTrait::Elementwise))
      flops.elementwise += node->type().numElements();
    else if (node->info().has(OpTrait::Reduction))
      flops.elementwise += node->operand(0)->type.numElements();
  }
}

} // namespace

FlopCount countFlops(const Graph &graph) {
  FlopCount flops;
  count(graph, flops);
  return flops;
}

} // namespace kiln
