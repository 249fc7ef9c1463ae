// `kiln run --target=cpu --check-numerics` at the runtime level: the bit scan
// for NaN and infinities of every float dtype, Executable::run stopping at the
// first step that produces one (located at the step's `where`, before the next
// step and before the updates), nothing checked when it is off, and the
// step fields it reads surviving a program image round trip.
#ifdef KILN_HAVE_CPU_RUNTIME

#include "runtime/Error.h"
#include "runtime/ProgramFile.h"
#include "runtime/cpu/Executable.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

namespace kiln {
namespace {

using cpu::Executable;
using kiln::firstNonFinite;
using kiln::nonFiniteName;

TEST(CpuNumerics, ScansTheBitsOfEveryFloatDType) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> f32 = {1.5f, -FLT_MAX, FLT_MAX, FLT_MIN / 4, -inf, std::nanf("")};
  EXPECT_EQ(firstNonFinite(DType::F32, f32.data(), 4), -1); // the extremes are finite
  EXPECT_EQ(firstNonFinite(DType::F32, f32.data(), 6), 4);
  EXPECT_STREQ(nonFiniteName(DType::F32, f32.data(), 4), "-inf");
  EXPECT_STREQ(nonFiniteName(DType::F32, f32.data(), 5), "nan");
  std::vector<double> f64 = {0.0, -DBL_MAX, 1e300, std::numeric_limits<double>::infinity()};
  EXPECT_EQ(firstNonFinite(DType::F64, f64.data(), 3), -1);
  EXPECT_EQ(firstNonFinite(DType::F64, f64.data(), 4), 3);
  EXPECT_STREQ(nonFiniteName(DType::F64, f64.data(), 3), "inf");
  // bf16 is the top half of an f32; f16 has a 5-bit exponent.
  std::vector<uint16_t> bf16 = {0x3F80 /*1*/, 0x7F7F /*max*/, 0xFF80 /*-inf*/, 0x7FC0 /*nan*/};
  EXPECT_EQ(firstNonFinite(DType::BF16, bf16.data(), 4), 2);
  EXPECT_STREQ(nonFiniteName(DType::BF16, bf16.data(), 2), "-inf");
  EXPECT_STREQ(nonFiniteName(DType::BF16, bf16.data(), 3), "nan");
  std::vector<uint16_t> f16 = {0x3C00 /*1*/, 0x7BFF /*65504*/, 0x7E00 /*nan*/, 0x7C00 /*inf*/};
  EXPECT_EQ(firstNonFinite(DType::F16, f16.data(), 4), 2);
  EXPECT_STREQ(nonFiniteName(DType::F16, f16.data(), 3), "inf");
  // Integers are never non-finite, whatever their bits.
  std::vector<int32_t> i32 = {0x7F800000, -1};
  EXPECT_EQ(firstNonFinite(DType::I32, i32.data(), 2), -1);
  EXPECT_EQ(firstNonFinite(DType::F32, i32.data(), 2), 0);
}

BufferRef arena(int64_t offset, int64_t bytes) {
  BufferRef ref;
  ref.offset = offset, ref.bytes = bytes;
  return ref;
}
BufferRef argumentBuffer(int32_t argument, int64_t bytes) {
  BufferRef ref;
  ref.space = BufferRef::Space::Argument, ref.argument = argument, ref.bytes = bytes;
  return ref;
}

/// A hand-written "generated" kernel with two results: y = 2 * x (f32) and
/// z = the bits of x as i32 (never checked: not a float).
void doubleAndBits(int64_t begin, int64_t end, const float *x, float *y, int32_t *z) {
  for (int64_t i = begin; i < end; ++i) {
    y[i] = 2 * x[i];
    std::memcpy(&z[i], &x[i], 4);
  }
}

/// @p(a: f32[2,3] input, b: f32[3,2] param, w: f32[4] state):
///   step 0: c = matmul(a, b)            (arena 0, 16 bytes)
///   step 1: (y, z) = kernel(w)          (arena 64 and 128, 16 bytes each)
///   update w <- y
Program numericsProgram() {
  Program program;
  program.name = "p";
  program.arguments = {{"a", ArgumentRole::Input, DType::F32, Shape{2, 3}, {}},
                       {"b", ArgumentRole::Param, DType::F32, Shape{3, 2}, {}},
                       {"w", ArgumentRole::State, DType::F32, Shape{4}, {}}};
  program.arenaBytes = 192;
  Step matmul;
  matmul.kind = StepKind::Matmul, matmul.name = "%0 matmul";
  matmul.operands = {argumentBuffer(0, 24), argumentBuffer(1, 24)};
  matmul.result = arena(0, 16);
  matmul.matmul.m = 2, matmul.matmul.n = 2, matmul.matmul.k = 3;
  matmul.where = "a.kir:3:8", matmul.what = "matmul", matmul.resultTypes = {DType::F32};
  Step kernel;
  kernel.kind = StepKind::Kernel, kernel.name = "%1 fusion";
  kernel.kernel = reinterpret_cast<KernelFunction>(&doubleAndBits);
  kernel.operands = {argumentBuffer(2, 16)};
  kernel.result = arena(64, 16), kernel.extraResults = {arena(128, 16)};
  kernel.iterations = 4;
  kernel.where = "a.kir:4:10", kernel.what = "fusion (mul, bitcast)";
  kernel.resultTypes = {DType::F32, DType::I32};
  program.steps = {matmul, kernel};
  program.results = {{"c", DType::F32, Shape{2, 2}, arena(0, 16)},
                     {"z", DType::I32, Shape{4}, arena(128, 16)}};
  program.updates = {{2, arena(64, 16)}};
  return program;
}

HostTensor floats(Shape shape, std::vector<double> values) {
  return HostTensor::fromDoubles(DType::F32, std::move(shape), values);
}

std::string runError(Executable &exe) {
  try {
    exe.run();
  } catch (const Error &e) {
    return e.what();
  }
  return "no error";
}

TEST(CpuNumerics, StopsAtTheFirstStepProducingANonFiniteValue) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> uniform(-1, 1);
  std::vector<double> a(6), b(6);
  for (double &v : a)
    v = uniform(rng);
  for (double &v : b)
    v = uniform(rng);
  // Row 1 of a times column 1 of b overflows f32 (3 * 1e20 * 1e20): c[1][1],
  // element 3, is inf; the products of row 0 stay finite.
  a[3] = a[4] = a[5] = 1e20;
  b[1] = b[3] = b[5] = 1e20;
  Executable exe(numericsProgram());
  exe.setArgument("a", floats(Shape{2, 3}, a));
  exe.setArgument("b", floats(Shape{3, 2}, b));
  exe.setArgument("w", floats(Shape{4}, {0.25, -0.5, 0.75, 1.5}));
  EXPECT_FALSE(exe.checkNumerics()); // off by default: the inf is a result like any other
  exe.run();
  EXPECT_TRUE(std::isinf(exe.result("c").getDouble(3)));
  EXPECT_TRUE(std::isfinite(exe.result("c").getDouble(2)));
  EXPECT_EQ(exe.argument("w").getDouble(0), 0.5); // updated: 2 * 0.25

