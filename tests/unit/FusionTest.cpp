// The fusion pass on the example training steps: results unchanged, kernels
// few, nothing computed twice, library ops alone.
#include "compiler/TrainingStep.h"
#include "examples/models/Models.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/PassManager.h"
#include "tests/unit/TestHelpers.h"
#include "passes/fusion/Fusion.h"

#include <gtest/gtest.h>

#include <cmath>

namespace kiln {
namespace {


/// Ops that do work, inside fusions too: everything but constants, iotas and
/// broadcasts (which fusion copies into each consumer that reads them).
int64_t countOps(const Graph &g) {
  int64_t n = 0;
  for (const auto &node : g.nodes())
    if (node->body())
      n += countOps(*node->body());
    else
      n += !node->operands().empty() && node->kind() != OpKind::Broadcast;
  return n;
}

int64_t countKernels(const Graph &g) {
  int64_t n = 0;
  for (const auto &node : g.nodes())
    n += node->body() || !node->operands().empty();
  return n;
}

void expectSameResults(const Graph &before, const Graph &after, Precision precision, double rel) {
  TensorMap args;
  for (const auto &a : before.arguments())
    args[a->name] = defaultArgumentValue(*a, 11);
  InterpreterResult x = interpret(before, args, precision), y = interpret(after, args, precision);
  ASSERT_EQ(x.results.size(), y.results.size());
  auto close = [&](const HostTensor &a, const HostTensor &b, const std::string &what) {
    ASSERT_EQ(a.numElements(), b.numElements()) << what;
    for (int64_t i = 0; i < a.numElements(); ++i)
      ASSERT_LE(std::fabs(a.getDouble(i) - b.getDouble(i)), rel * std::max(1.0, std::fabs(a.getDouble(i))))
          << what << "[" << i << "]";
  };
  for (size_t i = 0; i < x.results.size(); ++i)
    close(x.results[i], y.results[i], "result " + std::to_string(i));
  ASSERT_EQ(x.updated.size(), y.updated.size());
  for (const auto &[name, t] : x.updated)
    close(t, y.updated.at(name), name);
}


class FusionOnSteps : public testing::TestWithParam<std::string> {};

TEST_P(FusionOnSteps, KeepsResultsAndFusesLibraryOpsNever) {
  std::unique_ptr<Graph> step = smallTrainingStep(GetParam(), OptimizerKind::AdamW);
  std::unique_ptr<Graph> fused = cloneGraph(*step);
  runPasses(*fused, parsePassPipeline("fuse"), verifyEachOptions());
  expectSameResults(*step, *fused, Precision::F64, 1e-12);
  expectSameResults(*step, *fused, Precision::Native, 1e-6);
  for (const auto &node : fused->nodes()) {
    if (!node->body())
      continue;
    for (const auto &inner : node->body()->nodes())
      EXPECT_FALSE(inner->info().has(OpTrait::Library)) << opName(inner->kind());
  }
  EXPECT_EQ(countOps(*fused), countOps(*step))
      << "fusion neither drops nor duplicates work (only broadcasts are copied)";
  EXPECT_LT(countKernels(*fused) * 2, countOps(*step));
  // AdamW's two moments re-read each gradient: sibling fusion writes them in
  // one kernel.
  int multiOutput = 0;
  for (const auto &node : fused->nodes())
    multiOutput += node->numResults() > 1;
  EXPECT_GT(multiOutput, 0);
  // Printing is deterministic and re-parses to the same graph.
  std::string text = printGraph(*fused);
  Module reparsed = parseModule(text, "fused.kir");
  EXPECT_EQ(printGraph(*reparsed.graphs[0]), text);
  std::unique_ptr<Graph> again = cloneGraph(*step);
  runPasses(*again, parsePassPipeline("fuse"), {});
  EXPECT_EQ(printGraph(*again), text);
}

INSTANTIATE_TEST_SUITE_P(Examples, FusionOnSteps, testing::Values("mlp", "cnn", "gpt"));

TEST(Fusion, SoftmaxRowIsOneKernelAndTheReportExplains) {
  Module m = parseModule(R"(graph @softmax(%x: f32[4,8] input, %w: f32[8,8] param) -> (f32[4,8]) {
  %0 = matmul %x, %w : f32[4,8]
  %1 = reduce_max %0 {axes = [1]} : f32[4]
  %2 = broadcast %1 {dims = [0]} : f32[4,8]
  %3 = sub %0, %2 : f32[4,8]
  %4 = exp %3 : f32[4,8]
  %5 = reduce_sum %4 {axes = [1]} : f32[4]
  %6 = broadcast %5 {dims = [0]} : f32[4,8]
  %7 = div %4, %6 : f32[4,8]
  return %7
}
)", "softmax.kir");
  Graph &g = *m.graphs[0];
  runPasses(g, parsePassPipeline("fuse"), verifyEachOptions());
  ASSERT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(g.nodes()[0]->kind(), OpKind::Matmul);
  EXPECT_EQ(g.nodes()[1]->kind(), OpKind::Fusion);
  EXPECT_EQ(g.nodes()[1]->attr("kind").asString(), "reduction");
  std::string report = fusionReport(g, false);
  EXPECT_NE(report.find("@softmax: 2 kernels (1 fusions, 1 library ops, 0 single ops) for 8 ops"),
            std::string::npos) << report;
  EXPECT_NE(report.find("not fused with %0: matmul is a library op and stays its own kernel"),
            std::string::npos) << report;
}

TEST(Fusion, NeverComputesAValueTwice) {
  // %1 is used by two consumers that cannot both hold it: it stays alone.
  Module m = parseModule(R"(graph @g(%x: f32[8] input, %w: f32[8,8] input) -> (f32[8], f32[8]) {
  %0 = exp %x : f32[8]
  %1 = neg %0 : f32[8]
  %2 = tanh %1 : f32[8]
  %3 = reshape %1 : f32[1,8]
  %4 = matmul %3, %w : f32[1,8]
  %5 = reshape %4 : f32[8]
  return %2, %5
}
)", "g.kir");
  Graph &g = *m.graphs[0];
  runPasses(g, parsePassPipeline("fuse"), verifyEachOptions());
  std::string report = fusionReport(g, false);
  EXPECT_NE(report.find("its value is also used by"), std::string::npos) << report;
  EXPECT_EQ(countOps(g), 6);
}

