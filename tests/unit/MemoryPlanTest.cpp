// The memory planner against the independent checker: every plan of the
// example training steps and of random graphs is sound, the schedule leaves
// results bit for bit unchanged, and hand-made bad plans are caught.
#include "compiler/TrainingStep.h"
#include "examples/models/Models.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "ir/Verifier.h"
#include "passes/Pass.h"
#include "passes/PassManager.h"
#include "passes/memory/MemoryChecker.h"
#include "passes/memory/MemoryReport.h"
#include "passes/memory/PlanMemory.h"
#include "runtime/Error.h"
#include "tests/unit/TestHelpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <iostream>
#include <random>

namespace kiln {
namespace {

/// Plans `graph` in place and returns what `--report=memory --report-format=json` says.
nlohmann::json plan(Graph &graph) {
  createPlanMemoryPass()->run(graph);
  verifyGraph(graph);
  return nlohmann::json::parse(memoryReport(graph, /*json=*/true));
}

bool sameBits(const HostTensor &a, const HostTensor &b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.byteSize() == b.byteSize() &&
         std::memcmp(a.data(), b.data(), a.byteSize()) == 0;
}

/// Plans a copy of `graph` and expects a sound plan and, the nodes being only
/// reordered, bit-identical results and updates from the interpreter. Returns
/// the report.
nlohmann::json expectPlanKeepsResults(const Graph &graph, uint64_t seed) {
  std::unique_ptr<Graph> planned = cloneGraph(graph);
  nlohmann::json report = plan(*planned);
  EXPECT_EQ(checkMemoryPlan(*planned), "");
  TensorMap args;
  for (const auto &a : graph.arguments())
    args[a->name] = defaultArgumentValue(*a, seed);
  InterpreterResult before = interpret(graph, args), after = interpret(*planned, args);
  EXPECT_EQ(before.results.size(), after.results.size());
  if (before.results.size() != after.results.size() || before.updated.size() != after.updated.size())
    return report;
  for (size_t i = 0; i < before.results.size(); ++i)
    EXPECT_TRUE(sameBits(before.results[i], after.results[i])) << "result " << i;
  EXPECT_EQ(before.updated.size(), after.updated.size());
  for (const auto &[name, value] : before.updated)
    EXPECT_TRUE(sameBits(value, after.updated.at(name))) << name;
  size_t moved = 0;
  for (size_t i = 0; i < graph.nodes().size(); ++i)
    moved += graph.nodes()[i]->kind() != planned->nodes()[i]->kind();
  report["moved"] = moved;
  return report;
}

// --- The example training steps -------------------------------------------

std::unique_ptr<Graph> exampleStep(const std::string &model, OptimizerKind kind, bool small) {
  OptimizerOptions options;
  options.kind = kind;
  if (model == "mlp") {
    examples::MlpConfig c;
    if (small)
      c = {4, 16, 8, 4};
    return buildTrainingStep(*examples::buildMlp(c), options);
  }
  if (model == "cnn") {
    examples::CnnConfig c;
    if (small)
      c = {2, 3, 8, 4};
    return buildTrainingStep(*examples::buildCnn(c), options);
  }
  examples::GptConfig c;
  if (small)
    c = {2, 8, 16, 16, 2, 1, 8};
  return buildTrainingStep(*examples::buildGpt(c), options);
}

class ExampleSteps : public testing::TestWithParam<std::string> {};

TEST_P(ExampleSteps, FullSizePlansAreSound) {
  for (OptimizerKind kind : {OptimizerKind::Sgd, OptimizerKind::Momentum, OptimizerKind::AdamW}) {
    std::unique_ptr<Graph> step = exampleStep(GetParam(), kind, /*small=*/false);
    nlohmann::json report = plan(*step);
    EXPECT_EQ(checkMemoryPlan(*step), "") << optimizerName(kind);
    EXPECT_EQ(report["check"], "ok");
    // Every float param's update is written into its own buffer.
    size_t floatParams = 0;
    for (const Update &u : step->updates())
      floatParams += u.source->node != nullptr;
    EXPECT_EQ(report["in_place"]["updates"].get<size_t>(), floatParams) << optimizerName(kind);
    EXPECT_LE(report["ratio"].get<double>(), 1.10) << optimizerName(kind);
    EXPECT_GE(report["unshared_bytes"].get<double>(), 2.0 * report["arena_bytes"].get<double>());
  }
}

TEST_P(ExampleSteps, SmallStepsGiveTheSameResults) {
  for (OptimizerKind kind : {OptimizerKind::Sgd, OptimizerKind::Nesterov, OptimizerKind::AdamW})
    expectPlanKeepsResults(*exampleStep(GetParam(), kind, /*small=*/true), 7);
}

INSTANTIATE_TEST_SUITE_P(Models, ExampleSteps, testing::Values("mlp", "cnn", "gpt"));

// The numbers of issue 4's "done when", on the full gpt step with AdamW.
TEST(MemoryPlan, GptAdamWNumbers) {
  std::unique_ptr<Graph> step = exampleStep("gpt", OptimizerKind::AdamW, /*small=*/false);
  nlohmann::json report = plan(*step);
  double arena = report["arena_bytes"], maxLive = report["max_live_bytes"],
         unshared = report["unshared_bytes"];
  std::cout << "gpt AdamW step: " << report["nodes"] << " nodes, arena " << report["arena_bytes"]
            << " bytes, max-live bound " << report["max_live_bytes"] << " bytes, ratio " << arena / maxLive
            << ", one buffer per value " << report["unshared_bytes"] << " bytes (" << unshared / arena
            << "x the arena), in place: " << report["in_place"] << "\n";
  EXPECT_EQ(report["check"], "ok");
  EXPECT_LE(arena, 1.10 * maxLive);
  EXPECT_GE(unshared, 2 * arena);

  // The same step through the pipeline's simplification and fusion first.
  step = exampleStep("gpt", OptimizerKind::AdamW, /*small=*/false);
  runPasses(*step, parsePassPipeline("simplify,fuse"));
  report = plan(*step);
  arena = report["arena_bytes"], maxLive = report["max_live_bytes"], unshared = report["unshared_bytes"];
  std::cout << "gpt AdamW step after simplify,fuse: " << report["nodes"] << " nodes, arena " << report["arena_bytes"]
            << " bytes, max-live bound " << report["max_live_bytes"] << " bytes, ratio " << arena / maxLive
            << ", one buffer per value " << report["unshared_bytes"] << " bytes (" << unshared / arena
            << "x the arena), in place: " << report["in_place"] << "\n";
  EXPECT_EQ(report["check"], "ok");
  EXPECT_LE(arena, 1.10 * maxLive);
  EXPECT_GE(unshared, 2 * arena);
}

// After simplification and fusion too (plan-memory runs last): every update of
// the fused optimizer is still written in place, and results do not change.
TEST_P(ExampleSteps, FusedStepsArePlannedSoundly) {
  std::unique_ptr<Graph> step = exampleStep(GetParam(), OptimizerKind::AdamW, /*small=*/true);
  PassManagerOptions options;
  options.verifyEach = true;
  runPasses(*step, parsePassPipeline("simplify,fuse"), options);
  nlohmann::json report = expectPlanKeepsResults(*step, 3);
  size_t fromNodes = 0;
  for (const Update &u : step->updates())
    fromNodes += u.source->node != nullptr;
  EXPECT_EQ(report["in_place"]["updates"].get<size_t>(), fromNodes);
  EXPECT_EQ(report["check"], "ok");
}

// --- Random small graphs ---------------------------------------------------

/// A random graph over f32[4,4] and f32[4] values: elementwise ops (in-place
/// candidates), matmuls and transposes (not), reductions and broadcasts
/// (other sizes), random results, and updates of most params by random values.
std::unique_ptr<Graph> randomGraph(std::mt19937 &rng) {
  auto pick = [&](size_t n) { return size_t(std::uniform_int_distribution<size_t>(0, n - 1)(rng)); };
  auto g = std::make_unique<Graph>("random");
  TensorType square{DType::F32, Shape({4, 4})}, row{DType::F32, Shape({4})};
  std::vector<Value *> squares, rows;
  std::vector<Argument *> params;
  for (int i = 0; i < 2; ++i) {
    squares.push_back(&g->addArgument("x" + std::to_string(i), square, ArgRole::Input)->value);
    params.push_back(g->addArgument("w" + std::to_string(i), square, ArgRole::Param));
    squares.push_back(&params.back()->value);
  }
  params.push_back(g->addArgument("s", row, ArgRole::State));
  rows.push_back(&params.back()->value);
  int nodes = 4 + int(pick(20));
  for (int i = 0; i < nodes; ++i) {
    Value *a = squares[pick(squares.size())], *b = squares[pick(squares.size())];
    switch (pick(9)) {
    case 0: squares.push_back(emitNode(*g, OpKind::Neg, {a})); break;
    case 1: squares.push_back(emitNode(*g, OpKind::Tanh, {a})); break;
    case 2: squares.push_back(emitNode(*g, OpKind::Add, {a, b})); break;
    case 3: squares.push_back(emitNode(*g, OpKind::Mul, {a, b})); break;
    case 4: squares.push_back(emitNode(*g, OpKind::Matmul, {a, b})); break;
    case 5: {
      AttrMap attrs;
      attrs.set("perm", Attribute(Attribute::IntList{1, 0}));
      squares.push_back(emitNode(*g, OpKind::Transpose, {a}, attrs));
      break;
    }
    case 6: {
      AttrMap attrs;
      attrs.set("axes", Attribute(Attribute::IntList{1}));
      rows.push_back(emitNode(*g, OpKind::ReduceSum, {a}, attrs));
      break;
    }
    case 7: {
      AttrMap attrs;
      attrs.set("dims", Attribute(Attribute::IntList{1}));
      squares.push_back(emitNode(*g, OpKind::Broadcast, {rows[pick(rows.size())]}, attrs, &square));
      break;
    }
    default:
      rows.push_back(emitNode(*g, OpKind::Sub, {rows[pick(rows.size())], rows[pick(rows.size())]}));
    }
  }
  for (size_t r = pick(3); r > 0; --r)
    g->addResult(squares[pick(squares.size())]);
  for (Argument *p : params) {
    if (pick(4) == 0)
      continue;
    const std::vector<Value *> &pool = p->value.type == square ? squares : rows;
    g->addUpdate(p, pool[pick(pool.size())]);
  }
  verifyGraph(*g);
  return g;
}

TEST(MemoryPlan, RandomGraphs) {
  std::mt19937 rng(2024);
  size_t reordered = 0, updatesInPlace = 0, sharedInPlace = 0;
  for (int i = 0; i < 300; ++i) {
    std::unique_ptr<Graph> g = randomGraph(rng);
    SCOPED_TRACE("random graph " + std::to_string(i));
    nlohmann::json report = expectPlanKeepsResults(*g, uint64_t(i));
    reordered += report["moved"].get<size_t>() > 0;
    updatesInPlace += report["in_place"]["updates"].get<size_t>();
    sharedInPlace += report["in_place"]["elementwise"].get<size_t>();
  }
  // The cases the planner's rules exist for do occur.
  EXPECT_GT(reordered, 10u);
  EXPECT_GT(updatesInPlace, 100u);
  EXPECT_GT(sharedInPlace, 100u);
}

// The same graphs fused first (multi-output kernels among them): the plan is
// sound, and fusion and planning leave every result and update bit-identical.
TEST(MemoryPlan, FusedRandomGraphs) {
  std::mt19937 rng(2025);
  size_t multiOutput = 0, updatesInPlace = 0;
  for (int i = 0; i < 300; ++i) {
    std::unique_ptr<Graph> g = randomGraph(rng);
    SCOPED_TRACE("random graph " + std::to_string(i));
    std::unique_ptr<Graph> fused = cloneGraph(*g);
    runPasses(*fused, parsePassPipeline("fuse"), verifyEachOptions());
    for (const auto &node : fused->nodes())
      multiOutput += node->numResults() > 1;
    TensorMap args;
    for (const auto &a : g->arguments())
      args[a->name] = defaultArgumentValue(*a, uint64_t(i));
    InterpreterResult before = interpret(*g, args), after = interpret(*fused, args);
    ASSERT_EQ(before.results.size(), after.results.size());
    for (size_t r = 0; r < before.results.size(); ++r)
      EXPECT_TRUE(sameBits(before.results[r], after.results[r])) << "result " << r;
    for (const auto &[name, value] : before.updated)
      EXPECT_TRUE(sameBits(value, after.updated.at(name))) << name;
    nlohmann::json report = expectPlanKeepsResults(*fused, uint64_t(i));
    updatesInPlace += report["in_place"]["updates"].get<size_t>();
    if (HasFailure())
      return;
  }
  EXPECT_GT(multiOutput, 30u);
  EXPECT_GT(updatesInPlace, 100u);
}

/// Every way of moving one value onto the bytes of another value live at its
/// node, or off the 64-byte grid, is caught in a planned training step.
TEST(MemoryChecker, CatchesEveryMovedSliceOfATrainingStep) {
  std::unique_ptr<Graph> step = exampleStep("gpt", OptimizerKind::AdamW, /*small=*/true);
  plan(*step);
  std::vector<PlacedValue> placed = readMemoryPlan(*step);
  size_t tried = 0;
  for (size_t i = 0; i < placed.size(); i += 3) {
    Node &node = *step->nodes()[i];
    BufferSlice original = placed[i].slice;
    if (placed[i].bytes == 0)
      continue;
    for (size_t j = 0; j < placed.size(); ++j) {
      const PlacedValue &other = placed[j];
      bool liveAtNode = other.position < i && other.lastUse > i; // dying at i: may be shared
      if (!liveAtNode || !other.slice.isArena() || other.bytes == 0 || other.slice == original)
        continue;
      BufferSlice moved{"arena", other.slice.begin, other.slice.begin + placed[i].bytes};
      node.attrs().set(kBufferAttr, moved);
      EXPECT_NE(checkMemoryPlan(*step), "") << "%" << i << " moved onto %" << j;
      ++tried;
      break;
    }
    node.attrs().set(kBufferAttr, BufferSlice{original.buffer, original.begin + 32, original.end + 32});
    EXPECT_NE(checkMemoryPlan(*step), "") << "%" << i << " misaligned";
    node.attrs().set(kBufferAttr, original);
  }
  EXPECT_GT(tried, 50u);
  EXPECT_EQ(checkMemoryPlan(*step), "");
}

// --- Hand-made plans -------------------------------------------------------

std::unique_ptr<Graph> parseOne(const std::string &text) {
  Module module = parseModule(text, "plan.kir");
  return std::move(module.graphs[0]);
}

std::string check(const std::string &text) { return checkMemoryPlan(*parseOne(text)); }

TEST(MemoryChecker, AcceptsSoundPlans) {
  EXPECT_EQ(check(R"(graph @unplanned(%x: f32[16] input) -> (f32[16]) {
  %0 = exp %x : f32[16]
  return %0
})"),
            "");
  // In place twice, then an update written into its param at the same index.
  EXPECT_EQ(check(R"(graph @ok(%x: f32[16] input, %w: f32[16] param) -> (f32[16]) {
  %0 = exp %x {buffer = arena[0:64]} : f32[16]
  %1 = neg %0 {buffer = arena[0:64]} : f32[16]
  %2 = mul %x, %x {buffer = arena[64:128]} : f32[16]
  %3 = add %w, %1 {buffer = %w[0:64]} : f32[16]
  update %w, %3
  return %2
})"),
            "");
}

