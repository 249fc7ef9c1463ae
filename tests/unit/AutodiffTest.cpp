// The autodiff pass against central finite differences, in f64.
//
// Every op with the Differentiable trait has at least one case below: a small
// graph whose loss is sum(op(...) * cot) with a random `cot`, on random shapes
// (broadcasts, transposes, strides, padding, groups, repeated indices) and
// random nonzero values. Each case is promoted to f64, differentiated by the
// `autodiff` pass, run by the interpreter, and every param's gradient is
// compared, element by element, with (L(x+h) - L(x-h)) / 2h of the forward
// graph, h = 1e-6 * max(1, |x|); and a second-order (Hessian-vector) check.
// Ties and what the pass builds: AutodiffRulesTest.cpp.
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/PassManager.h"
#include "tests/unit/TestHelpers.h"
#include "passes/autodiff/Autodiff.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <set>

namespace kiln {
namespace {


using Rng = std::mt19937_64;
using Dims = std::vector<int64_t>;

/// Gradient and finite difference agree when |grad - fd| <= kRelTol *
/// max(|grad|, |fd|, kFloor): relative 1e-6, and elements smaller than
/// kFloor are held to 1e-8 absolutely. There the finite difference's own
/// rounding, about ulp(y) / h per output it moves, reaches 2e-9 (convolution
/// outputs of size ~5; seen over 300 draws of every case).
constexpr double kRelTol = 1e-6;
constexpr double kFloor = 1e-2;
/// Each case runs on this many draws of shapes and values.
constexpr int kDraws = 3;

int64_t randInt(Rng &rng, int64_t lo, int64_t hi) { // inclusive
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}
double randReal(Rng &rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}
bool coin(Rng &rng) { return randInt(rng, 0, 1) == 1; }

Dims randomDims(Rng &rng, size_t rank, int64_t lo = 1, int64_t hi = 4) {
  Dims d(rank);
  for (auto &x : d)
    x = randInt(rng, lo, hi);
  return d;
}

std::string list(const Dims &v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}
std::string T(const Dims &d, const std::string &dtype = "f32") {
  std::string s = dtype + "[";
  for (size_t i = 0; i < d.size(); ++i)
    s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}
Dims iota(size_t n) {
  Dims v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = int64_t(i);
  return v;
}

/// How a float argument is filled; all values are nonzero.
enum class Fill {
  Signed,     // +-[0.5, 1.5]
  Positive,   // [0.5, 2]: log, sqrt, rsqrt, pow's base
  Distinct,   // all elements >= 0.02 apart: reduce_max, max_pool2d never tie
  Lattice,    // +-k/10, k in 5..15
  OffLattice, // Lattice + 0.05: >= 0.05 from any Lattice value (max, min)
};

HostTensor fillTensor(Fill fill, const Shape &shape, Rng &rng) {
  HostTensor t(DType::F64, shape);
  int64_t n = t.numElements();
  std::vector<double> distinct;
  if (fill == Fill::Distinct) {
    for (int64_t k = 0; k < n; ++k)
      distinct.push_back((coin(rng) ? 1 : -1) * (0.5 + 0.02 * double(k)));
    std::shuffle(distinct.begin(), distinct.end(), rng);
  }
  for (int64_t k = 0; k < n; ++k) {
    double v = 0;
    switch (fill) {
    case Fill::Signed: v = (coin(rng) ? 1 : -1) * randReal(rng, 0.5, 1.5); break;
    case Fill::Positive: v = randReal(rng, 0.5, 2.0); break;
    case Fill::Distinct: v = distinct[size_t(k)]; break;
    case Fill::Lattice:
    case Fill::OffLattice:
      v = (coin(rng) ? 1 : -1) * double(randInt(rng, 5, 15)) / 10 + (fill == Fill::OffLattice ? 0.05 : 0.0);
      break;
    }
    t.setDouble(k, v);
  }
  return t;
}

HostTensor intTensor(DType dtype, const Dims &shape, const Dims &values) {
  HostTensor t(dtype, Shape(shape));
  EXPECT_EQ(int64_t(values.size()), t.numElements());
  for (size_t i = 0; i < values.size(); ++i)
    t.setInt(int64_t(i), values[i]);
  return t;
}

/// The op under test: `args` and `body` define `%y` of type `yType`; the
/// harness adds `%cot` and the loss sum(%y * %cot).
struct OpGraph {
  std::string args;
  std::string body;
  std::string yType;
  std::map<std::string, Fill> fills; // float arguments not filled Signed
  TensorMap fixed;                   // integer arguments (indices); i1 ones are random
};

struct GradientCase {
  std::string name;
  std::function<OpGraph(Rng &)> build;
};
void PrintTo(const GradientCase &c, std::ostream *os) { *os << c.name; }

std::string lossGraphText(const std::string &name, const OpGraph &op) {
  std::string dtype = op.yType.substr(0, op.yType.find('['));
  size_t rank = op.yType.find("[]") != std::string::npos
                    ? 0
                    : size_t(std::count(op.yType.begin(), op.yType.end(), ',')) + 1;
  return "graph @" + name + "(" + op.args + ", %cot: " + op.yType + " input) -> (loss: " + dtype +
         "[], y: " + op.yType + ") {\n" + op.body + "  %weighted = mul %y, %cot : " + op.yType +
         "\n  %loss = reduce_sum %weighted {axes = " + list(iota(rank)) + "} : " + dtype +
         "[]\n  return %loss, %y\n}\n";
}

TensorMap randomArguments(const Graph &graph, const OpGraph &op, Rng &rng) {
  TensorMap args;
  for (const auto &arg : graph.arguments()) {
    const TensorType &t = arg->value.type;
    if (op.fixed.count(arg->name)) {
      args[arg->name] = op.fixed.at(arg->name);
    } else if (isFloat(t.dtype)) {
      auto fill = op.fills.find(arg->name);
      args[arg->name] = fillTensor(fill == op.fills.end() ? Fill::Signed : fill->second, t.shape, rng);
    } else if (t.dtype == DType::I1) {
      HostTensor c(DType::I1, t.shape);
      for (int64_t k = 0; k < c.numElements(); ++k)
        c.setInt(k, randInt(rng, 0, 1));
      args[arg->name] = c;
    } else {
      ADD_FAILURE() << "no value for integer argument %" << arg->name;
    }
  }
  return args;
}

/// Result `index` of `graph` (f64) as doubles.
std::vector<double> resultOf(const Graph &graph, const TensorMap &args, size_t index) {
  return interpret(graph, args, Precision::F64).results[index].toDoubles();
}

/// (L(x+h) - L(x-h)) / 2h for L = sum(weights * y(x)), summed as
/// sum(weights * (y(x+h) - y(x-h))) / 2h: the elements of y that do not
/// depend on x cancel exactly, so rounding of the whole sum does not drown
/// the difference.
double centralDifference(const std::function<std::vector<double>()> &y, HostTensor &x, int64_t k,
                         const std::vector<double> &weights) {
  double x0 = x.getDouble(k), h = 1e-6 * std::max(1.0, std::fabs(x0));
  double xPlus = x0 + h, xMinus = x0 - h;
  x.setDouble(k, xPlus);
  std::vector<double> yPlus = y();
  x.setDouble(k, xMinus);
  std::vector<double> yMinus = y();
  x.setDouble(k, x0);
  double sum = 0;
  for (size_t j = 0; j < yPlus.size(); ++j)
    sum += (weights.empty() ? 1.0 : weights[j]) * (yPlus[j] - yMinus[j]);
  return sum / (xPlus - xMinus);
}

void expectClose(double a, double fd, const std::string &what) {
  EXPECT_LE(std::fabs(a - fd), kRelTol * std::max({std::fabs(a), std::fabs(fd), kFloor}))
      << what << ": autodiff " << a << ", finite difference " << fd;
}

/// Compares every param's gradient from the autodiff pass with central
/// finite differences of the forward graph.
void checkGradients(const std::string &name, const OpGraph &op, Rng &rng) {
  std::string text = lossGraphText(name, op);
  SCOPED_TRACE(text);
  Module module = parseModule(text, name + ".kir");
  std::unique_ptr<Graph> forward = promoteFloatsToF64(*module.graphs[0]);
  std::unique_ptr<Graph> differentiated = promoteFloatsToF64(*module.graphs[0]);
  EXPECT_TRUE(runPasses(*differentiated, parsePassPipeline("autodiff"), verifyEachOptions()));
  TensorMap args = randomArguments(*forward, op, rng);
  InterpreterResult r = interpret(*differentiated, args, Precision::F64);
  int params = 0;
  double largestFd = 0;
  for (const auto &arg : forward->arguments()) {
    if (arg->role != ArgRole::Param)
      continue;
    ++params;
    size_t index = 1;
    while (index < differentiated->results().size() &&
           differentiated->resultName(index) != "grad." + arg->name)
      ++index;
    ASSERT_LT(index, differentiated->results().size()) << "no result grad." << arg->name;
    const HostTensor &grad = r.results[index];
    ASSERT_EQ(grad.shape(), arg->value.type.shape) << arg->name;
    HostTensor &x = args[arg->name];
    std::vector<double> cot = args.at("cot").toDoubles();
    for (int64_t k = 0; k < x.numElements(); ++k) {
      double fd = centralDifference([&] { return resultOf(*forward, args, 1); }, x, k, cot);
      largestFd = std::max(largestFd, std::fabs(fd));
      expectClose(grad.getDouble(k), fd, "grad." + arg->name + "[" + std::to_string(k) + "]");
    }
  }
  EXPECT_GT(params, 0);
  // The case must exercise a gradient, not compare zeros with zeros (one
  // param may lose every max, say).
  EXPECT_GT(largestFd, 1e-2) << "every gradient is (near) zero";
}

// ---------------------------------------------------------------------------
// The cases.

/// `%name: f32[dims] param`.
std::string param(const std::string &name, const Dims &dims) {
  return "%" + name + ": " + T(dims) + " param";
}
/// One statement of a body: `  %name = opText : type`.
std::string stmt(const std::string &name, const std::string &opText, const std::string &type) {
  return "  %" + name + " = " + opText + " : " + type + "\n";
}
/// A graph whose body is `before` and then `%y = opText : yType`.
OpGraph oneOp(std::string args, const std::string &opText, const std::string &yType,
              std::map<std::string, Fill> fills = {}, const std::string &before = "") {
  OpGraph g;
  g.args = std::move(args);
  g.body = before + stmt("y", opText, yType);
  g.yType = yType;
  g.fills = std::move(fills);
  return g;
}

OpGraph unary(Rng &rng, const std::string &op, Fill fill = Fill::Signed) {
  Dims x = randomDims(rng, size_t(randInt(rng, 0, 3)));
  return oneOp(param("x", x), op + " %x", T(x), {{"x", fill}});
}

/// A random broadcast to `full`: each dim of `full` is kept, kept as a
/// stretched size 1, or added; at least one is not kept.
struct RandomBroadcast {
  Dims operand, dims;
};
RandomBroadcast randomBroadcast(Rng &rng, const Dims &full) {
  RandomBroadcast b;
  std::vector<int> choice(full.size());
  for (auto &c : choice)
    c = int(randInt(rng, 0, 2));
  if (!full.empty() && std::all_of(choice.begin(), choice.end(), [](int c) { return c == 0; }))
    choice[size_t(randInt(rng, 0, int64_t(full.size()) - 1))] = 2;
  for (size_t d = 0; d < full.size(); ++d) {
    if (choice[d] == 2)
      continue;
    b.operand.push_back(choice[d] == 0 ? full[d] : 1);
    b.dims.push_back(int64_t(d));
  }
  return b;
}

/// `%y = op %a, broadcast(%b)` (or the operands swapped) on a random shape.
OpGraph binary(Rng &rng, const std::string &op, Fill fillA, Fill fillB) {
  Dims full = randomDims(rng, size_t(randInt(rng, 1, 3)), 2, 4);
  RandomBroadcast b = randomBroadcast(rng, full);
  std::string bb = stmt("bb", "broadcast %b {dims = " + list(b.dims) + "}", T(full));
  std::string operands = coin(rng) ? " %a, %bb" : " %bb, %a";
  return oneOp(param("a", full) + ", " + param("b", b.operand), op + operands, T(full),
               {{"a", fillA}, {"b", fillB}}, bb);
}

OpGraph matmul(Rng &rng, bool ta, bool tb, size_t batchRank) {
  Dims batch = randomDims(rng, batchRank, 1, 3);
  int64_t m = randInt(rng, 1, 4), k = randInt(rng, 1, 4), n = randInt(rng, 1, 4);
  Dims a = batch, b = batch, y = batch;
  Dims aTail = ta ? Dims{k, m} : Dims{m, k}, bTail = tb ? Dims{n, k} : Dims{k, n};
  a.insert(a.end(), aTail.begin(), aTail.end());
  b.insert(b.end(), bTail.begin(), bTail.end());
  y.insert(y.end(), {m, n});
  std::string flags;
  if (ta || tb)
    flags = std::string(" {") + (ta ? "transpose_a = true" : "") + (ta && tb ? ", " : "") +
            (tb ? "transpose_b = true" : "") + "}";
  return oneOp(param("a", a) + ", " + param("b", b), "matmul %a, %b" + flags, T(y));
}

/// Shapes and attributes of one random convolution.
struct Conv {
  Dims x, w, y;
  std::string attrs;
};
Conv randomConv(Rng &rng, bool plain) {
  int64_t groups = plain ? 1 : randInt(rng, 1, 2);
  int64_t n = randInt(rng, 1, 2), c = groups * randInt(rng, 1, 2), o = groups * randInt(rng, 1, 2);
  Conv conv;
  conv.w = {o, c / groups, randInt(rng, 1, 3), randInt(rng, 1, 3)};
  Dims stride(2, 1), padding(2, 0), dilation(2, 1), in(2), out(2);
  for (size_t i = 0; i < 2; ++i) {
    if (!plain) {
      stride[i] = randInt(rng, 1, 2);
      padding[i] = randInt(rng, 0, 2);
      dilation[i] = randInt(rng, 1, 2);
    }
    int64_t extent = dilation[i] * (conv.w[2 + i] - 1) + 1;
    // The input is at least as large as the dilated filter, and the padding
    // smaller, so that every output reads at least one input element.
    padding[i] = std::min(padding[i], extent - 1);
    in[i] = extent + randInt(rng, 0, 3);
    out[i] = (in[i] + 2 * padding[i] - extent) / stride[i] + 1;
  }
  conv.x = {n, c, in[0], in[1]};
  conv.y = {n, o, out[0], out[1]};
  if (!plain)
    conv.attrs = " {stride = " + list(stride) + ", padding = " + list(padding) +
                 ", dilation = " + list(dilation) + ", groups = " + std::to_string(groups) + "}";
  return conv;
}

struct Pool {
  Dims x, y;
  std::string attrs;
};
Pool randomPool(Rng &rng) {
  Dims window = randomDims(rng, 2, 1, 3), stride = randomDims(rng, 2, 1, 2), padding(2), in(2), out(2);
  for (size_t i = 0; i < 2; ++i) {
    padding[i] = randInt(rng, 0, window[i] / 2);
    in[i] = std::max<int64_t>(1, window[i] - 2 * padding[i]) + randInt(rng, 0, 3);
    out[i] = (in[i] + 2 * padding[i] - window[i]) / stride[i] + 1;
  }
  Pool p;
  p.x = {randInt(rng, 1, 2), randInt(rng, 1, 2), in[0], in[1]};
  p.y = {p.x[0], p.x[1], out[0], out[1]};
  p.attrs =
      " {window = " + list(window) + ", stride = " + list(stride) + ", padding = " + list(padding) + "}";
  return p;
}

/// Random indices in [0, n) with the first two equal (a repeat); with
/// `outOfRange`, the last is -1 or n.
Dims randomIndices(Rng &rng, size_t count, int64_t n, bool outOfRange) {
  Dims idx(count);
  for (auto &i : idx)
    i = randInt(rng, 0, n - 1);
  idx[1] = idx[0];
  if (outOfRange)
    idx[count - 1] = coin(rng) ? -1 : n;
  return idx;
}

OpGraph gather(Rng &rng, bool outOfRange) {
  Dims table = randomDims(rng, 3, 2, 4), idx = randomDims(rng, size_t(randInt(rng, 1, 2)), 2, 3);
  int64_t axis = randInt(rng, 0, 2);
  Dims y(table.begin(), table.begin() + axis);
  y.insert(y.end(), idx.begin(), idx.end());
  y.insert(y.end(), table.begin() + axis + 1, table.end());
  OpGraph op = oneOp(param("table", table) + ", %idx: " + T(idx, "i32") + " input",
                     "gather %table, %idx {axis = " + std::to_string(axis) + "}", T(y));
  size_t count = size_t(Shape(idx).numElements());
  op.fixed["idx"] = intTensor(DType::I32, idx, randomIndices(rng, count, table[size_t(axis)], outOfRange));
  return op;
}

OpGraph scatterAdd(Rng &rng) {
  Dims result = randomDims(rng, size_t(randInt(rng, 2, 3)), 2, 4), idx = {randInt(rng, 3, 5)};
  int64_t axis = randInt(rng, 0, int64_t(result.size()) - 1);
  Dims upd(result.begin(), result.begin() + axis);
  upd.push_back(idx[0]);
  upd.insert(upd.end(), result.begin() + axis + 1, result.end());
  OpGraph op = oneOp("%idx: " + T(idx, "i64") + " input, " + param("upd", upd),
                     "scatter_add %idx, %upd {axis = " + std::to_string(axis) + "}", T(result));
  op.fixed["idx"] =
      intTensor(DType::I64, idx, randomIndices(rng, size_t(idx[0]), result[size_t(axis)], true));
  return op;
}

/// Over two or more axes, listed in random order.
OpGraph reduction(Rng &rng, const std::string &op, Fill fill) {
  Dims x = randomDims(rng, size_t(randInt(rng, 2, 4)), 1, 3);
  Dims axes = iota(x.size()), y;
  std::shuffle(axes.begin(), axes.end(), rng);
  axes.resize(size_t(randInt(rng, 2, int64_t(x.size()))));
  for (size_t d = 0; d < x.size(); ++d)
    if (std::find(axes.begin(), axes.end(), int64_t(d)) == axes.end())
      y.push_back(x[d]);
  return oneOp(param("x", x), op + " %x {axes = " + list(axes) + "}", T(y), {{"x", fill}});
}

/// Strides of 2 or 3 in two or three dims.
OpGraph slice(Rng &rng) {
  Dims x = randomDims(rng, 3, 3, 7), start(3), limit(3), stride(3), y(3);
  size_t unitStride = size_t(randInt(rng, 0, 3)); // 3: every dim strided
  for (size_t d = 0; d < 3; ++d) {
    stride[d] = d == unitStride ? 1 : randInt(rng, 2, 3);
    start[d] = randInt(rng, 0, x[d] - 2);
    limit[d] = randInt(rng, start[d] + 1, x[d]);
    y[d] = (limit[d] - start[d] + stride[d] - 1) / stride[d];
  }
  return oneOp(param("x", x),
               "slice %x {start = " + list(start) + ", limit = " + list(limit) +
                   ", stride = " + list(stride) + "}",
               T(y));
}

OpGraph pad(Rng &rng) {
  Dims x = randomDims(rng, 3, 1, 3), low = randomDims(rng, 3, 0, 2), high = randomDims(rng, 3, 0, 2), y(3);
  for (size_t d = 0; d < 3; ++d)
    y[d] = low[d] + x[d] + high[d];
  return oneOp(param("x", x), "pad %x {low = " + list(low) + ", high = " + list(high) + ", value = 0.5}",
               T(y));
}

OpGraph concat3(Rng &rng) {
  Dims base = randomDims(rng, 3, 1, 3);
  size_t axis = size_t(randInt(rng, 0, 2));
  std::string args;
  Dims y = base;
  y[axis] = 0;
  for (const char *name : {"a", "b", "c"}) {
    Dims d = base;
    d[axis] = randInt(rng, 1, 3);
    y[axis] += d[axis];
    args += (args.empty() ? "" : ", ") + param(name, d);
  }
  return oneOp(args, "concat %a, %b, %c {axis = " + std::to_string(axis) + "}", T(y));
}

OpGraph transpose(Rng &rng) {
  Dims x = randomDims(rng, size_t(randInt(rng, 2, 4)), 1, 4), perm = iota(x.size()), y;
  while (perm == iota(x.size()))
    std::shuffle(perm.begin(), perm.end(), rng);
  for (int64_t p : perm)
    y.push_back(x[size_t(p)]);
  return oneOp(param("x", x), "transpose %x {perm = " + list(perm) + "}", T(y));
}

OpGraph select(Rng &rng) {
  Dims full = randomDims(rng, size_t(randInt(rng, 1, 3)), 2, 4);
  RandomBroadcast b = randomBroadcast(rng, full);
  OpGraph op = oneOp("%c: " + T(full, "i1") + " input, " + param("a", full) + ", " + param("b", b.operand),
                     "select %c, %a, %bb", T(full), {},
                     stmt("bb", "broadcast %b {dims = " + list(b.dims) + "}", T(full)));
  Dims c(size_t(Shape(full).numElements()));
  for (auto &v : c)
    v = randInt(rng, 0, 1);
  c[0] = 1, c[1] = 0; // both operands get some gradient
  op.fixed["c"] = intTensor(DType::I1, full, c);
  return op;
}

std::vector<GradientCase> gradientCases() {
  std::vector<GradientCase> cases;
  auto add = [&](std::string name, std::function<OpGraph(Rng &)> build) {
    cases.push_back({std::move(name), std::move(build)});
  };
  for (const char *op : {"neg", "abs", "exp", "tanh", "logistic", "erf", "sin", "cos"})
    add(op, [op](Rng &rng) { return unary(rng, op); });
  for (const char *op : {"log", "sqrt", "rsqrt"})
    add(op, [op](Rng &rng) { return unary(rng, op, Fill::Positive); });
  add("cast_f32_to_f64", [](Rng &rng) {
    Dims x = randomDims(rng, 2);
    return oneOp(param("x", x), "cast %x {to = f64}", T(x, "f64"));
  });
  add("add", [](Rng &rng) { return binary(rng, "add", Fill::Signed, Fill::Signed); });
  add("sub", [](Rng &rng) { return binary(rng, "sub", Fill::Signed, Fill::Signed); });
  add("mul", [](Rng &rng) { return binary(rng, "mul", Fill::Signed, Fill::Signed); });
  add("div", [](Rng &rng) { return binary(rng, "div", Fill::Signed, Fill::Signed); });
  add("max", [](Rng &rng) { return binary(rng, "max", Fill::Lattice, Fill::OffLattice); });
  add("min", [](Rng &rng) { return binary(rng, "min", Fill::Lattice, Fill::OffLattice); });
  add("pow", [](Rng &rng) { return binary(rng, "pow", Fill::Positive, Fill::Positive); });
  add("select", select);
  add("broadcast", [](Rng &rng) {
    Dims full = randomDims(rng, 3, 2, 4);
    RandomBroadcast b = randomBroadcast(rng, full);
    return oneOp(param("x", b.operand), "broadcast %x {dims = " + list(b.dims) + "}", T(full));
  });
  add("reshape", [](Rng &rng) {
    Dims x = randomDims(rng, 3);
    return oneOp(param("x", x), "reshape %x", T({x[2], x[0] * x[1]}));
  });
  add("transpose", transpose);
  add("slice_strided", slice);
  add("pad", pad);
  add("concat3", concat3);
  add("reduce_sum", [](Rng &rng) { return reduction(rng, "reduce_sum", Fill::Signed); });
  add("reduce_max", [](Rng &rng) { return reduction(rng, "reduce_max", Fill::Distinct); });
  for (size_t batch : {0, 1, 2})
    for (int flags = 0; flags < 4; ++flags) {
      bool ta = flags & 1, tb = flags & 2;
      std::string name = "matmul_" + (batch ? "batch" + std::to_string(batch) + "_" : std::string());
      add(name + (ta ? "t" : "n") + (tb ? "t" : "n"), [=](Rng &rng) { return matmul(rng, ta, tb, batch); });
    }
  for (bool plain : {true, false}) {
    std::string suffix = plain ? "" : "_strided_padded_dilated_grouped";
    add("conv2d" + suffix, [plain](Rng &rng) {
      Conv c = randomConv(rng, plain);
      return oneOp(param("x", c.x) + ", " + param("w", c.w), "conv2d %x, %w" + c.attrs, T(c.y));
    });
    add("conv2d_grad_input" + suffix, [plain](Rng &rng) {
      Conv c = randomConv(rng, plain);
      return oneOp(param("dy", c.y) + ", " + param("w", c.w), "conv2d_grad_input %dy, %w" + c.attrs, T(c.x));
    });
    add("conv2d_grad_filter" + suffix, [plain](Rng &rng) {
      Conv c = randomConv(rng, plain);
      return oneOp(param("x", c.x) + ", " + param("dy", c.y), "conv2d_grad_filter %x, %dy" + c.attrs, T(c.w));
    });
  }
  add("max_pool2d", [](Rng &rng) {
    Pool p = randomPool(rng);
    return oneOp(param("x", p.x), "max_pool2d %x" + p.attrs, T(p.y), {{"x", Fill::Distinct}});
  });
  add("avg_pool2d", [](Rng &rng) {
    Pool p = randomPool(rng);
    return oneOp(param("x", p.x), "avg_pool2d %x" + p.attrs, T(p.y));
  });
  add("avg_pool2d_grad", [](Rng &rng) {
    Pool p = randomPool(rng);
    return oneOp(param("dy", p.y), "avg_pool2d_grad %dy" + p.attrs, T(p.x));
  });
  add("gather_repeated", [](Rng &rng) { return gather(rng, false); });
  add("gather_clamped", [](Rng &rng) { return gather(rng, true); });
  add("scatter_add_repeated_dropped", scatterAdd);
  // Compositions: a value used several times, a small network.
  add("value_used_thrice", [](Rng &rng) {
    std::string t = T(randomDims(rng, 2, 2, 4));
    return oneOp("%w: " + t + " param", "mul %q, %q", t, {},
                 stmt("e", "exp %w", t) + stmt("p", "mul %e, %w", t) + stmt("s", "sin %w", t) +
                     stmt("q", "add %p, %s", t));
  });
  add("mlp", [](Rng &rng) {
    int64_t n = randInt(rng, 2, 4), i = randInt(rng, 2, 4), h = randInt(rng, 2, 4), o = randInt(rng, 1, 3);
    std::string nh = T({n, h});
    return oneOp("%x: " + T({n, i}) + " input, " + param("w1", {i, h}) + ", " + param("b1", {h}) + ", " +
                     param("w2", {o, h}),
                 "matmul %t, %w2 {transpose_b = true}", T({n, o}), {},
                 stmt("z", "matmul %x, %w1", nh) + stmt("bb", "broadcast %b1 {dims = [1]}", nh) +
                     stmt("a", "add %z, %bb", nh) + stmt("t", "tanh %a", nh));
  });
  return cases;
}

class AutodiffGradient : public testing::TestWithParam<GradientCase> {};

TEST_P(AutodiffGradient, MatchesFiniteDifferences) {
  const GradientCase &c = GetParam();
  for (int draw = 0; draw < kDraws; ++draw) {
    Rng rng(std::hash<std::string>()(c.name) + uint64_t(draw));
    OpGraph op = c.build(rng);
    checkGradients(c.name, op, rng);
    if (HasFatalFailure() || HasNonfatalFailure())
      return; // one failing draw says enough
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, AutodiffGradient, testing::ValuesIn(gradientCases()),
                         [](const testing::TestParamInfo<GradientCase> &info) { return info.param.name; });

/// The op kinds of a case's nodes that depend on a param (so are differentiated).
std::set<OpKind> differentiatedKinds(const Graph &graph) {
  std::set<const Value *> active;
  std::set<OpKind> kinds;
  for (const auto &arg : graph.arguments())
    if (arg->role == ArgRole::Param)
      active.insert(&arg->value);
  // The last two nodes are the harness's `mul` by %cot and `reduce_sum`.
  for (size_t i = 0; i + 2 < graph.nodes().size(); ++i) {
    const Node &node = *graph.nodes()[i];
    for (const Value *v : node.operands())
      if (active.count(v)) {
        active.insert(node.result());
        kinds.insert(node.kind());
        break;
      }
  }
  return kinds;
}

TEST(AutodiffCoverage, EveryDifferentiableOpHasAGradientCase) {
  std::set<OpKind> covered;
  for (const GradientCase &c : gradientCases()) {
    Rng rng(1);
    Module module = parseModule(lossGraphText(c.name, c.build(rng)), c.name + ".kir");
    for (OpKind kind : differentiatedKinds(*module.graphs[0]))
      covered.insert(kind);
  }
  int differentiable = 0;
  for (OpKind kind : allOpKinds()) {
    if (!opInfo(kind).has(OpTrait::Differentiable))
      continue;
    ++differentiable;
    EXPECT_TRUE(covered.count(kind)) << opName(kind) << " is differentiable but no gradient case covers it";
  }
  EXPECT_GE(differentiable, 30) << "the Differentiable traits are missing from OpKind.def";
}

/// Second order: the gradient graph is itself differentiable. For the loss
/// v . grad f(w), appendGradients gives the Hessian-vector product H v,
/// checked against finite differences of v . grad f.
TEST(AutodiffSecondOrder, HessianVectorProductMatchesFiniteDifferences) {
  const char *text = R"(graph @g(%x: f64[1,2,5,5] input, %w: f64[3,2,3,3] param, %cot: f64[1,3,3,3] input,
                           %m: f64[27,4] input) -> (loss: f64[]) {
  %0 = conv2d %x, %w : f64[1,3,3,3]
  %1 = tanh %0 : f64[1,3,3,3]
  %2 = avg_pool2d %1 {window = [2, 2], stride = [1, 1], padding = [1, 1]} : f64[1,3,4,4]
  %3 = slice %2 {start = [0, 0, 0, 0], limit = [1, 3, 3, 3], stride = [1, 1, 1, 1]} : f64[1,3,3,3]
  %4 = reshape %3 : f64[1,27]
  %5 = matmul %4, %m : f64[1,4]
  %6 = logistic %5 : f64[1,4]
  %7 = erf %6 : f64[1,4]
  %8 = reshape %7 : f64[4]
  %9 = reduce_sum %8 {axes = [0]} : f64[]
  %10 = mul %3, %cot : f64[1,3,3,3]
  %11 = reduce_sum %10 {axes = [0, 1, 2, 3]} : f64[]
  %12 = add %9, %11 : f64[]
  return %12
})";
  Module module = parseModule(text, "hvp.kir");
  Graph &graph = *module.graphs[0];
  Argument *w = graph.findArgument("w");
  Value *grad = appendGradients(graph, graph.results()[0], {w})[0];
  Argument *v = graph.addArgument("v", grad->type, ArgRole::Input);
  Value *vDotGrad = emitNode(graph, OpKind::Mul, {grad, &v->value});
  AttrMap all;
  all.set("axes", Attribute(iota(4)));
  Value *loss2 = emitNode(graph, OpKind::ReduceSum, {vDotGrad}, all);
  Value *hvp = appendGradients(graph, loss2, {w})[0];
  graph.addResult(vDotGrad, "v_grad");
  graph.addResult(hvp, "hvp");
  verifyGraph(graph);

  Rng rng(7);
  TensorMap args;
  for (const auto &arg : graph.arguments())
    args[arg->name] = fillTensor(Fill::Signed, arg->value.type.shape, rng);
  std::vector<double> got = interpret(graph, args, Precision::F64).results[2].toDoubles();
  HostTensor &wt = args["w"];
  for (int64_t k = 0; k < wt.numElements(); ++k)
    expectClose(got[size_t(k)], centralDifference([&] { return resultOf(graph, args, 1); }, wt, k, {}),
                "hvp[" + std::to_string(k) + "]");
}

} // namespace
} // namespace kiln
