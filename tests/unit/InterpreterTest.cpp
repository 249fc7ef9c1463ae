// The reference interpreter against hand-computed values: one table case or
// more per op (InterpreterOp), then the semantics the conformance cases do not
// reach: integer wrap-around and exactness beyond 2^53, rounding to bf16/f16,
// cast saturation, NaN rules, index clamping, rng_uniform, precision modes,
// argument checking and updates.
#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "runtime/Error.h"
#include "runtime/Random.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>
#include <set>

namespace kiln {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kI32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kI32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kTwo53 = int64_t(1) << 53;

HostTensor reals(DType t, Shape shape, const std::vector<double> &values) {
  return HostTensor::fromDoubles(t, std::move(shape), values);
}
HostTensor f32(Shape shape, const std::vector<double> &values) {
  return reals(DType::F32, std::move(shape), values);
}
HostTensor ints(DType t, Shape shape, const std::vector<int64_t> &values) {
  HostTensor h(t, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i)
    h.setInt(int64_t(i), values[i]);
  return h;
}
HostTensor i32(Shape shape, const std::vector<int64_t> &values) {
  return ints(DType::I32, std::move(shape), values);
}
HostTensor i64(Shape shape, const std::vector<int64_t> &values) {
  return ints(DType::I64, std::move(shape), values);
}
HostTensor i1(Shape shape, const std::vector<int64_t> &values) {
  return ints(DType::I1, std::move(shape), values);
}

/// A one-op graph `@t(%x: type) -> (resultType)` as .kir text; `opAndAttrs`
/// is the op's name, optionally followed by its attributes: `cast {to = i32}`.
std::string unaryKir(const std::string &opAndAttrs, const std::string &type,
                     std::string resultType = "") {
  if (resultType.empty())
    resultType = type;
  size_t space = opAndAttrs.find(' ');
  std::string op = opAndAttrs.substr(0, space);
  std::string attrs = space == std::string::npos ? "" : opAndAttrs.substr(space);
  return "graph @t(%x: " + type + " input) -> (" + resultType + ") {\n  %0 = " + op + " %x" +
         attrs + " : " + resultType + "\n  return %0\n}\n";
}

/// A one-op graph `@t(%a: type, %b: type) -> (resultType)`.
std::string binaryKir(const std::string &op, const std::string &type,
                      std::string resultType = "") {
  if (resultType.empty())
    resultType = type;
  return "graph @t(%a: " + type + " input, %b: " + type + " input) -> (" + resultType +
         ") {\n  %0 = " + op + " %a, %b : " + resultType + "\n  return %0\n}\n";
}

Module parse(const std::string &kir) { return parseModule(kir, "test.kir"); }

InterpreterResult run(const std::string &kir, const TensorMap &args,
                      Precision precision = Precision::Native) {
  Module module = parse(kir);
  return interpret(*module.graphs.at(0), args, precision);
}

/// Element-by-element comparison: integers exactly, floats exactly or within
/// `relTolerance`, NaN equal to NaN.
void expectTensor(const HostTensor &actual, const HostTensor &expected, double relTolerance = 0) {
  ASSERT_EQ(actual.typeString(), expected.typeString());
  for (int64_t i = 0; i < expected.numElements(); ++i) {
    if (!isFloat(expected.dtype())) {
      EXPECT_EQ(actual.getInt(i), expected.getInt(i)) << "element " << i;
      continue;
    }
    double a = actual.getDouble(i), e = expected.getDouble(i);
    if (std::isnan(e))
      EXPECT_TRUE(std::isnan(a)) << "element " << i << ": got " << a << ", expected NaN";
    else if (relTolerance == 0 || std::isinf(e))
      EXPECT_EQ(a, e) << "element " << i;
    else
      EXPECT_NEAR(a, e, relTolerance * std::fabs(e)) << "element " << i;
  }
}

// --- One table case per op (or more) -------------------------------------

struct OpCase {
  std::string name; // the test's name
  std::string kir;  // one graph; its first result is checked
  TensorMap inputs;
  HostTensor expected;
  double relTolerance = 0; // 0: exact
};

std::vector<OpCase> opCases() {
  // Native f32 rounds the double result once: a libm result is the f32
  // nearest to the true value but for a rare tie, so 1e-7 relative suffices.
  const double libm = 1e-7;
  const std::string f4 = "f32[4]";
  return {
      {"neg_f32", unaryKir("neg", f4), {{"x", f32({4}, {-2, -0.5, 0, 3})}},
       f32({4}, {2, 0.5, 0, -3})},
      {"neg_i32_wraps", unaryKir("neg", "i32[3]"), {{"x", i32({3}, {5, -7, kI32Min})}},
       i32({3}, {-5, 7, kI32Min})},
      {"abs_f32", unaryKir("abs", f4), {{"x", f32({4}, {-2, -0.5, 0, 3})}},
       f32({4}, {2, 0.5, 0, 3})},
      {"abs_i64", unaryKir("abs", "i64[3]"), {{"x", i64({3}, {-(kTwo53 + 1), 4, kI64Min})}},
       i64({3}, {kTwo53 + 1, 4, kI64Min})},
      {"exp", unaryKir("exp", f4), {{"x", f32({4}, {0, 1, -1, 2})}},
       f32({4}, {1, 2.718281828459045, 0.36787944117144233, 7.38905609893065}), libm},
      {"log", unaryKir("log", f4), {{"x", f32({4}, {1, 2, 0, -1})}},
       f32({4}, {0, 0.6931471805599453, -kInf, kNaN}), libm},
      {"sqrt", unaryKir("sqrt", f4), {{"x", f32({4}, {4, 2, 0, -1})}},
       f32({4}, {2, 1.4142135623730951, 0, kNaN})},
      {"rsqrt", unaryKir("rsqrt", f4), {{"x", f32({4}, {4, 0.25, 0, 2})}},
       f32({4}, {0.5, 2, kInf, 0.7071067811865476})},
      {"tanh", unaryKir("tanh", f4), {{"x", f32({4}, {0, 1, -20, 0.5})}},
       f32({4}, {0, 0.7615941559557649, -1, 0.46211715726000974}), libm},
      {"logistic", unaryKir("logistic", f4), {{"x", f32({4}, {0, 2, -800, 800})}},
       f32({4}, {0.5, 0.8807970779778823, 0, 1}), libm},
      {"erf", unaryKir("erf", f4), {{"x", f32({4}, {0, 1, -0.5, 10})}},
       f32({4}, {0, 0.8427007929497149, -0.5204998778130465, 1}), libm},
      {"sin", unaryKir("sin", f4), {{"x", f32({4}, {0, 0.5, -2, 4})}},
       f32({4}, {0, 0.479425538604203, -0.9092974268256817, -0.7568024953079282}), libm},
      {"cos", unaryKir("cos", f4), {{"x", f32({4}, {0, 0.5, 3, -1})}},
       f32({4}, {1, 0.8775825618903728, -0.9899924966004454, 0.5403023058681398}), libm},
      {"sign_f32", unaryKir("sign", f4), {{"x", f32({4}, {-2, 0, 3.5, kNaN})}},
       f32({4}, {-1, 0, 1, kNaN})},
      {"sign_i32", unaryKir("sign", "i32[3]"), {{"x", i32({3}, {-7, 0, 9})}},
       i32({3}, {-1, 0, 1})},
      {"floor", unaryKir("floor", f4), {{"x", f32({4}, {-1.5, 2.75, 3, -0.25})}},
       f32({4}, {-2, 2, 3, -1})},
      {"not", unaryKir("not", "i1[3]"), {{"x", i1({3}, {1, 0, 1})}}, i1({3}, {0, 1, 0})},
      {"cast_f32_to_i32", unaryKir("cast {to = i32}", f4, "i32[4]"),
       {{"x", f32({4}, {2.9, -2.9, 1e10, kNaN})}}, i32({4}, {2, -2, kI32Max, 0})},

      {"add_f32", binaryKir("add", "f32[2]"),
       {{"a", f32({2}, {1, 2.5})}, {"b", f32({2}, {0.25, -4})}}, f32({2}, {1.25, -1.5})},
      {"add_i64_exact_and_wraps", binaryKir("add", "i64[2]"),
       {{"a", i64({2}, {kTwo53 + 1, kI64Max})}, {"b", i64({2}, {2, 1})}},
       i64({2}, {kTwo53 + 3, kI64Min})},
      {"sub_i32_wraps", binaryKir("sub", "i32[2]"),
       {{"a", i32({2}, {kI32Min, 10})}, {"b", i32({2}, {1, 13})}}, i32({2}, {kI32Max, -3})},
      {"sub_f32", binaryKir("sub", "f32[2]"),
       {{"a", f32({2}, {1, 2.5})}, {"b", f32({2}, {0.25, -4})}}, f32({2}, {0.75, 6.5})},
      {"mul_i64_exact_and_wraps", binaryKir("mul", "i64[2]"),
       {{"a", i64({2}, {3, 3037000500})}, {"b", i64({2}, {3002399751580331, 3037000500})}},
       i64({2}, {kTwo53 + 1, -9223372036709301616})},
      {"mul_f32", binaryKir("mul", "f32[2]"),
       {{"a", f32({2}, {1.5, -2})}, {"b", f32({2}, {4, 0.25})}}, f32({2}, {6, -0.5})},
      {"div_f32", binaryKir("div", f4),
       {{"a", f32({4}, {1, -3, 1, 0})}, {"b", f32({4}, {4, 2, 0, 0})}},
       f32({4}, {0.25, -1.5, kInf, kNaN})},
      {"div_i32_truncates_and_by_zero_is_zero", binaryKir("div", "i32[5]"),
       {{"a", i32({5}, {7, -7, 5, kI32Min, 0})}, {"b", i32({5}, {2, 2, 0, -1, 0})}},
       i32({5}, {3, -3, 0, kI32Min, 0})},
      {"div_i64", binaryKir("div", "i64[3]"),
       {{"a", i64({3}, {kI64Min, 3 * (kTwo53 + 1), -9})}, {"b", i64({3}, {-1, 3, 0})}},
       i64({3}, {kI64Min, kTwo53 + 1, 0})},
      {"max_f32_propagates_nan", binaryKir("max", "f32[3]"),
       {{"a", f32({3}, {1, kNaN, -2})}, {"b", f32({3}, {2, 0, kNaN})}},
       f32({3}, {2, kNaN, kNaN})},
      {"min_f32_propagates_nan", binaryKir("min", "f32[3]"),
       {{"a", f32({3}, {1, kNaN, -2})}, {"b", f32({3}, {2, 0, kNaN})}},
       f32({3}, {1, kNaN, kNaN})},
      {"max_i64", binaryKir("max", "i64[2]"),
       {{"a", i64({2}, {kTwo53 + 1, -5})}, {"b", i64({2}, {kTwo53, -6})}},
       i64({2}, {kTwo53 + 1, -5})},
      {"min_i32", binaryKir("min", "i32[2]"),
       {{"a", i32({2}, {3, -5})}, {"b", i32({2}, {4, -6})}}, i32({2}, {3, -6})},
      {"pow", binaryKir("pow", "f32[3]"),
       {{"a", f32({3}, {2, 4, 9})}, {"b", f32({3}, {3, 0.5, -0.5})}},
       f32({3}, {8, 2, 1.0 / 3.0}), libm},
      {"eq_f32_nan", binaryKir("eq", "f32[3]", "i1[3]"),
       {{"a", f32({3}, {1, 2, kNaN})}, {"b", f32({3}, {1, 3, kNaN})}}, i1({3}, {1, 0, 0})},
      {"ne_f32_nan", binaryKir("ne", "f32[3]", "i1[3]"),
       {{"a", f32({3}, {1, 2, kNaN})}, {"b", f32({3}, {1, 3, kNaN})}}, i1({3}, {0, 1, 1})},
      {"lt_f32_nan", binaryKir("lt", "f32[3]", "i1[3]"),
       {{"a", f32({3}, {1, 2, kNaN})}, {"b", f32({3}, {1, 3, kNaN})}}, i1({3}, {0, 1, 0})},
      {"le_f32_nan", binaryKir("le", "f32[3]", "i1[3]"),
       {{"a", f32({3}, {1, 2, kNaN})}, {"b", f32({3}, {1, 3, kNaN})}}, i1({3}, {1, 1, 0})},
      {"gt_i64_beyond_2_53", binaryKir("gt", "i64[3]", "i1[3]"),
       {{"a", i64({3}, {kTwo53 + 1, 1, 2})}, {"b", i64({3}, {kTwo53, 1, 3})}},
       i1({3}, {1, 0, 0})},
      {"ge_i32", binaryKir("ge", "i32[3]", "i1[3]"),
       {{"a", i32({3}, {2, 1, 2})}, {"b", i32({3}, {1, 1, 3})}}, i1({3}, {1, 1, 0})},
      {"eq_i64_beyond_2_53", binaryKir("eq", "i64[2]", "i1[2]"),
       {{"a", i64({2}, {kTwo53 + 1, 5})}, {"b", i64({2}, {kTwo53, 5})}}, i1({2}, {0, 1})},
      {"eq_i1", binaryKir("eq", "i1[4]", "i1[4]"),
       {{"a", i1({4}, {1, 1, 0, 0})}, {"b", i1({4}, {1, 0, 1, 0})}}, i1({4}, {1, 0, 0, 1})},
      {"and", binaryKir("and", "i1[4]"),
       {{"a", i1({4}, {1, 1, 0, 0})}, {"b", i1({4}, {1, 0, 1, 0})}}, i1({4}, {1, 0, 0, 0})},
      {"or", binaryKir("or", "i1[4]"),
       {{"a", i1({4}, {1, 1, 0, 0})}, {"b", i1({4}, {1, 0, 1, 0})}}, i1({4}, {1, 1, 1, 0})},

      {"select_i64",
       "graph @t(%c: i1[3] input, %a: i64[3] input, %b: i64[3] input) -> (i64[3]) {\n"
       "  %0 = select %c, %a, %b : i64[3]\n  return %0\n}\n",
       {{"c", i1({3}, {1, 0, 1})},
        {"a", i64({3}, {kTwo53 + 1, 2, 3})},
        {"b", i64({3}, {-1, kI64Max, -3})}},
       i64({3}, {kTwo53 + 1, kI64Max, 3})},
      {"constant_splat", "graph @t() -> (f32[2,2]) {\n  %0 = constant {value = 1.5} : f32[2,2]\n"
                         "  return %0\n}\n",
       {}, f32({2, 2}, {1.5, 1.5, 1.5, 1.5})},
      {"constant_i64_list",
       "graph @t() -> (i64[3]) {\n  %0 = constant {value = [9007199254740993, -1, 0]} : i64[3]\n"
       "  return %0\n}\n",
       {}, i64({3}, {kTwo53 + 1, -1, 0})},
      {"iota_dim0", "graph @t() -> (f32[2,3]) {\n  %0 = iota {dim = 0} : f32[2,3]\n"
                    "  return %0\n}\n",
       {}, f32({2, 3}, {0, 0, 0, 1, 1, 1})},
      {"iota_i64_dim1", "graph @t() -> (i64[2,3]) {\n  %0 = iota {dim = 1} : i64[2,3]\n"
                        "  return %0\n}\n",
       {}, i64({2, 3}, {0, 1, 2, 0, 1, 2})},

      {"broadcast_col", unaryKir("broadcast {dims = [0]}", "f32[2]", "f32[2,3]"),
       {{"x", f32({2}, {1, 2})}}, f32({2, 3}, {1, 1, 1, 2, 2, 2})},
      {"broadcast_size1_i64", unaryKir("broadcast {dims = [0, 2]}", "i64[1,2]", "i64[2,2,2]"),
       {{"x", i64({1, 2}, {kTwo53 + 1, 7})}},
       i64({2, 2, 2}, {kTwo53 + 1, 7, kTwo53 + 1, 7, kTwo53 + 1, 7, kTwo53 + 1, 7})},
      {"reshape", unaryKir("reshape", "i32[2,3]", "i32[3,2]"),
       {{"x", i32({2, 3}, {1, 2, 3, 4, 5, 6})}}, i32({3, 2}, {1, 2, 3, 4, 5, 6})},
      {"transpose", unaryKir("transpose {perm = [1, 0]}", "f32[2,3]", "f32[3,2]"),
       {{"x", f32({2, 3}, {1, 2, 3, 4, 5, 6})}}, f32({3, 2}, {1, 4, 2, 5, 3, 6})},
      {"transpose_3d", unaryKir("transpose {perm = [2, 0, 1]}", "i32[2,2,3]", "i32[3,2,2]"),
       {{"x", i32({2, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})}},
       i32({3, 2, 2}, {0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11})},
      {"slice", unaryKir("slice {start = [0, 1], limit = [3, 4], stride = [2, 2]}", "f32[3,4]",
                         "f32[2,2]"),
       {{"x", f32({3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})}}, f32({2, 2}, {1, 3, 9, 11})},
      {"pad_i32", unaryKir("pad {low = [1, 0], high = [0, 2], value = 7.0}", "i32[1,2]",
                           "i32[2,4]"),
       {{"x", i32({1, 2}, {1, 2})}}, i32({2, 4}, {7, 7, 7, 7, 1, 2, 7, 7})},
      {"concat_axis0",
       "graph @t(%a: i1[1,2] input, %b: i1[2,2] input) -> (i1[4,2]) {\n"
       "  %0 = concat %a, %b, %a {axis = 0} : i1[4,2]\n  return %0\n}\n",
       {{"a", i1({1, 2}, {1, 0})}, {"b", i1({2, 2}, {0, 0, 1, 1})}},
       i1({4, 2}, {1, 0, 0, 0, 1, 1, 1, 0})},

      {"reduce_sum_rows", unaryKir("reduce_sum {axes = [1]}", "f32[2,3]", "f32[2]"),
       {{"x", f32({2, 3}, {1, 2, 3, 4, 5, 6})}}, f32({2}, {6, 15})},
      {"reduce_sum_i64_exact", unaryKir("reduce_sum {axes = [0]}", "i64[3]", "i64[]"),
       {{"x", i64({3}, {kTwo53, 1, 2})}}, i64({}, {kTwo53 + 3})},
      {"reduce_sum_empty_is_zero", unaryKir("reduce_sum {axes = [0]}", "f32[0,2]", "f32[2]"),
       {{"x", f32({0, 2}, {})}}, f32({2}, {0, 0})},
      {"reduce_max_nan_propagates", unaryKir("reduce_max {axes = [1]}", "f32[2,3]", "f32[2]"),
       {{"x", f32({2, 3}, {1, kNaN, 3, -4, -1, -2})}}, f32({2}, {kNaN, -1})},
      {"reduce_max_empty_is_lowest", unaryKir("reduce_max {axes = [0]}", "f32[0,2]", "f32[2]"),
       {{"x", f32({0, 2}, {})}}, f32({2}, {-kInf, -kInf})},
      {"reduce_max_i32_empty", unaryKir("reduce_max {axes = [1]}", "i32[1,0]", "i32[1]"),
       {{"x", i32({1, 0}, {})}}, i32({1}, {kI32Min})},
      {"argmax_first_of_ties_and_nan", unaryKir("argmax {axis = 1}", "f32[3,4]", "i32[3]"),
       {{"x", f32({3, 4}, {1, 5, 5, 2, 1, kNaN, 9, kNaN, -3, -3, -3, -4})}},
       i32({3}, {1, 1, 0})},
      {"argmax_i64_axis0", unaryKir("argmax {axis = 0}", "i64[2,2]", "i32[2]"),
       {{"x", i64({2, 2}, {kTwo53, 4, kTwo53 + 1, 4})}}, i32({2}, {1, 0})},

      {"matmul",
       "graph @t(%a: f32[2,3] input, %b: f32[3,2] input) -> (f32[2,2]) {\n"
       "  %0 = matmul %a, %b : f32[2,2]\n  return %0\n}\n",
       {{"a", f32({2, 3}, {1, 2, 3, 4, 5, 6})}, {"b", f32({3, 2}, {7, 8, 9, 10, 11, 12})}},
       f32({2, 2}, {58, 64, 139, 154})},
      {"matmul_transposed_batched",
       "graph @t(%a: f64[2,2,1] input, %b: f64[2,2,2] input) -> (f64[2,1,2]) {\n"
       "  %0 = matmul %a, %b {transpose_a = true, transpose_b = true} : f64[2,1,2]\n"
       "  return %0\n}\n",
       {{"a", reals(DType::F64, {2, 2, 1}, {1, 2, 3, 4})},
        {"b", reals(DType::F64, {2, 2, 2}, {1, 10, 100, 1000, 2, 3, 4, 5})}},
       // batch 0: [1 2] x [[1 100] [10 1000]]; batch 1: [3 4] x [[2 4] [3 5]]
       reals(DType::F64, {2, 1, 2}, {21, 2100, 18, 32})},
      {"conv2d",
       "graph @t(%x: f32[1,1,3,3] input, %w: f32[1,1,2,2] input) -> (f32[1,1,2,2]) {\n"
       "  %0 = conv2d %x, %w : f32[1,1,2,2]\n  return %0\n}\n",
       {{"x", f32({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})},
        {"w", f32({1, 1, 2, 2}, {1, 0, 0, 1})}},
       f32({1, 1, 2, 2}, {6, 8, 12, 14})},
      {"conv2d_padded_strided",
       "graph @t(%x: f32[1,1,2,2] input, %w: f32[1,1,1,1] input) -> (f32[1,1,2,2]) {\n"
       "  %0 = conv2d %x, %w {stride = [2, 2], padding = [1, 1]} : f32[1,1,2,2]\n"
       "  return %0\n}\n",
       {{"x", f32({1, 1, 2, 2}, {1, 2, 3, 4})}, {"w", f32({1, 1, 1, 1}, {10})}},
       // padded input is 4x4 with x in the middle; taps at (0,0) (0,2) (2,0) (2,2)
       f32({1, 1, 2, 2}, {0, 0, 0, 40})},
      {"conv2d_grad_input",
       "graph @t(%dy: f32[1,1,2,2] input, %w: f32[1,1,2,2] input) -> (f32[1,1,3,3]) {\n"
       "  %0 = conv2d_grad_input %dy, %w : f32[1,1,3,3]\n  return %0\n}\n",
       {{"dy", f32({1, 1, 2, 2}, {1, 2, 3, 4})}, {"w", f32({1, 1, 2, 2}, {1, 0, 0, 1})}},
       f32({1, 1, 3, 3}, {1, 2, 0, 3, 5, 2, 0, 3, 4})},
      {"conv2d_grad_filter",
       "graph @t(%x: f32[1,1,3,3] input, %dy: f32[1,1,2,2] input) -> (f32[1,1,2,2]) {\n"
       "  %0 = conv2d_grad_filter %x, %dy : f32[1,1,2,2]\n  return %0\n}\n",
       {{"x", f32({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})},
        {"dy", f32({1, 1, 2, 2}, {1, 0, 0, 1})}},
       f32({1, 1, 2, 2}, {6, 8, 12, 14})},
      {"max_pool2d",
       unaryKir("max_pool2d {window = [2, 2], stride = [2, 2]}", "f32[1,1,2,4]", "f32[1,1,1,2]"),
       {{"x", f32({1, 1, 2, 4}, {1, 3, 2, 2, 4, 0, 2, 1})}}, f32({1, 1, 1, 2}, {4, 2})},
      {"max_pool2d_padding_never_wins",
       unaryKir("max_pool2d {window = [3, 3], stride = [1, 1], padding = [1, 1]}",
                "f32[1,1,2,2]", "f32[1,1,2,2]"),
       {{"x", f32({1, 1, 2, 2}, {-1, -2, -3, -4})}}, f32({1, 1, 2, 2}, {-1, -1, -1, -1})},
      {"avg_pool2d_padding_counts",
       unaryKir("avg_pool2d {window = [3, 3], stride = [1, 1], padding = [1, 1]}",
                "f64[1,1,2,2]", "f64[1,1,2,2]"),
       {{"x", reals(DType::F64, {1, 1, 2, 2}, {1, 2, 3, 4})}},
       reals(DType::F64, {1, 1, 2, 2}, {10.0 / 9, 10.0 / 9, 10.0 / 9, 10.0 / 9})},
      {"max_pool2d_grad_ties_go_to_first",
       "graph @t(%x: f32[1,1,2,3] input, %dy: f32[1,1,1,2] input) -> (f32[1,1,2,3]) {\n"
       "  %0 = max_pool2d_grad %x, %dy {window = [2, 2], stride = [1, 1]} : f32[1,1,2,3]\n"
       "  return %0\n}\n",
       // windows {5 5 / 5 1} and {5 2 / 1 5}: both first maxima are at (0, 1)
       {{"x", f32({1, 1, 2, 3}, {5, 5, 2, 5, 1, 5})}, {"dy", f32({1, 1, 1, 2}, {7, 100})}},
       f32({1, 1, 2, 3}, {7, 100, 0, 0, 0, 0})},
      {"avg_pool2d_grad",
       "graph @t(%dy: f32[1,1,2,2] input) -> (f32[1,1,2,2]) {\n"
       "  %0 = avg_pool2d_grad %dy {window = [3, 3], stride = [1, 1], padding = [1, 1]}"
       " : f32[1,1,2,2]\n  return %0\n}\n",
       {{"dy", f32({1, 1, 2, 2}, {9, 18, 27, 36})}}, f32({1, 1, 2, 2}, {10, 10, 10, 10})},
      {"gather_clamps_indices",
       "graph @t(%table: f32[3,2] input, %idx: i64[4] input) -> (f32[4,2]) {\n"
       "  %0 = gather %table, %idx : f32[4,2]\n  return %0\n}\n",
       {{"table", f32({3, 2}, {1, 2, 3, 4, 5, 6})}, {"idx", i64({4}, {2, -1, 7, 0})}},
       f32({4, 2}, {5, 6, 1, 2, 5, 6, 1, 2})},
      {"gather_i64_table_axis1",
       "graph @t(%table: i64[2,3] input, %idx: i32[2] input) -> (i64[2,2]) {\n"
       "  %0 = gather %table, %idx {axis = 1} : i64[2,2]\n  return %0\n}\n",
       {{"table", i64({2, 3}, {1, 2, kTwo53 + 1, 4, 5, 6})}, {"idx", i32({2}, {2, 0})}},
       i64({2, 2}, {kTwo53 + 1, 1, 6, 4})},
      {"scatter_add_drops_out_of_range",
       "graph @t(%idx: i32[4] input, %upd: f32[4,2] input) -> (f32[3,2]) {\n"
       "  %0 = scatter_add %idx, %upd : f32[3,2]\n  return %0\n}\n",
       {{"idx", i32({4}, {1, 1, 3, -1})}, {"upd", f32({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8})}},
       f32({3, 2}, {0, 0, 4, 6, 0, 0})},
      {"scatter_add_i64_axis1",
       "graph @t(%idx: i32[2] input, %upd: i64[1,2] input) -> (i64[1,2]) {\n"
       "  %0 = scatter_add %idx, %upd {axis = 1} : i64[1,2]\n  return %0\n}\n",
       {{"idx", i32({2}, {0, 0})}, {"upd", i64({1, 2}, {kTwo53, 1})}},
       i64({1, 2}, {kTwo53 + 1, 0})},
      {"rng_uniform",
       "graph @t(%seed: i64[] input) -> (f32[3]) {\n"
       "  %0 = rng_uniform %seed {offset = 5} : f32[3]\n  return %0\n}\n",
       {{"seed", i64({}, {42})}},
       f32({3}, {uniformAt(42, 5), uniformAt(42, 6), uniformAt(42, 7)})},
      {"fusion",
       "graph @t(%a: f32[2,2] input, %b: f32[2] input) -> (f32[2]) {\n"
       "  %0 = fusion %a, %b {kind = \"reduction\"} : f32[2] {\n"
       "    %0 = broadcast %arg1 {dims = [0]} : f32[2,2]\n"
       "    %1 = mul %arg0, %0 : f32[2,2]\n"
       "    %2 = reduce_sum %1 {axes = [1]} : f32[2]\n"
       "    yield %2\n  }\n  return %0\n}\n",
       {{"a", f32({2, 2}, {1, 2, 3, 4})}, {"b", f32({2}, {10, 100})}},
       f32({2}, {30, 700})},
  };
}

void PrintTo(const OpCase &c, std::ostream *os) { *os << c.name; }

class InterpreterOp : public ::testing::TestWithParam<OpCase> {};

TEST_P(InterpreterOp, ComputesHandCheckedValues) {
  const OpCase &c = GetParam();
  InterpreterResult r = run(c.kir, c.inputs);
  ASSERT_EQ(r.results.size(), 1u);
  expectTensor(r.results[0], c.expected, c.relTolerance);
}

INSTANTIATE_TEST_SUITE_P(Interpreter, InterpreterOp, ::testing::ValuesIn(opCases()),
                         [](const ::testing::TestParamInfo<OpCase> &info) {
                           return info.param.name;
                         });

TEST(InterpreterOpCoverage, EveryOpKindHasATableCase) {
  std::set<OpKind> covered;
  for (const OpCase &c : opCases()) {
    Module module = parse(c.kir);
    for (const auto &node : module.graphs.at(0)->nodes())
      covered.insert(node->kind());
  }
  std::string missing;
  for (OpKind kind : allOpKinds())
    if (!covered.count(kind))
      missing += " " + std::string(opName(kind));
  EXPECT_EQ(missing, "") << "ops without an interpreter test:" << missing;
}

// --- Integers, casts and rounding ------------------------------------------

TEST(InterpreterCast, FloatToIntTruncatesSaturatesAndMapsNaNToZero) {
  InterpreterResult r = run(unaryKir("cast {to = i32}", "f64[7]", "i32[7]"),
                            {{"x", reals(DType::F64, {7}, {3e9, -3e9, kNaN, kInf, -kInf, -0.99,
                                                           2147483647.9})}});
  expectTensor(r.results[0], i32({7}, {kI32Max, kI32Min, 0, kI32Max, kI32Min, 0, kI32Max}));
  r = run(unaryKir("cast {to = i64}", "f64[4]", "i64[4]"),
          {{"x", reals(DType::F64, {4}, {1e19, -1e19, kNaN, 9007199254740994.0})}});
  expectTensor(r.results[0], i64({4}, {kI64Max, kI64Min, 0, kTwo53 + 2}));
}

TEST(InterpreterCast, AnythingToBoolIsNonZero) {
  InterpreterResult r = run(unaryKir("cast {to = i1}", "f32[5]", "i1[5]"),
                            {{"x", f32({5}, {0, -0.0, 0.5, kNaN, -3})}});
  expectTensor(r.results[0], i1({5}, {0, 0, 1, 1, 1}));
  r = run(unaryKir("cast {to = i1}", "i64[3]", "i1[3]"),
          {{"x", i64({3}, {0, int64_t(1) << 40, -1})}});
  expectTensor(r.results[0], i1({3}, {0, 1, 1}));
  r = run(unaryKir("cast {to = f32}", "i1[2]", "f32[2]"), {{"x", i1({2}, {1, 0})}});
  expectTensor(r.results[0], f32({2}, {1, 0}));
}

TEST(InterpreterCast, IntegerNarrowingWrapsAndWideningIsExact) {
  InterpreterResult r = run(unaryKir("cast {to = i32}", "i64[4]", "i32[4]"),
                            {{"x", i64({4}, {(int64_t(1) << 32) + 5, -1, int64_t(1) << 31,
                                             kTwo53 + 1})}});
  expectTensor(r.results[0], i32({4}, {5, -1, kI32Min, 1}));
  r = run(unaryKir("cast {to = i64}", "i32[2]", "i64[2]"), {{"x", i32({2}, {-5, kI32Max})}});
  expectTensor(r.results[0], i64({2}, {-5, kI32Max}));
  r = run(unaryKir("cast {to = i64}", "i64[1]", "i64[1]"), {{"x", i64({1}, {kTwo53 + 1})}});
  expectTensor(r.results[0], i64({1}, {kTwo53 + 1}));
}

// A conversion through an intermediate type rounds twice and can land on the
// other side of a tie; each conversion below must round once.
TEST(InterpreterCast, IntegerToFloatRoundsOnce) {
  // 2^60 + 2^36 + 1 is just above the f32 midpoint 2^60 + 2^36; through double it is on it.
  int64_t big = (int64_t(1) << 60) + (int64_t(1) << 36) + 1;
  InterpreterResult r = run(unaryKir("cast {to = f32}", "i64[2]", "f32[2]"),
                            {{"x", i64({2}, {big, -big})}});
  double rounded = std::ldexp(1.0, 60) + std::ldexp(1.0, 37);
  expectTensor(r.results[0], f32({2}, {rounded, -rounded}));
  // 2^24 + 2^16 + 1 is just above a bf16 midpoint; through f32 it is on it.
  r = run(unaryKir("cast {to = bf16}", "i32[1]", "bf16[1]"),
          {{"x", i32({1}, {(1 << 24) + (1 << 16) + 1})}});
  expectTensor(r.results[0], reals(DType::BF16, {1}, {double((1 << 24) + (1 << 17))}));
  r = run(unaryKir("cast {to = f64}", "i64[1]", "f64[1]"), {{"x", i64({1}, {kTwo53 + 1})}});
  expectTensor(r.results[0], reals(DType::F64, {1}, {double(kTwo53)})); // ties to even
}

TEST(InterpreterCast, DoubleToHalfTypesRoundsOnce) {
  InterpreterResult r = run(unaryKir("cast {to = bf16}", "f64[2]", "bf16[2]"),
                            {{"x", reals(DType::F64, {2}, {1 + std::ldexp(1.0, -8) +
                                                               std::ldexp(1.0, -30),
                                                           1 + std::ldexp(1.0, -8)})}});
  expectTensor(r.results[0], reals(DType::BF16, {2}, {1.0078125, 1.0}));
  r = run(unaryKir("cast {to = f16}", "f64[3]", "f16[3]"),
          {{"x", reals(DType::F64, {3}, {1 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40),
                                         1 + std::ldexp(1.0, -11), 1e6})}});
  expectTensor(r.results[0], reals(DType::F16, {3}, {1 + std::ldexp(1.0, -10), 1.0, kInf}));
  r = run(unaryKir("cast {to = f32}", "f64[2]", "f32[2]"),
          {{"x", reals(DType::F64, {2}, {1e39, 0.1})}});
  expectTensor(r.results[0], f32({2}, {kInf, 0.1}));
}