TEST(MemoryChecker, CatchesOverlappingLiveValues) {
  std::string problem = check(R"(graph @overlap(%x: f32[16] input) -> (f32[16]) {
  %0 = exp %x {buffer = arena[0:64]} : f32[16]
  %1 = neg %x {buffer = arena[0:64]} : f32[16]
  %2 = add %0, %1 {buffer = arena[128:192]} : f32[16]
  return %2
})");
  EXPECT_NE(problem.find("%0 (exp at plan.kir:2:8) [0:64] live [0, 2]"), std::string::npos) << problem;
  EXPECT_NE(problem.find("%1 (neg at plan.kir:3:8) [0:64] live [1, 2]"), std::string::npos) << problem;
  // Partial overlap and an in-place pair of different byte sizes are caught too.
  EXPECT_NE(check(R"(graph @partial(%x: f32[32] input) -> (f32[32]) {
  %0 = exp %x {buffer = arena[0:128]} : f32[32]
  %1 = neg %x {buffer = arena[64:192]} : f32[32]
  %2 = add %0, %1 {buffer = arena[256:384]} : f32[32]
  return %2
})"),
            "");
  EXPECT_NE(check(R"(graph @narrowing(%x: f32[16] input) -> (f16[16]) {
  %0 = exp %x {buffer = arena[0:64]} : f32[16]
  %1 = cast %0 {to = f16, buffer = arena[0:64]} : f16[16]
  return %1
})"),
            "");
}

