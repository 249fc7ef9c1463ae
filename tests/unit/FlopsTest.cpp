// countFlops (compiler/FlopCount.h) against counts worked out by hand from
// the shapes of shared/BENCHMARKS.md's models.
#include "compiler/FlopCount.h"

#include "TestHelpers.h"
#include "frontend/GraphBuilder.h"
#include "ir/GraphEdit.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

OptimizerOptions momentum() {
  OptimizerOptions o;
  o.kind = OptimizerKind::Momentum;
  return o;
}

/// The count of `graph` after the default pipeline (fusion, memory plan).
FlopCount countAfterPipeline(const Graph &graph) {
  std::unique_ptr<Graph> copy = cloneGraph(graph);
  runPasses(*copy, parsePassPipeline(defaultPipeline()));
  return countFlops(*copy);
}

TEST(Flops, MlpForwardAndTrainingStep) {
  // 784-512-512-10, batch 128: three matmuls forward.
  const int64_t fwdMacs = 128 * (784 * 512 + 512 * 512 + 512 * 10); // 85,590,016
  std::unique_ptr<Graph> model = examples::buildMlp();
  EXPECT_EQ(countFlops(*model).contraction, 2 * fwdMacs);
  EXPECT_EQ(countFlops(*model).contraction, 171180032);
  // Training: forward + each weight's gradient (as many MACs as forward) +
  // the gradient of the inputs of fc2 and fc3 (x is an input: no gradient).
  const int64_t dxMacs = 128 * (512 * 512 + 512 * 10);
  std::unique_ptr<Graph> step = buildTrainingStep(*model, momentum());
  EXPECT_EQ(countFlops(*step).contraction, 2 * (2 * fwdMacs + dxMacs));
  EXPECT_EQ(countFlops(*step).contraction, 410779648);
  EXPECT_EQ(countAfterPipeline(*step).contraction, countFlops(*step).contraction);
  // The simplification passes may fold a few scalar ops away, never add work.
  EXPECT_LE(countAfterPipeline(*step).elementwise, countFlops(*step).elementwise);
  EXPECT_GT(countAfterPipeline(*step).elementwise, countFlops(*step).elementwise * 99 / 100);
}

TEST(Flops, CnnForwardAndTrainingStep) {
  // Batch 32; conv MACs = N*O*OH*OW*C*KH*KW.
  const int64_t conv1 = 32 * 32 * 32 * 32 * 3 * 9;   // 32x32 output, 3 -> 32
  const int64_t conv2 = 32 * 64 * 16 * 16 * 32 * 9;  // after maxpool: 16x16, 32 -> 64
  const int64_t conv3 = 32 * 128 * 8 * 8 * 64 * 9;   // 8x8, 64 -> 128
  const int64_t fc = 32 * 128 * 10;
  std::unique_ptr<Graph> model = examples::buildCnn();
  EXPECT_EQ(countFlops(*model).contraction, 2 * (conv1 + conv2 + conv3 + fc));
  EXPECT_EQ(countFlops(*model).contraction, 660684800);
  // Filter gradients of all three convs and fc; input gradients of conv2,
  // conv3 and fc (not conv1: the images are an input).
  std::unique_ptr<Graph> step = buildTrainingStep(*model, momentum());
  EXPECT_EQ(countFlops(*step).contraction,
            2 * (2 * (conv1 + conv2 + conv3 + fc) + conv2 + conv3 + fc));
  EXPECT_EQ(countAfterPipeline(*step).contraction, countFlops(*step).contraction);
}

TEST(Flops, GptForwardAndTrainingStep) {
  // B*T = 1024 rows, d = 256, 4 heads of 64, vocab 512, 2 blocks.
  const int64_t rows = 8 * 128, d = 256;
  const int64_t qkv = rows * d * 3 * d, proj = rows * d * d, mlp = 2 * rows * d * 4 * d;
  const int64_t attention = 2 * (8 * 4) * 128 * 128 * 64; // q k^T and p v
  const int64_t head = rows * d * 512;
  const int64_t fwdMacs = 2 * (qkv + attention + proj + mlp) + head; // 1,879,048,192
  std::unique_ptr<Graph> model = examples::buildGpt();
  EXPECT_EQ(countFlops(*model).contraction, 2 * fwdMacs);
  // Every matmul operand depends on a param: both gradients of each.
  OptimizerOptions adamw;
  adamw.kind = OptimizerKind::AdamW;
  std::unique_ptr<Graph> step = buildTrainingStep(*model, adamw);
  EXPECT_EQ(countFlops(*step).contraction, 3 * 2 * fwdMacs);
  EXPECT_EQ(countAfterPipeline(*step).contraction, countFlops(*step).contraction);
}

TEST(Flops, GroupedStridedConvAndItsGradients) {
  // x [2,4,9,9], w [6,2,3,3], groups 2, stride 2, padding 1: y [2,6,5,5];
  // MACs = N*O*OH*OW*(C/groups)*KH*KW = 2*6*5*5*2*3*3 = 5400.
  GraphBuilder b("conv");
  Tensor x = b.param("x", DType::F32, {2, 4, 9, 9}, Init::uniform(-1, 1));
  Tensor w = b.param("w", DType::F32, {6, 2, 3, 3}, Init::uniform(-1, 1));
  b.output(reduceSum(conv2d(x, w, Conv2dOptions(2, 1, 1, 2)), {0, 1, 2, 3}), "loss");
  std::unique_ptr<Graph> model = b.finish();
  EXPECT_EQ(countFlops(*model).contraction, 2 * 5400);
  EXPECT_EQ(countFlops(*model).elementwise, 2 * 6 * 5 * 5); // the reduce_sum
  // Both params: conv2d_grad_input and conv2d_grad_filter, 5400 MACs each.
  OptimizerOptions sgd;
  std::unique_ptr<Graph> step = buildTrainingStep(*model, sgd);
  EXPECT_EQ(countFlops(*step).contraction, 3 * 2 * 5400);
}

TEST(Flops, BatchedTransposedMatmulAndElementwise) {
  // a [3,5,7] transposed: [3,7,5] x b [3,5,4] -> [3,7,4], K = 5.
  GraphBuilder b("mm");
  Tensor a = b.input("a", DType::F32, {3, 5, 7});
  Tensor c = b.input("c", DType::F32, {3, 5, 4});
  Tensor y = matmul(a, c, /*transposeA=*/true);
  Tensor z = exp(y) + y;                  // 84 + 84
  b.output(reduceMax(z, {2}), "out");     // 84 operand elements
  b.output(z * 2.0, "scaled");            // 84 (the constant 2.0 counts 0)
  std::unique_ptr<Graph> g = b.finish();
  EXPECT_EQ(countFlops(*g).contraction, 2 * 3 * 7 * 4 * 5);
  EXPECT_EQ(countFlops(*g).elementwise, 4 * 84);
  // After fusion the same ops sit in fusion bodies: the same counts.
  EXPECT_EQ(countAfterPipeline(*g).contraction, 2 * 3 * 7 * 4 * 5);
  EXPECT_EQ(countAfterPipeline(*g).elementwise, 4 * 84);
}

} // namespace
} // namespace kiln