TEST(InterpreterRounding, Bf16AndF16ResultsRoundToNearestEven) {
  InterpreterResult r = run(binaryKir("add", "bf16[2]"),
                            {{"a", reals(DType::BF16, {2}, {1, 1})},
                             {"b", reals(DType::BF16, {2}, {std::ldexp(1.0, -8),
                                                            3 * std::ldexp(1.0, -8)})}});
  // ulp(1) = 2^-7: 1 + 2^-8 ties down to 1, 1 + 3 * 2^-8 ties up to 1 + 2^-6.
  expectTensor(r.results[0], reals(DType::BF16, {2}, {1, 1.015625}));
  r = run(binaryKir("add", "f16[3]"), {{"a", reals(DType::F16, {3}, {2048, 2048, 65504})},
                                       {"b", reals(DType::F16, {3}, {1, 3, 32})}});
  // ulp(2048) = 2: 2049 ties to 2048, 2051 to 2052; 65536 overflows.
  expectTensor(r.results[0], reals(DType::F16, {3}, {2048, 2052, kInf}));
}

// --- Precision modes -------------------------------------------------------

TEST(InterpreterPrecision, NativeRoundsEachOpWhileF64KeepsDouble) {
  std::string kir = "graph @t(%a: f32[] input, %b: f32[] input) -> (f32[], f32[], i1[]) {\n"
                    "  %0 = add %a, %b : f32[]\n"
                    "  %1 = sub %0, %a : f32[]\n"
                    "  %2 = eq %1, %b : i1[]\n"
                    "  return %0, %1, %2\n}\n";
  TensorMap args = {{"a", f32({}, {1e8})}, {"b", f32({}, {1})}};
  InterpreterResult native = run(kir, args, Precision::Native);
  expectTensor(native.results[0], f32({}, {1e8})); // ulp(1e8) = 8 in f32
  expectTensor(native.results[1], f32({}, {0}));
  expectTensor(native.results[2], i1({}, {0}));
  InterpreterResult exact = run(kir, args, Precision::F64);
  expectTensor(exact.results[0], reals(DType::F64, {}, {100000001}));
  expectTensor(exact.results[1], reals(DType::F64, {}, {1}));
  expectTensor(exact.results[2], i1({}, {1})); // integer and i1 results keep their dtype
}

