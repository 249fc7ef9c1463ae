// Multi-output fusions: a `fusion` with several results prints, parses,
// converts to JSON, verifies, interprets, is planned (one slice per result,
// checked independently) and runs on the CPU backend like the ops it holds.
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Json.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/Pass.h"
#include "passes/PassManager.h"
#include "passes/memory/MemoryChecker.h"
#include "passes/memory/PlanMemory.h"
#include "runtime/Error.h"
#include "tests/unit/TestHelpers.h"

#ifdef KILN_HAVE_CPU_BACKEND
#include "compiler/CpuBackend.h"
#include "runtime/cpu/Executable.h"
#endif

#include <gtest/gtest.h>

#include <cmath>

namespace kiln {
namespace {

// layer_norm backward's parameter gradients and a use of the second result.
const char *kFused = R"(graph @ln_grads(%dy: f32[4,8] input, %xhat: f32[4,8] input) -> (f32[8], f32[8]) {
  %0:2 = fusion %dy, %xhat {kind = "reduction"} : f32[8], f32[8] {
    %0 = mul %arg0, %arg1 : f32[4,8]
    %1 = reduce_sum %0 {axes = [0]} : f32[8]
    %2 = reduce_sum %arg0 {axes = [0]} : f32[8]
    yield %1, %2
  }
  %1 = neg %0#1 : f32[8]
  return %0#0, %1
}
)";

const char *kUnfused = R"(graph @ln_grads(%dy: f32[4,8] input, %xhat: f32[4,8] input) -> (f32[8], f32[8]) {
  %0 = mul %dy, %xhat : f32[4,8]
  %1 = reduce_sum %0 {axes = [0]} : f32[8]
  %2 = reduce_sum %dy {axes = [0]} : f32[8]
  %3 = neg %2 : f32[8]
  return %1, %3
}
)";

// Adam-like moments and a parameter step, all reading the gradient: the
// state updates are written in place by one kernel.
const char *kMoments = R"(graph @moments(%g: f32[64] input, %w: f32[64] param, %m: f32[64] state,
                %v: f32[64] state) -> (f32[64]) {
  %b1 = constant {value = 0.9} : f32[64]
  %b2 = constant {value = 0.999} : f32[64]
  %e = constant {value = 1e-08} : f32[64]
  %0 = mul %m, %b1 : f32[64]
  %1 = add %0, %g : f32[64]
  %2 = mul %g, %g : f32[64]
  %3 = mul %v, %b2 : f32[64]
  %4 = add %3, %2 : f32[64]
  %5 = sqrt %4 : f32[64]
  %6 = add %5, %e : f32[64]
  %7 = div %1, %6 : f32[64]
  %8 = sub %w, %7 : f32[64]
  %9 = tanh %g : f32[64]
  update %m, %1
  update %v, %4
  update %w, %8
  return %9
}
)";

TensorMap argumentsOf(const Graph &g, uint64_t seed) {
  TensorMap args;
  for (const auto &a : g.arguments())
    args[a->name] = defaultArgumentValue(*a, seed);
  return args;
}

int countMultiOutput(const Graph &g) {
  int n = 0;
  for (const auto &node : g.nodes())
    n += node->numResults() > 1;
  return n;
}

TEST(MultiOutputFusion, PrintsParsesAndConvertsIdentically) {
  Module m = parseModule(kFused, "f.kir");
  const Node &fusion = *m.graphs[0]->nodes()[0];
  ASSERT_EQ(fusion.numResults(), 2u);
  EXPECT_EQ(fusion.result(1)->node, &fusion);
  EXPECT_EQ(fusion.result(1)->index, 1u);
  EXPECT_EQ(fusion.result(0), fusion.result());
  EXPECT_EQ(printModule(m), kFused);
  EXPECT_EQ(printModule(parseJsonModule(printJsonModule(m), "f.json", "")), kFused);
  EXPECT_EQ(printGraph(*cloneGraph(*m.graphs[0])), kFused);

  // Planned: a list of slices, one per result, round-trips too.
  Graph &g = *m.graphs[0];
  createPlanMemoryPass()->run(g);
  ASSERT_TRUE(g.nodes()[0]->attrs().find(kBufferAttr)->isBufferList());
  std::string planned = printGraph(g);
  EXPECT_NE(planned.find("buffer = [arena["), std::string::npos) << planned;
  Module reparsed = parseModule(planned, "p.kir");
  EXPECT_EQ(printModule(reparsed), planned);
  EXPECT_EQ(printModule(parseJsonModule(printJsonModule(reparsed), "p.json", "")), planned);
  EXPECT_EQ(checkMemoryPlan(*reparsed.graphs[0]), "");
}