TEST(MemoryChecker, CatchesAnOverwrittenUpdateSource) {
  std::string problem = check(R"(graph @clobber(%x: f32[16] input, %w: f32[16] param) -> (f32[16]) {
  %0 = exp %x {buffer = arena[0:64]} : f32[16]
  %1 = neg %x {buffer = arena[0:64]} : f32[16]
  update %w, %0
  return %1
})");
  EXPECT_NE(problem.find("%0 (exp at plan.kir:2:8) [0:64] live [0, end]"), std::string::npos) << problem;
}

TEST(MemoryChecker, CatchesMisalignedAndShortSlices) {
  std::string problem = check(R"(graph @misaligned(%x: f32[16] input) -> (f32[16]) {
  %0 = exp %x {buffer = arena[32:96]} : f32[16]
  return %0
})");
  EXPECT_NE(problem.find("not a multiple of 64"), std::string::npos) << problem;
  EXPECT_NE(check(R"(graph @partial(%x: f32[16] input) -> (f32[16]) {
  %0 = exp %x {buffer = arena[0:64]} : f32[16]
  %1 = neg %0 : f32[16]
  return %1
})"),
            "");
}

TEST(MemoryChecker, CatchesUnsafeWritesIntoArguments) {
  // %w's old value is read by %2 after %1 overwrote it.
  std::string problem = check(R"(graph @late(%x: f32[16] input, %w: f32[16] param) -> (f32[16]) {
  %0 = exp %x {buffer = arena[0:64]} : f32[16]
  %1 = add %w, %0 {buffer = %w[0:64]} : f32[16]
  %2 = mul %w, %x {buffer = arena[64:128]} : f32[16]
  update %w, %1
  return %2
})");
  EXPECT_NE(problem.find("entry value of %w"), std::string::npos) << problem;
  // A param nothing updates keeps its value for the next step.
  EXPECT_NE(check(R"(graph @kept(%x: f32[16] input, %w: f32[16] param) -> (f32[16]) {
  %0 = mul %w, %x {buffer = %w[0:64]} : f32[16]
  return %0
})"),
            "");
  // An input's buffer belongs to the caller.
  EXPECT_NE(check(R"(graph @input(%x: f32[16] input) -> (f32[16]) {
  %0 = exp %x {buffer = %x[0:64]} : f32[16]
  return %0
})"),
            "");
  // A non-elementwise node may not write where it reads.
  EXPECT_NE(check(R"(graph @matmul(%x: f32[4,4] input, %w: f32[4,4] param) -> () {
  %0 = matmul %w, %x {buffer = %w[0:64]} : f32[4,4]
  update %w, %0
  return
})"),
            "");
  // A fusion that reads a whole row of %w before writing it may not write into %w;
  // one that only adds to each element may.
  const char *fused = R"(graph @fused(%w: f32[4,4] param) -> () {
  %0 = fusion %w {kind = "KIND", buffer = %w[0:64]} : f32[4,4] {
    %0 = OP
    %1 = broadcast %0 {dims = [0]} : f32[4,4]
    %2 = sub %arg0, %1 : f32[4,4]
    yield %2
  }
  update %w, %0
  return
})";
  auto fusedWith = [&](const std::string &kind, const std::string &op) {
    std::string text = fused;
    text.replace(text.find("KIND"), 4, kind);
    text.replace(text.find("OP"), 2, op);
    return text;
  };
  EXPECT_NE(check(fusedWith("reduction", "reduce_sum %arg0 {axes = [1]} : f32[4]")), "");
  EXPECT_EQ(check(fusedWith("loop", "constant {value = 1.0} : f32[4]")), "");
  // A value other than the update source still live when the update is written.
  EXPECT_NE(check(R"(graph @result(%x: f32[16] input, %w: f32[16] param) -> (f32[16]) {
  %0 = add %w, %x {buffer = %w[0:64]} : f32[16]
  %1 = exp %x {buffer = arena[0:64]} : f32[16]
  update %w, %1
  return %0
})"),
            "");
}