TEST(InterpreterPrecision, F64ReturnsHalfTypesAsF64) {
  InterpreterResult r = run(binaryKir("add", "bf16[1]"),
                            {{"a", reals(DType::BF16, {1}, {1})},
                             {"b", reals(DType::BF16, {1}, {std::ldexp(1.0, -8)})}},
                            Precision::F64);
  expectTensor(r.results[0], reals(DType::F64, {1}, {1 + std::ldexp(1.0, -8)}));
}

// --- rng_uniform -----------------------------------------------------------

TEST(InterpreterRng, MatchesUniformAtRowMajorFromOffset) {
  std::string kir = "graph @t(%seed: i64[] input) -> (f32[40,25]) {\n"
                    "  %0 = rng_uniform %seed {offset = 1000} : f32[40,25]\n  return %0\n}\n";
  int64_t seed = -1234567890123; // any i64: the key is its bit pattern
  InterpreterResult r = run(kir, {{"seed", i64({}, {seed})}});
  const HostTensor &u = r.results[0];
  double sum = 0;
  for (int64_t i = 0; i < u.numElements(); ++i) {
    ASSERT_EQ(u.getDouble(i), uniformAt(uint64_t(seed), uint64_t(1000 + i))) << i;
    ASSERT_GE(u.getDouble(i), 0.0);
    ASSERT_LT(u.getDouble(i), 1.0);
    sum += u.getDouble(i);
  }
  EXPECT_NEAR(sum / double(u.numElements()), 0.5, 0.05);
}