TEST(Fusion, CopiesABroadcastIntoEachConsumerKernel) {
  // The broadcast of %b feeds two kernels (one a result; the other a row
  // reduction, so they are not siblings of one loop): each reads %b itself.
  Module m = parseModule(R"(graph @g(%x: f32[4,8] input, %b: f32[8] input) -> (f32[4,8], f32[4]) {
  %0 = broadcast %b {dims = [1]} : f32[4,8]
  %1 = add %x, %0 : f32[4,8]
  %2 = exp %1 : f32[4,8]
  %3 = mul %x, %0 : f32[4,8]
  %4 = reduce_sum %3 {axes = [1]} : f32[4]
  return %2, %4
}
)", "g.kir");
  Graph &g = *m.graphs[0];
  runPasses(g, parsePassPipeline("fuse"), verifyEachOptions());
  ASSERT_EQ(g.nodes().size(), 2u);
  for (const auto &node : g.nodes()) {
    ASSERT_EQ(node->kind(), OpKind::Fusion);
    EXPECT_EQ(node->body()->nodes()[0]->kind(), OpKind::Broadcast);
  }
}

TEST(Fusion, MarksMatmulEpilogues) {
  Module m = parseModule(R"(graph @g(%x: f32[4,8] input, %w: f32[8,16] param, %b: f32[16] param) -> (f32[4,16]) {
  %0 = matmul %x, %w : f32[4,16]
  %1 = broadcast %b {dims = [1]} : f32[4,16]
  %2 = add %0, %1 : f32[4,16]
  %3 = constant {value = 0.0} : f32[4,16]
  %4 = max %2, %3 : f32[4,16]
  return %4
}
)", "g.kir");
  Graph &g = *m.graphs[0];
  runPasses(g, parsePassPipeline("fuse"), verifyEachOptions());
  ASSERT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(g.nodes()[1]->attr("kind").asString(), "epilogue");
}

} // namespace
} // namespace kiln
