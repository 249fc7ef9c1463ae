// The interpreter's guards for `kiln run`: check-numerics (the first argument
// or node holding a NaN or an infinity, located) and interpreterPeakBytes (the
// bytes of live values, computed from the graph before anything runs).
#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace kiln {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

const char *kExpLog = R"(graph @g(%x: f32[4] input) -> (y: f32[4]) {
  %0 = exp %x : f32[4]
  %1 = log %0 : f32[4]
  return %1
}
)";

HostTensor f32(const std::vector<double> &values) {
  return HostTensor::fromDoubles(DType::F32, Shape({int64_t(values.size())}), values);
}

InterpreterOptions checking(Precision precision = Precision::Native) {
  InterpreterOptions options;
  options.precision = precision;
  options.checkNumerics = true;
  return options;
}

/// The message of the kiln::Error `interpret` throws, or "" when it runs.
std::string numericsError(const std::string &kir, const TensorMap &arguments,
                          const InterpreterOptions &options = checking()) {
  Module module = parseModule(kir, "f.kir");
  try {
    interpret(*module.graphs[0], arguments, options);
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

TEST(CheckNumerics, OffByDefaultTheInfinityIsAResult) {
  Module module = parseModule(kExpLog, "f.kir");
  InterpreterResult r = interpret(*module.graphs[0], {{"x", f32({1, 2, 3, 100})}});
  EXPECT_EQ(r.results[0].getDouble(3), kInf); // exp(100) overflows f32
  EXPECT_FLOAT_EQ(r.results[0].getDouble(1), 2.0f);
}

TEST(CheckNumerics, ReportsTheFirstNodeProducingAnInfinity) {
  EXPECT_EQ(numericsError(kExpLog, {{"x", f32({1, 2, 3, 100})}}),
            "f.kir:2:8: error: exp produced inf at element 3 (check-numerics)");
}

TEST(CheckNumerics, ReportsNaNAndNegativeInfinity) {
  const char *logs = R"(graph @g(%x: f32[3] input) -> (f32[3]) {
  %0 = neg %x : f32[3]
  %1 = log %0 : f32[3]
  return %1
}
)";
  EXPECT_EQ(numericsError(logs, {{"x", f32({-1, 2, -3})}}),
            "f.kir:3:8: error: log produced nan at element 1 (check-numerics)");
  EXPECT_EQ(numericsError(logs, {{"x", f32({-1, -2, 0})}}),
            "f.kir:3:8: error: log produced -inf at element 2 (check-numerics)");
}

TEST(CheckNumerics, ReportsANonFiniteArgumentBeforeAnyNode) {
  EXPECT_EQ(numericsError(kExpLog, {{"x", f32({1, 2, kNaN, 100})}}),
            "f.kir:1:10: error: argument 'x' holds nan at element 2 (check-numerics)");
  EXPECT_EQ(numericsError(kExpLog, {{"x", f32({-kInf, 2, 3, 4})}}),
            "f.kir:1:10: error: argument 'x' holds -inf at element 0 (check-numerics)");
}

TEST(CheckNumerics, ChecksAfterRoundingToTheDType) {
  // exp(100) = 2.7e43 is finite in f64 and overflows f32.
  EXPECT_EQ(numericsError(kExpLog, {{"x", f32({1, 2, 3, 100})}}, checking(Precision::F64)), "");
}

TEST(CheckNumerics, LocatesTheNodeInsideAFusionBody) {
  const char *fused = R"(graph @g(%x: f32[4] input) -> (f32[4]) {
  %0 = fusion %x {kind = "loop"} : f32[4] {
    %0 = neg %arg0 : f32[4]
    %1 = exp %0 : f32[4]
    %2 = neg %1 : f32[4]
    yield %2
  }
  return %0
}
)";
  EXPECT_EQ(numericsError(fused, {{"x", f32({1, -100, 3, 4})}}),
            "f.kir:4:10: error: exp in a fusion produced inf at element 1 (check-numerics)");
}

TEST(CheckNumerics, AFiniteRunIsUnchanged) {
  const char *mixed = R"(graph @g(%x: f32[4] input, %i: i32[4] input) -> (f32[4], i32[4]) {
  %0 = exp %x : f32[4]
  %1 = mul %i, %i : i32[4]
  return %0, %1
}
)";
  Module module = parseModule(mixed, "f.kir");
  HostTensor i(DType::I32, Shape({4}));
  for (int64_t k = 0; k < 4; ++k)
    i.setInt(k, 40000 * (k + 1)); // wraps: integers are never "non-finite"
  TensorMap arguments = {{"x", f32({0.5, -1, 2, 3})}, {"i", i}};
  InterpreterResult plain = interpret(*module.graphs[0], arguments);
  InterpreterResult checked = interpret(*module.graphs[0], arguments, checking());
  ASSERT_EQ(checked.results.size(), 2u);
  for (size_t r = 0; r < 2; ++r)
    for (int64_t k = 0; k < 4; ++k)
      EXPECT_EQ(plain.results[r].getDouble(k), checked.results[r].getDouble(k));
  EXPECT_FLOAT_EQ(checked.results[0].getDouble(2), std::exp(2.0f));
}

uint64_t peakBytes(const std::string &kir) {
  Module module = parseModule(kir, "f.kir");
  return interpreterPeakBytes(*module.graphs[0]);
}

TEST(InterpreterPeakBytes, CountsEightBytesPerElementOfTheLiveValues) {
  // x (32 bytes) and exp (32) live together; then x is dropped and neg is made.
  EXPECT_EQ(peakBytes(R"(graph @g(%x: f32[4] input) -> (f32[4]) {
  %0 = exp %x : f32[4]
  %1 = neg %0 : f32[4]
  return %1
}
)"),
            64u);
  // An unused argument lives throughout (800); x (80) until its last use;
  // the peak is at the broadcast: w 800 + %0 8 + %1 400.
  EXPECT_EQ(peakBytes(R"(graph @g(%x: f32[10] input, %w: f32[100] param) -> (f32[50]) {
  %0 = reduce_sum %x {axes = [0]} : f32[]
  %1 = broadcast %0 {dims = []} : f32[50]
  return %1
}
)"),
            1208u);
  // A result used later stays live: %0 (80) with x (80) and %1 (80).
  EXPECT_EQ(peakBytes(R"(graph @g(%x: bf16[10] input) -> (bf16[10], bf16[10]) {
  %0 = exp %x : bf16[10]
  %1 = neg %0 : bf16[10]
  %2 = add %0, %1 : bf16[10]
  return %0, %2
}
)"),
            240u);
}

TEST(InterpreterPeakBytes, AFusionHoldsItsWholeBody) {
  // x 256 + b 64, then the body: four f32[4,8] values (256 each) and the
  // f32[4] result (32): 320 + 1056.
  EXPECT_EQ(peakBytes(R"(graph @fused(%x: f32[4,8] input, %b: f32[8] input) -> (f32[4]) {
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
)"),
            1376u);
}

TEST(InterpreterPeakBytes, AHugeGraphIsMeasuredNotAllocated) {
  EXPECT_EQ(peakBytes(R"(graph @g(%x: f32[1099511627776] input) -> (f32[1099511627776]) {
  %0 = neg %x : f32[1099511627776]
  return %0
}
)"),
            uint64_t(1) << 44);
}

} // namespace
} // namespace kiln