TEST(InterpreterRng, IsDeterministicAndDependsOnSeedAndOffset) {
  auto draw = [](int64_t seed, int offset) {
    std::string kir = "graph @t(%seed: i64[] input) -> (f64[8]) {\n"
                      "  %0 = rng_uniform %seed {offset = " + std::to_string(offset) +
                      "} : f64[8]\n  return %0\n}\n";
    return run(kir, {{"seed", i64({}, {seed})}}).results[0].toDoubles();
  };
  EXPECT_EQ(draw(7, 0), draw(7, 0));
  EXPECT_NE(draw(7, 0), draw(8, 0));
  std::vector<double> base = draw(7, 0), shifted = draw(7, 3);
  EXPECT_EQ(std::vector<double>(base.begin() + 3, base.end()),
            std::vector<double>(shifted.begin(), shifted.end() - 3));
}

TEST(InterpreterRng, RoundsToTheResultType) {
  InterpreterResult r = run("graph @t(%seed: i64[] input) -> (bf16[16]) {\n"
                            "  %0 = rng_uniform %seed : bf16[16]\n  return %0\n}\n",
                            {{"seed", i64({}, {3})}});
  for (int64_t i = 0; i < 16; ++i)
    EXPECT_EQ(r.results[0].getDouble(i),
              double(bfloat16ToFloat(floatToBFloat16(float(uniformAt(3, uint64_t(i)))))));
}