  exe.setCheckNumerics(true);
  EXPECT_EQ(runError(exe), "a.kir:3:8: error: matmul produced inf at element 3 (check-numerics)");
  // The run stopped before step 1 and the update: w keeps its value.
  EXPECT_EQ(exe.argument("w").getDouble(0), 0.5);

  // Finite matmul; the kernel's f32 result overflows at element 2 (2 * 3e38),
  // and the i32 result, whose bits are those of the inf at element 1, is not
  // a float: the first report is the f32 one.
  a[3] = a[4] = a[5] = 0.5;
  exe.setArgument("a", floats(Shape{2, 3}, a));
  // w[1] = inf doubles to inf at element 1: that comes first.
  exe.setArgument("w", floats(Shape{4}, {0.5, std::numeric_limits<double>::infinity(), 3e38, 1}));
  EXPECT_EQ(runError(exe),
            "a.kir:4:10: error: fusion (mul, bitcast) (result 0) produced inf at element 1 (check-numerics)");
  exe.setArgument("w", floats(Shape{4}, {0.5, -1, 3e38, 1}));
  EXPECT_EQ(runError(exe),
            "a.kir:4:10: error: fusion (mul, bitcast) (result 0) produced inf at element 2 (check-numerics)");
  exe.setArgument("w", floats(Shape{4}, {0.5, -1, -3e38, 1}));
  EXPECT_EQ(runError(exe),
            "a.kir:4:10: error: fusion (mul, bitcast) (result 0) produced -inf at element 2 (check-numerics)");
  // All finite: the run completes and matches the check-free run.
  exe.setArgument("w", floats(Shape{4}, {0.5, -1, 2, 1}));
  exe.run();
  EXPECT_EQ(exe.argument("w").getDouble(2), 4.0);
  HostTensor checked = exe.result("c");
  exe.setCheckNumerics(false);
  exe.run();
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_EQ(exe.result("c").getDouble(i), checked.getDouble(i)) << i;
}

