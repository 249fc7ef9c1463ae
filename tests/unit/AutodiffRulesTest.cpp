// Autodiff rules that finite differences cannot pin down (ties in max and
// reduce_max, a value used twice), what the autodiff pass builds and what it
// leaves alone. The finite-difference checks of every op are in AutodiffTest.cpp.
#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "passes/PassManager.h"
#include "passes/autodiff/Autodiff.h"
#include "runtime/Error.h"
#include "tests/unit/TestHelpers.h"

#include <gtest/gtest.h>

#include <set>

namespace kiln {
namespace {

using Dims = std::vector<int64_t>;

// ---------------------------------------------------------------------------
// Hand-computed gradients: what finite differences cannot check (ties).

/// Runs the autodiff pass on an f64 graph and returns the result `grad.NAME`.
std::vector<double> gradientOf(const std::string &text, const TensorMap &args, const std::string &param) {
  Module module = parseModule(text, "hand.kir");
  Graph &graph = *module.graphs[0];
  runPasses(graph, parsePassPipeline("autodiff"), verifyEachOptions());
  InterpreterResult r = interpret(graph, args, Precision::F64);
  for (size_t i = 0; i < graph.results().size(); ++i)
    if (graph.resultName(i) == "grad." + param)
      return r.results[i].toDoubles();
  ADD_FAILURE() << "no result grad." << param;
  return {};
}

HostTensor f64(Dims shape, const std::vector<double> &values) {
  return HostTensor::fromDoubles(DType::F64, Shape(std::move(shape)), values);
}

TEST(AutodiffTies, ReduceMaxSharesTheGradientEqually) {
  const char *text = R"(graph @g(%x: f64[2,3] param, %cot: f64[2] input) -> (loss: f64[]) {
  %0 = reduce_max %x {axes = [1]} : f64[2]
  %1 = mul %0, %cot : f64[2]
  %2 = reduce_sum %1 {axes = [0]} : f64[]
  return %2
})";
  TensorMap args{{"x", f64({2, 3}, {1, 3, 3, 2, 2, 2})}, {"cot", f64({2}, {2, 3})}};
  std::vector<double> want = {0, 1, 1, 1, 1, 1}; // 2 split over two, 3 split over three
  EXPECT_EQ(gradientOf(text, args, "x"), want);
}

TEST(AutodiffTies, ReduceMaxOverSeveralAxesSharesByTheCount) {
  const char *text = R"(graph @g(%x: f64[2,2,2] param) -> (loss: f64[]) {
  %0 = reduce_max %x {axes = [2, 0]} : f64[2]
  %1 = reduce_sum %0 {axes = [0]} : f64[]
  return %1
})";
  // x[:, 0, :] = [[5, 1], [5, 5]]: three-way tie; x[:, 1, :] = [[0.5, 4], [-1, 4]]: two-way.
  TensorMap args{{"x", f64({2, 2, 2}, {5, 1, 0.5, 4, 5, 5, -1, 4})}};
  std::vector<double> got = gradientOf(text, args, "x");
  std::vector<double> want = {1.0 / 3, 0, 0, 0.5, 1.0 / 3, 1.0 / 3, 0, 0.5};
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_DOUBLE_EQ(got[i], want[i]) << i;
}

TEST(AutodiffTies, MaxAndMinSplitATieHalfAndHalf) {
  for (const char *op : {"max", "min"}) {
    std::string text = R"(graph @g(%a: f64[3] param, %b: f64[3] param, %cot: f64[3] input) -> (loss: f64[]) {
  %0 = OP %a, %b : f64[3]
  %1 = mul %0, %cot : f64[3]
  %2 = reduce_sum %1 {axes = [0]} : f64[]
  return %2
})";
    text.replace(text.find("OP"), 2, op);
    TensorMap args{{"a", f64({3}, {1, 2, 3})}, {"b", f64({3}, {1, 0, 5})}, {"cot", f64({3}, {2, 4, 8})}};
    bool isMax = std::string(op) == "max";
    std::vector<double> wantA = isMax ? std::vector<double>{1, 4, 0} : std::vector<double>{1, 0, 8};
    std::vector<double> wantB = isMax ? std::vector<double>{1, 0, 8} : std::vector<double>{1, 4, 0};
    EXPECT_EQ(gradientOf(text, args, "a"), wantA) << op;
    EXPECT_EQ(gradientOf(text, args, "b"), wantB) << op;
  }
}

TEST(AutodiffTies, MaxOfAValueWithItselfPassesTheWholeGradient) {
  const char *text = R"(graph @g(%w: f64[2] param, %cot: f64[2] input) -> (loss: f64[]) {
  %0 = max %w, %w : f64[2]
  %1 = mul %0, %cot : f64[2]
  %2 = reduce_sum %1 {axes = [0]} : f64[]
  return %2
})";
  TensorMap args{{"w", f64({2}, {0.5, -2})}, {"cot", f64({2}, {3, 5})}};
  EXPECT_EQ(gradientOf(text, args, "w"), (std::vector<double>{3, 5}));
}