// --- Arguments, results and updates ----------------------------------------

const char *const kMlp = "graph @mlp(%x: f32[4,4] input, %w1: f32[4,4] param) -> (f32[4,4]) {\n"
                         "  %0 = matmul %x, %w1 : f32[4,4]\n  return %0\n}\n";

std::string errorOf(const std::string &kir, const TensorMap &args) {
  try {
    run(kir, args);
  } catch (const Error &e) {
    return e.what();
  }
  return "no error";
}

TEST(InterpreterArguments, MissingArgumentIsAnError) {
  std::string message = errorOf(kMlp, {{"x", f32({4, 4}, std::vector<double>(16, 1))}});
  EXPECT_NE(message.find("error: no value for argument 'w1' of @mlp"), std::string::npos)
      << message;
}

TEST(InterpreterArguments, MismatchedShapeOrDTypeIsAnError) {
  HostTensor w(DType::F32, {4, 4});
  std::string message = errorOf(kMlp, {{"x", f32({3, 4}, std::vector<double>(12, 1))}, {"w1", w}});
  EXPECT_NE(message.find("error: feed 'x' has type f32[3,4] but @mlp expects f32[4,4]"),
            std::string::npos)
      << message;
  message = errorOf(kMlp, {{"x", HostTensor(DType::F64, {4, 4})}, {"w1", w}});
  EXPECT_NE(message.find("feed 'x' has type f64[4,4] but @mlp expects f32[4,4]"),
            std::string::npos)
      << message;
}