TEST(MultiOutputFusion, InterpretsLikeTheOpsItHolds) {
  Module fused = parseModule(kFused, "f.kir"), plain = parseModule(kUnfused, "p.kir");
  TensorMap args = argumentsOf(*plain.graphs[0], 5);
  for (Precision p : {Precision::Native, Precision::F64}) {
    InterpreterResult want = interpret(*plain.graphs[0], args, p);
    InterpreterResult got = interpret(*fused.graphs[0], args, p);
    ASSERT_EQ(got.results.size(), 2u);
    for (size_t i = 0; i < 2; ++i)
      EXPECT_EQ(got.results[i].toDoubles(), want.results[i].toDoubles()) << "result " << i;
  }
}

TEST(MultiOutputFusion, JsonRejectsABadTypeList) {
  Module m = parseModule(kFused, "f.kir");
  std::string json = printJsonModule(m);
  size_t at = json.find("\"types\"");
  ASSERT_NE(at, std::string::npos);
  json.replace(at, 7, "\"type\": {\"dtype\": \"f32\", \"shape\": [8]}, \"types\"");
  try {
    parseJsonModule(json, "f.json", "");
    FAIL() << "accepted both type and types";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()),
              "f.json:/graphs/0/nodes/0/type: error: a node has \"type\" or \"types\", not both");
  }
}

TEST(MultiOutputFusion, AutodiffRejectsIt) {
  Module m = parseModule(R"(graph @g(%w: f32[4] param) -> (f32[]) {
  %0:2 = fusion %w {kind = "loop"} : f32[4], f32[4] {
    %0 = neg %arg0 : f32[4]
    %1 = exp %arg0 : f32[4]
    yield %0, %1
  }
  %1 = reduce_sum %0#1 {axes = [0]} : f32[]
  return %1
}
)", "g.kir");
  try {
    runPasses(*m.graphs[0], parsePassPipeline("autodiff"));
    FAIL() << "differentiated through a multi-output fusion";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()),
              "g.kir:2:10: error: cannot differentiate @g's loss through fusion: it has 2 results "
              "(a multi-output fusion; autodiff runs before fusion)");
  }
}

/// A dying operand's slice goes only to a result whose body node runs after
/// every body node reading that operand; the checker knows the rule on its own.
TEST(MultiOutputFusion, InPlaceOnlyWhereTheOperandIsReadFirst) {
  const char *text = R"(graph @g(%x: f32[16] input) -> (f32[16], f32[16]) {
  %0 = tanh %x : f32[16]
  %1:2 = fusion %0 {kind = "loop"} : f32[16], f32[16] {
    %0 = neg %arg0 : f32[16]
    %1 = exp %arg0 : f32[16]
    yield %0, %1
  }
  return %1#0, %1#1
}
)";
  Module m = parseModule(text, "g.kir");
  Graph &g = *m.graphs[0];
  runPasses(g, parsePassPipeline("plan-memory"), verifyEachOptions());
  ASSERT_EQ(g.nodes()[1]->kind(), OpKind::Fusion);
  std::vector<BufferSlice> tanh = nodeBuffers(*g.nodes()[0]), fused = nodeBuffers(*g.nodes()[1]);
  ASSERT_EQ(fused.size(), 2u);
  EXPECT_EQ(fused[1], tanh[0]) << "exp, the last reader of %0, takes its slice";
  EXPECT_FALSE(fused[0] == tanh[0]);
  EXPECT_EQ(checkMemoryPlan(g), "");

  // neg writes result 0 before exp reads %0: result 0 may not take %0's slice.
  setNodeBuffers(*g.nodes()[1], {tanh[0], fused[0]});
  EXPECT_NE(checkMemoryPlan(g).find("share bytes"), std::string::npos) << checkMemoryPlan(g);
  // Nor may the two results share one slice.
  setNodeBuffers(*g.nodes()[1], {fused[0], fused[0]});
  std::string problem = checkMemoryPlan(g);
  EXPECT_NE(problem.find("%1#0 (fusion"), std::string::npos) << problem;
  EXPECT_NE(problem.find("%1#1 (fusion"), std::string::npos) << problem;
}

