// The `fusion` op: a nested region that prints, parses, converts to JSON,
// verifies and interprets like the ops it holds.
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Json.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

const char *kFused = R"(graph @fused(%x: f32[4,8] input, %b: f32[8] input) -> (f32[4]) {
  %0 = fusion %x, %b {kind = "reduction"} : f32[4] {
    %0 = broadcast %arg1 {dims = [1]} : f32[4,8]
    %1 = add %arg0, %0 : f32[4,8]
    %2 = constant {value = 0.0} : f32[4,8]
    %3 = max %1, %2 : f32[4,8]
    %4 = reduce_sum %3 {axes = [1]} : f32[4]
    yield %4
  }
  %1 = neg %0 : f32[4]
  return %1
}
)";

const char *kUnfused = R"(graph @fused(%x: f32[4,8] input, %b: f32[8] input) -> (f32[4]) {
  %0 = broadcast %b {dims = [1]} : f32[4,8]
  %1 = add %x, %0 : f32[4,8]
  %2 = constant {value = 0.0} : f32[4,8]
  %3 = max %1, %2 : f32[4,8]
  %4 = reduce_sum %3 {axes = [1]} : f32[4]
  %5 = neg %4 : f32[4]
  return %5
}
)";

TEST(FusionIr, PrintsParsesAndConvertsIdentically) {
  Module m = parseModule(kFused, "f.kir");
  EXPECT_EQ(printModule(m), kFused);
  Module fromJson = parseJsonModule(printJsonModule(m), "f.json", "");
  EXPECT_EQ(printModule(fromJson), kFused);
  std::unique_ptr<Graph> copy = cloneGraph(*m.graphs[0]);
  EXPECT_EQ(printGraph(*copy), kFused);
}

TEST(FusionIr, InterpretsLikeTheOpsItHolds) {
  Module fused = parseModule(kFused, "f.kir"), plain = parseModule(kUnfused, "p.kir");
  TensorMap args;
  for (const auto &a : plain.graphs[0]->arguments())
    args[a->name] = defaultArgumentValue(*a, 5);
  for (Precision p : {Precision::Native, Precision::F64}) {
    std::vector<double> want = interpret(*plain.graphs[0], args, p).results[0].toDoubles();
    EXPECT_EQ(interpret(*fused.graphs[0], args, p).results[0].toDoubles(), want);
  }
}

void expectError(const std::string &text, const std::string &message) {
  try {
    parseModule(text, "f.kir");
    FAIL() << "accepted: " << text;
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

TEST(FusionIr, RejectsMalformedBodies) {
  expectError(R"(graph @g(%x: f32[4] input) -> (f32[4]) {
  %0 = fusion %x {kind = "loop"} : f32[4] {
    %0 = neg %arg0 : f32[4]
    yield %0
  }
  %1 = fusion %0 {kind = "loop"} : f32[8] {
    %0 = neg %arg0 : f32[4]
    yield %0
  }
  return %0
}
)", "f.kir:6:8: error: fusion yields f32[4] but its type is f32[8]");
  expectError(R"(graph @g(%x: f32[4] input) -> (f32[4]) {
  %0 = neg %x : f32[4] {
    yield %x
  }
  return %0
}
)", "f.kir:2:24: error: only a fusion has a body; neg does not");
  expectError(R"(graph @g(%x: f32[4] input) -> (f32[4]) {
  %0 = fusion %x {kind = "loop"} : f32[4] {
    %0 = neg %x : f32[4]
    yield %0
  }
  return %0
}
)", "f.kir:3:14: error: use of undefined value '%x'");
  expectError(R"(graph @g(%x: f32[4] input) -> (f32[4]) {
  %0 = fusion %x {kind = "tiled"} : f32[4] {
    yield %arg0
  }
  return %0
}
)", "f.kir:2:8: error: fusion kind must be \"loop\", \"reduction\" or \"epilogue\", got \"tiled\"");
  expectError(R"(graph @g(%x: f32[4] input) -> (f32[4]) {
  %0 = fusion %x {kind = "loop"} : f32[4]
  return %0
}
)", "f.kir:2:8: error: fusion needs a body");
  expectError(R"(graph @g(%x: f32[4] input) -> (f32[4]) {
  %0 = fusion %x {kind = "loop"} : f32[4] {
    %0 = fusion %arg0 {kind = "loop"} : f32[4] {
      yield %arg0
    }
    yield %0
  }
  return %0
}
)", "f.kir:3:10: error: fusions do not nest");
}

} // namespace
} // namespace kiln