TEST(InterpreterArguments, ExtraEntriesAreIgnored) {
  HostTensor eye = f32({4, 4}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1});
  HostTensor x = f32({4, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
  InterpreterResult r = run(kMlp, {{"x", x}, {"w1", eye}, {"unused", HostTensor(DType::I1, {})}});
  expectTensor(r.results[0], x);
}

TEST(InterpreterUpdates, ReturnsNewValuesByArgumentNameWithoutTouchingArguments) {
  std::string kir = "graph @step(%x: f32[2] input, %w: f32[2] param, %n: i64[] state)"
                    " -> (f32[2], f32[2]) {\n"
                    "  %0 = add %w, %x : f32[2]\n"
                    "  %1 = constant {value = 1} : i64[]\n"
                    "  %2 = add %n, %1 : i64[]\n"
                    "  update %w, %0\n"
                    "  update %n, %2\n"
                    "  return %0, %x\n}\n";
  TensorMap args = {{"x", f32({2}, {1, 2})}, {"w", f32({2}, {10, 20})},
                    {"n", i64({}, {kTwo53 + 1})}};
  InterpreterResult r = run(kir, args);
  ASSERT_EQ(r.results.size(), 2u);
  expectTensor(r.results[0], f32({2}, {11, 22}));
  expectTensor(r.results[1], f32({2}, {1, 2})); // an argument returned as is
  ASSERT_EQ(r.updated.size(), 2u);
  expectTensor(r.updated.at("w"), f32({2}, {11, 22}));
  expectTensor(r.updated.at("n"), i64({}, {kTwo53 + 2}));
  expectTensor(args.at("w"), f32({2}, {10, 20}));

  InterpreterResult exact = run(kir, args, Precision::F64);
  expectTensor(exact.updated.at("w"), reals(DType::F64, {2}, {11, 22}));
  expectTensor(exact.updated.at("n"), i64({}, {kTwo53 + 2}));
}

TEST(InterpreterGraphs, ValuesUsedTwiceAndChainsOfOps) {
  // (x * x + x) summed, with x used by three nodes and %0 by two.
  std::string kir = "graph @t(%x: f64[3] input) -> (f64[], f64[3]) {\n"
                    "  %0 = mul %x, %x : f64[3]\n"
                    "  %1 = add %0, %x : f64[3]\n"
                    "  %2 = reduce_sum %1 {axes = [0]} : f64[]\n"
                    "  %3 = sub %1, %0 : f64[3]\n"
                    "  return %2, %3\n}\n";
  InterpreterResult r = run(kir, {{"x", reals(DType::F64, {3}, {1, 2, 3})}});
  expectTensor(r.results[0], reals(DType::F64, {}, {2 + 6 + 12}));
  expectTensor(r.results[1], reals(DType::F64, {3}, {1, 2, 3}));
}

// --- Speed -----------------------------------------------------------------

// The gpt example's forward pass is ~3.5 GFLOP, mostly matmul; this measures
// the interpreter's matmul at that scale and spot-checks it.
TEST(InterpreterSpeed, LargeMatmul) {
  const int64_t m = 1024, k = 256, n = 1024;
  std::vector<double> a(size_t(m * k)), b(size_t(k * n));
  for (size_t i = 0; i < a.size(); ++i)
    a[i] = uniformAt(1, i) - 0.5;
  for (size_t i = 0; i < b.size(); ++i)
    b[i] = uniformAt(2, i) - 0.5;
  std::string kir = "graph @t(%a: f32[1024,256] input, %b: f32[256,1024] input)"
                    " -> (f32[1024,1024]) {\n"
                    "  %0 = matmul %a, %b : f32[1024,1024]\n  return %0\n}\n";
  Module module = parse(kir);
  TensorMap args = {{"a", f32({m, k}, a)}, {"b", f32({k, n}, b)}};
  auto start = std::chrono::steady_clock::now();
  InterpreterResult r = interpret(*module.graphs[0], args);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ timing   ] matmul f32[1024,256] x f32[256,1024], Native: " << seconds << " s ("
            << 2.0 * double(m * k * n) / seconds * 1e-9 << " GFLOP/s)\n";
  for (int64_t i : {int64_t(0), int64_t(517), m - 1})
    for (int64_t j : {int64_t(0), int64_t(300), n - 1}) {
      double dot = 0;
      for (int64_t kk = 0; kk < k; ++kk)
        dot += double(float(a[size_t(i * k + kk)])) * double(float(b[size_t(kk * n + j)]));
      // One f32 rounding of the double sum (whose order may differ in the last bits).
      EXPECT_NEAR(r.results[0].getDouble(i * n + j), dot, std::ldexp(std::fabs(dot), -23) + 1e-12)
          << i << "," << j;
    }
}

} // namespace
} // namespace kiln