TEST(AutodiffSums, AValueUsedTwiceGetsBothContributions) {
  const char *text = R"(graph @g(%w: f64[3] param) -> (loss: f64[]) {
  %0 = mul %w, %w : f64[3]
  %1 = add %0, %w : f64[3]
  %2 = concat %1, %w {axis = 0} : f64[6]
  %3 = reduce_sum %2 {axes = [0]} : f64[]
  return %3
})";
  TensorMap args{{"w", f64({3}, {0.5, -1.5, 2})}};
  EXPECT_EQ(gradientOf(text, args, "w"), (std::vector<double>{3, -1, 6})); // 2w + 1 + 1
}

// ---------------------------------------------------------------------------
// What autodiff builds.

/// The kinds of the nodes the autodiff pass appends to `text`'s graph.
std::multiset<OpKind> appendedKinds(const std::string &text) {
  Module module = parseModule(text, "built.kir");
  Graph &graph = *module.graphs[0];
  size_t before = graph.nodes().size();
  runPasses(graph, parsePassPipeline("autodiff"), verifyEachOptions());
  std::multiset<OpKind> kinds;
  for (size_t i = before; i < graph.nodes().size(); ++i)
    kinds.insert(graph.nodes()[i]->kind());
  return kinds;
}

TEST(AutodiffBuilds, NothingForInputOnlyOrUnusedBranches) {
  std::multiset<OpKind> plain =
      appendedKinds(R"(graph @g(%x: f32[4] input, %w: f32[4] param) -> (loss: f32[]) {
  %0 = mul %x, %w : f32[4]
  %1 = reduce_sum %0 {axes = [0]} : f32[]
  return %1
})");
  // The same loss, after a long input-only chain, with a param-only branch
  // that does not reach the loss.
  std::multiset<OpKind> branches =
      appendedKinds(R"(graph @g(%x: f32[4] input, %w: f32[4] param) -> (loss: f32[], f32[]) {
  %0 = exp %x : f32[4]
  %1 = tanh %0 : f32[4]
  %2 = broadcast %x {dims = [1]} : f32[3,4]
  %3 = reduce_max %2 {axes = [0]} : f32[4]
  %4 = div %1, %3 : f32[4]
  %5 = mul %4, %w : f32[4]
  %6 = reduce_sum %5 {axes = [0]} : f32[]
  %7 = logistic %w : f32[4]
  %8 = reduce_sum %7 {axes = [0]} : f32[]
  return %6, %8
})");
  EXPECT_EQ(plain, (std::multiset<OpKind>{OpKind::Constant, OpKind::Broadcast, OpKind::Mul}));
  EXPECT_EQ(branches, plain);
}

// A param that reaches the loss only through an integer index (gather's or
// scatter_add's) has a zero gradient, and nothing is built for the other operand.
TEST(AutodiffBuilds, NothingThroughAnIndexThatOnlyAParamReaches) {
  std::multiset<OpKind> gathered =
      appendedKinds(R"(graph @g(%t: f32[5,3] input, %w: f32[5] param) -> (loss: f32[]) {
  %0 = argmax %w {axis = 0} : i32[]
  %1 = gather %t, %0 : f32[3]
  %2 = reduce_sum %1 {axes = [0]} : f32[]
  return %2
})");
  for (OpKind kind : gathered)
    EXPECT_TRUE(kind == OpKind::Constant || kind == OpKind::Broadcast) << "built " << opName(kind);
  std::multiset<OpKind> scattered =
      appendedKinds(R"(graph @g(%u: f32[1,3] input, %w: f32[5] param) -> (loss: f32[]) {
  %0 = argmax %w {axis = 0} : i32[]
  %1 = reshape %0 : i32[1]
  %2 = scatter_add %1, %u : f32[4,3]
  %3 = reduce_sum %2 {axes = [0, 1]} : f32[]
  return %3
})");
  for (OpKind kind : scattered)
    EXPECT_TRUE(kind == OpKind::Constant || kind == OpKind::Broadcast) << "built " << opName(kind);
}

TEST(AutodiffPass, GraphWithoutFloatParamsIsUnchanged) {
  const char *text = R"(graph @g(%x: f32[4] input, %s: f32[4] state, %n: i32[4] param) -> (f32[]) {
  %0 = mul %x, %s : f32[4]
  %1 = reduce_sum %0 {axes = [0]} : f32[]
  update %s, %0
  return %1
})";
  Module module = parseModule(text, "unchanged.kir");
  std::string before = printGraph(*module.graphs[0]);
  EXPECT_FALSE(runPasses(*module.graphs[0], parsePassPipeline("autodiff")));
  EXPECT_EQ(printGraph(*module.graphs[0]), before);
}

TEST(AutodiffPass, NonFloatArgumentIsALocatedError) {
  Module module = parseModule(R"(graph @g(%w: f32[4] param, %n: i32[4] param) -> (loss: f32[]) {
  %0 = reduce_sum %w {axes = [0]} : f32[]
  return %0
})",
                              "wrt.kir");
  Graph &graph = *module.graphs[0];
  try {
    appendGradients(graph, graph.results()[0], {graph.findArgument("n")});
    FAIL() << "expected a kiln::Error";
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "wrt.kir:1:28: error: cannot differentiate with respect to '%n' of type i32[4] "
                           "(not a float type)");
  }
}

} // namespace
} // namespace kiln