/// Breaks the plan the way a buggy pass after plan-memory would.
class OverlapFirstTwo final : public Pass {
  std::string_view name() const override { return "overlap"; }
  std::string_view description() const override { return "test"; }
  PassResult run(Graph &g) override {
    g.nodes()[1]->attrs().set(kBufferAttr, g.nodes()[0]->attrs().find(kBufferAttr)->asBufferSlice());
    return PassResult::Changed;
  }
};

TEST(MemoryChecker, RunsUnderVerifyEach) {
  std::unique_ptr<Graph> g = parseOne(R"(graph @g(%x: f32[16] input) -> (f32[16]) {
  %0 = exp %x : f32[16]
  %1 = neg %x : f32[16]
  %2 = add %0, %1 : f32[16]
  return %2
})");
  std::vector<std::unique_ptr<Pass>> passes;
  passes.push_back(createPlanMemoryPass());
  PassManagerOptions options;
  options.verifyEach = true;
  runPasses(*g, passes, options);
  EXPECT_EQ(checkMemoryPlan(*g), "");
  passes.push_back(std::make_unique<OverlapFirstTwo>());
  EXPECT_THROW(runPasses(*g, passes, options), Error);
  options.verifyEach = false;
  EXPECT_NO_THROW(runPasses(*g, passes, options));
}