TEST(CpuNumerics, UnlocatedStepsNameTheProgram) {
  Program program = numericsProgram();
  program.steps[0].where.clear();
  program.steps[0].what.clear();
  Executable exe(std::move(program));
  exe.setArgument("a", floats(Shape{2, 3}, {0.1, 0.2, std::nan(""), 0.4, 0.5, 0.6}));
  exe.setArgument("b", floats(Shape{3, 2}, {0.3, -0.2, 0.7, 0.1, -0.9, 0.4}));
  exe.setCheckNumerics(true);
  EXPECT_EQ(runError(exe), "@p: error: step %0 matmul produced nan at element 0 (check-numerics)");
}

TEST(CpuNumerics, ResultTypesMustMatchTheResults) {
  Program program = numericsProgram();
  program.steps[1].resultTypes = {DType::F32};
  EXPECT_THROW(Executable{program}, Error);
  program.steps[1].resultTypes = {DType::F32, DType::F64}; // 16 bytes: two f64s, fine
  EXPECT_NO_THROW(Executable{program});
  program.steps[1].result.bytes = 15;
  program.steps[1].resultTypes = {DType::F32, DType::I32};
  EXPECT_THROW(Executable{program}, Error); // 15 bytes are no whole f32s
}

TEST(CpuNumerics, StepLocationsRoundTripThroughAProgramImage) {
  Program program = numericsProgram();
  std::string image = serializeProgram(program);
  Program back = parseProgram(image, "image");
  for (size_t i = 0; i < program.steps.size(); ++i) {
    EXPECT_EQ(back.steps[i].where, program.steps[i].where);
    EXPECT_EQ(back.steps[i].what, program.steps[i].what);
    EXPECT_EQ(back.steps[i].resultTypes, program.steps[i].resultTypes);
  }
  EXPECT_EQ(serializeProgram(back), image);
  // An image written before these fields existed loads without them.
  nlohmann::json old = nlohmann::json::parse(image);
  for (auto &step : old["steps"]) {
    step.erase("where"), step.erase("what"), step.erase("result_dtypes");
  }
  Program older = parseProgram(old.dump(), "old image");
  EXPECT_TRUE(older.steps[1].where.empty());
  EXPECT_TRUE(older.steps[1].resultTypes.empty());
  // A wrong count of result dtypes is a located error.
  old["steps"][1]["result_dtypes"] = {0};
  try {
    parseProgram(old.dump(), "bad image");
    ADD_FAILURE() << "accepted one dtype for two results";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()),
              "bad image: error: program image: /steps/1/result_dtypes: expected an array of 2");
  }
}

} // namespace
} // namespace kiln

#endif