TEST(MultiOutputFusion, FusedMomentsUpdateInPlaceAndKeepTheirValues) {
  Module m = parseModule(kMoments, "m.kir");
  std::unique_ptr<Graph> fused = cloneGraph(*m.graphs[0]);
  runPasses(*fused, parsePassPipeline("fuse,plan-memory"), verifyEachOptions());
  ASSERT_EQ(countMultiOutput(*fused), 1) << printGraph(*fused);
  EXPECT_EQ(checkMemoryPlan(*fused), "");
  std::string text = printGraph(*fused);
  for (const char *inPlace : {"%m[0:256]", "%v[0:256]", "%w[0:256]"})
    EXPECT_NE(text.find(inPlace), std::string::npos) << inPlace << " missing in\n" << text;
  TensorMap args = argumentsOf(*m.graphs[0], 9);
  InterpreterResult want = interpret(*m.graphs[0], args), got = interpret(*fused, args);
  EXPECT_EQ(got.results[0].toDoubles(), want.results[0].toDoubles());
  for (const auto &[name, value] : want.updated)
    EXPECT_EQ(got.updated.at(name).toDoubles(), value.toDoubles()) << name;
}

#ifdef KILN_HAVE_CPU_BACKEND

void expectClose(const HostTensor &got, const HostTensor &want, const std::string &what) {
  ASSERT_EQ(got.numElements(), want.numElements()) << what;
  for (int64_t i = 0; i < want.numElements(); ++i)
    ASSERT_LE(std::fabs(got.getDouble(i) - want.getDouble(i)), 1e-5 * std::max(1.0, std::fabs(want.getDouble(i))))
        << what << "[" << i << "]";
}

/// The default pipeline makes a multi-output kernel; the CPU backend runs it
/// (results passed after the first) and matches the interpreter twice over,
/// the updates written in place feeding the second step.
void expectCpuMatchesInterpreter(const std::string &text) {
  Module m = parseModule(text, "cpu.kir");
  const Graph &reference = *m.graphs[0];
  std::unique_ptr<Graph> compiledGraph = cloneGraph(reference);
  runPasses(*compiledGraph, parsePassPipeline(defaultPipeline()), verifyEachOptions());
  ASSERT_GE(countMultiOutput(*compiledGraph), 1) << printGraph(*compiledGraph);
  std::shared_ptr<CpuCompiled> compiled = compileForCpu(*compiledGraph);
  TensorMap args = argumentsOf(reference, 21);
  for (const auto &[name, value] : args)
    compiled->executable->setArgument(name, value);
  for (int step = 0; step < 2; ++step) {
    InterpreterResult want = interpret(reference, args);
    compiled->executable->run();
    for (size_t i = 0; i < want.results.size(); ++i)
      expectClose(compiled->executable->result(i), want.results[i], "result " + std::to_string(i));
    for (const auto &[name, value] : want.updated) {
      expectClose(compiled->executable->argument(name), value, name);
      args[name] = value;
    }
  }
}

TEST(MultiOutputFusion, CpuBackendRunsSiblingReductions) { expectCpuMatchesInterpreter(kUnfused); }

TEST(MultiOutputFusion, CpuBackendRunsFusedMoments) { expectCpuMatchesInterpreter(kMoments); }

#endif

} // namespace
} // namespace kiln