// --- The planner on small cases ----------------------------------------------

TEST(PlanMemory, ReportsItsNumbers) {
  std::unique_ptr<Graph> g = parseOne(R"(graph @chain(%x: f32[16,16] input) -> (f32[16,16]) {
  %0 = transpose %x {perm = [1, 0]} : f32[16,16]
  %1 = matmul %0, %0 : f32[16,16]
  %2 = exp %1 : f32[16,16]
  %3 = matmul %2, %2 : f32[16,16]
  return %3
})");
  nlohmann::json report = plan(*g);
  EXPECT_EQ(report["arena_bytes"], 2048);
  EXPECT_EQ(report["max_live_bytes"], 2048);
  EXPECT_EQ(report["unshared_bytes"], 4096);
  EXPECT_EQ(report["in_place"]["elementwise"], 1);
  ASSERT_EQ(report["buffers"].size(), 4u);
  EXPECT_EQ(report["buffers"][3]["value"], "%3");
  EXPECT_EQ(report["buffers"][3]["last"], 4); // the end of the step
  EXPECT_EQ(report["buffers"][2]["offset"], report["buffers"][1]["offset"]);
  std::string text = memoryReport(*g, false);
  EXPECT_NE(text.find("arena bytes           2048"), std::string::npos) << text;
  EXPECT_NE(text.find("end  arena"), std::string::npos) << text;
  EXPECT_NE(memoryReport(*parseOne("graph @empty() -> () {\n  return\n}"), false).find("none"),
            std::string::npos);
}

TEST(PlanMemory, SchedulesToFreeEarly) {
  // Written order: both big broadcasts live at once; planned: one at a time.
  std::unique_ptr<Graph> g = parseOne(R"(graph @peak(%a: f32[] input, %b: f32[] input) -> (f32[]) {
  %0 = broadcast %a {dims = []} : f32[64,64]
  %1 = broadcast %b {dims = []} : f32[64,64]
  %2 = reduce_sum %0 {axes = [0, 1]} : f32[]
  %3 = reduce_sum %1 {axes = [0, 1]} : f32[]
  %4 = add %2, %3 : f32[]
  return %4
})");
  nlohmann::json report = plan(*g);
  EXPECT_LT(report["arena_bytes"].get<int64_t>(), 2 * 16384);
  EXPECT_EQ(g->nodes()[1]->kind(), OpKind::ReduceSum);
  // Planning again changes nothing.
  EXPECT_EQ(createPlanMemoryPass()->run(*g), PassResult::Unchanged);
}

} // namespace
} // namespace kiln
