// The reference interpreter: evaluates a graph's nodes in order, one plain
// loop per op over double (floats) or int64 (integers), and drops each value
// after its last use. The larger kernels are in InterpreterKernels.cpp.
#include "ir/Interpreter.h"

#include "ir/Graph.h"
#include "ir/InterpreterKernels.h"
#include "runtime/Error.h"
#include "runtime/Random.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <unordered_set>

namespace kiln {
namespace interp {

Buffer::Buffer(DType type, Shape dims) : dtype(type), shape(std::move(dims)) {
  size_t count = size_t(shape.numElements());
  if (isFloat(dtype))
    reals.assign(count, 0.0);
  else
    ints.assign(count, 0);
}

void roundBuffer(Buffer &b, Precision precision) {
  if (precision == Precision::F64 || !b.isReal() || b.dtype == DType::F64)
    return;
  if (b.dtype == DType::F32) {
    for (double &v : b.reals)
      v = double(float(v));
    return;
  }
  for (double &v : b.reals)
    v = roundToDType(v, b.dtype);
}

namespace {

// --- Storing scalars -------------------------------------------------------

/// Stores integer `v` as element `i`: exactly for integer types, with one
/// rounding for float types (none under F64).
void storeInt(Buffer &b, int64_t i, int64_t v, Precision precision) {
  if (!b.isReal())
    b.ints[size_t(i)] = wrapToDType(v, b.dtype);
  else
    b.reals[size_t(i)] = precision == Precision::F64 ? double(v) : intToReal(v, b.dtype);
}

/// Stores real `v` as element `i`, converted as `cast` converts.
void storeReal(Buffer &b, int64_t i, double v, Precision precision) {
  if (b.isReal())
    b.reals[size_t(i)] = precision == Precision::F64 ? v : roundToDType(v, b.dtype);
  else
    b.ints[size_t(i)] = realToInt(v, b.dtype);
}

void storeNumber(Buffer &b, int64_t i, const Attribute &number, Precision precision) {
  if (number.isInt())
    storeInt(b, i, number.asInt(), precision);
  else
    storeReal(b, i, number.asFloat(), precision);
}

// --- Elementwise -----------------------------------------------------------

template <typename RealFn> Buffer mapReals(const Buffer &x, Precision precision, RealFn fn) {
  Buffer r(x.dtype, x.shape);
  for (size_t i = 0; i < x.reals.size(); ++i)
    r.reals[i] = fn(x.reals[i]);
  roundBuffer(r, precision);
  return r;
}

/// A unary op on floats or integers; integer results wrap to the dtype.
template <typename RealFn, typename IntFn>
Buffer mapNumbers(const Buffer &x, Precision precision, RealFn realFn, IntFn intFn) {
  if (x.isReal())
    return mapReals(x, precision, realFn);
  Buffer r(x.dtype, x.shape);
  for (size_t i = 0; i < x.ints.size(); ++i)
    r.ints[i] = wrapToDType(intFn(x.ints[i]), x.dtype);
  return r;
}

template <typename RealFn>
Buffer zipReals(const Buffer &a, const Buffer &b, Precision precision, RealFn fn) {
  Buffer r(a.dtype, a.shape);
  for (size_t i = 0; i < a.reals.size(); ++i)
    r.reals[i] = fn(a.reals[i], b.reals[i]);
  roundBuffer(r, precision);
  return r;
}

/// A binary op on floats or integers (i1 for and/or); integer results wrap.
template <typename RealFn, typename IntFn>
Buffer zipNumbers(const Buffer &a, const Buffer &b, Precision precision, RealFn realFn,
                  IntFn intFn) {
  if (a.isReal())
    return zipReals(a, b, precision, realFn);
  Buffer r(a.dtype, a.shape);
  for (size_t i = 0; i < a.ints.size(); ++i)
    r.ints[i] = wrapToDType(intFn(a.ints[i], b.ints[i]), a.dtype);
  return r;
}

/// A binary op with an i1 result (comparisons, and, or). `cmp` is generic: it
/// compares two doubles or two int64s exactly.
template <typename Cmp> Buffer compare(const Buffer &a, const Buffer &b, Cmp cmp) {
  Buffer r(DType::I1, a.shape);
  for (size_t i = 0; i < r.ints.size(); ++i)
    r.ints[i] = a.isReal() ? cmp(a.reals[i], b.reals[i]) : cmp(a.ints[i], b.ints[i]);
  return r;
}

int64_t wrappingNeg(int64_t v) { return int64_t(0 - uint64_t(v)); }
int64_t wrappingAdd(int64_t a, int64_t b) { return int64_t(uint64_t(a) + uint64_t(b)); }
int64_t wrappingSub(int64_t a, int64_t b) { return int64_t(uint64_t(a) - uint64_t(b)); }
int64_t wrappingMul(int64_t a, int64_t b) { return int64_t(uint64_t(a) * uint64_t(b)); }

/// Truncating division; x / 0 = 0 and MIN / -1 = MIN (after the wrap).
int64_t integerDiv(int64_t a, int64_t b) {
  if (b == 0)
    return 0;
  if (b == -1)
    return wrappingNeg(a);
  return a / b;
}

double realSign(double v) { return std::isnan(v) ? v : double((v > 0) - (v < 0)); }

/// max/min that propagate NaN, like torch.maximum.
double nanMax(double a, double b) { return std::isnan(a) ? a : std::isnan(b) ? b : std::max(a, b); }
double nanMin(double a, double b) { return std::isnan(a) ? a : std::isnan(b) ? b : std::min(a, b); }

Buffer logicalNot(const Buffer &x) {
  Buffer r(DType::I1, x.shape);
  for (size_t i = 0; i < x.ints.size(); ++i)
    r.ints[i] = !x.ints[i];
  return r;
}

Buffer cast(const Node &node, const Buffer &x, Precision precision) {
  Buffer r(node.type().dtype, x.shape);
  for (int64_t i = 0; i < x.numElements(); ++i) {
    if (x.isReal())
      storeReal(r, i, x.reals[size_t(i)], precision);
    else
      storeInt(r, i, x.ints[size_t(i)], precision);
  }
  return r;
}

Buffer select(const Buffer &cond, const Buffer &a, const Buffer &b) {
  Buffer r(a.dtype, a.shape);
  for (size_t i = 0; i < cond.ints.size(); ++i) {
    if (a.isReal())
      r.reals[i] = cond.ints[i] ? a.reals[i] : b.reals[i];
    else
      r.ints[i] = cond.ints[i] ? a.ints[i] : b.ints[i];
  }
  return r;
}

Buffer constant(const Node &node, Precision precision) {
  Buffer r(node.type().dtype, node.type().shape);
  const Attribute &value = node.attr("value");
  for (int64_t i = 0; i < r.numElements(); ++i) {
    if (value.isIntList())
      storeInt(r, i, value.asIntList()[size_t(i)], precision);
    else if (value.isFloatList())
      storeReal(r, i, value.asFloatList()[size_t(i)], precision);
    else
      storeNumber(r, i, value, precision);
  }
  return r;
}

Buffer iota(const Node &node, Precision precision) {
  Buffer r(node.type().dtype, node.type().shape);
  size_t dim = size_t(node.intAttr("dim"));
  int64_t stride = r.shape.strides()[dim], size = r.shape[dim];
  for (int64_t i = 0; i < r.numElements(); ++i)
    storeInt(r, i, (i / stride) % size, precision);
  return r;
}

Buffer rngUniform(const Node &node, const Buffer &seed, Precision precision) {
  Buffer r(node.type().dtype, node.type().shape);
  uint64_t key = uint64_t(seed.ints[0]);
  uint64_t offset = uint64_t(node.intAttr("offset"));
  for (int64_t i = 0; i < r.numElements(); ++i)
    storeReal(r, i, uniformAt(key, offset + uint64_t(i)), precision);
  return r;
}

// --- Shape ops ---------------------------------------------------------------

/// For every index `idx` of `dims` (row-major):
/// dst[dstBase + sum(idx * dstStrides)] = src[srcBase + sum(idx * srcStrides)].
template <typename T>
void copyStrided(const std::vector<int64_t> &dims, const T *src, int64_t srcBase,
                 const std::vector<int64_t> &srcStrides, T *dst, int64_t dstBase,
                 const std::vector<int64_t> &dstStrides) {
  size_t rank = dims.size();
  if (rank == 0) {
    dst[dstBase] = src[srcBase];
    return;
  }
  int64_t total = Shape(dims).numElements();
  if (total == 0)
    return;
  int64_t inner = dims[rank - 1], srcStep = srcStrides[rank - 1], dstStep = dstStrides[rank - 1];
  std::vector<int64_t> idx(rank, 0);
  int64_t s = srcBase, d = dstBase;
  for (int64_t row = 0; row < total / inner; ++row) {
    for (int64_t j = 0; j < inner; ++j)
      dst[d + j * dstStep] = src[s + j * srcStep];
    for (size_t k = rank - 1; k-- > 0;) {
      ++idx[k];
      s += srcStrides[k];
      d += dstStrides[k];
      if (idx[k] < dims[k])
        break;
      s -= srcStrides[k] * dims[k];
      d -= dstStrides[k] * dims[k];
      idx[k] = 0;
    }
  }
}

/// Calls `fn(srcData, dstData)` with the storage the two buffers' dtype uses.
template <typename Fn> void withStorage(const Buffer &src, Buffer &dst, Fn fn) {
  if (src.isReal())
    fn(src.reals.data(), dst.reals.data());
  else
    fn(src.ints.data(), dst.ints.data());
}

/// Copies `src` (shape `dims`, strides `srcStrides` from `srcBase`) into the
/// whole of `dst` in row-major order.
void gatherStrided(const Buffer &src, int64_t srcBase, const std::vector<int64_t> &srcStrides,
                   Buffer &dst) {
  withStorage(src, dst, [&](const auto *s, auto *d) {
    copyStrided(dst.shape.dims(), s, srcBase, srcStrides, d, 0, dst.shape.strides());
  });
}

Buffer broadcast(const Node &node, const Buffer &x) {
  Buffer r(x.dtype, node.type().shape);
  const auto &dims = node.intsAttr("dims");
  std::vector<int64_t> xStrides = x.shape.strides(), srcStrides(r.shape.rank(), 0);
  for (size_t i = 0; i < dims.size(); ++i)
    if (x.shape[i] != 1)
      srcStrides[size_t(dims[i])] = xStrides[i];
  gatherStrided(x, 0, srcStrides, r);
  return r;
}

Buffer reshape(const Node &node, const Buffer &x) {
  Buffer r = x;
  r.shape = node.type().shape;
  return r;
}

Buffer transpose(const Node &node, const Buffer &x) {
  Buffer r(x.dtype, node.type().shape);
  const auto &perm = node.intsAttr("perm");
  std::vector<int64_t> xStrides = x.shape.strides(), srcStrides;
  for (int64_t p : perm)
    srcStrides.push_back(xStrides[size_t(p)]);
  gatherStrided(x, 0, srcStrides, r);
  return r;
}

Buffer slice(const Node &node, const Buffer &x) {
  Buffer r(x.dtype, node.type().shape);
  const auto &start = node.intsAttr("start"), &stride = node.intsAttr("stride");
  std::vector<int64_t> xStrides = x.shape.strides(), srcStrides;
  int64_t base = 0;
  for (size_t i = 0; i < xStrides.size(); ++i) {
    base += start[i] * xStrides[i];
    srcStrides.push_back(xStrides[i] * stride[i]);
  }
  gatherStrided(x, base, srcStrides, r);
  return r;
}

/// Copies all of `src` into `dst` at `dstBase` with `dst`'s own strides.
void placeInto(const Buffer &src, Buffer &dst, int64_t dstBase) {
  withStorage(src, dst, [&](const auto *s, auto *d) {
    copyStrided(src.shape.dims(), s, 0, src.shape.strides(), d, dstBase, dst.shape.strides());
  });
}

Buffer pad(const Node &node, const Buffer &x, Precision precision) {
  Buffer r(x.dtype, node.type().shape);
  if (r.numElements() > 0) {
    storeNumber(r, 0, node.attr("value"), precision);
    if (r.isReal())
      std::fill(r.reals.begin(), r.reals.end(), r.reals[0]);
    else
      std::fill(r.ints.begin(), r.ints.end(), r.ints[0]);
  }
  const auto &low = node.intsAttr("low");
  std::vector<int64_t> rStrides = r.shape.strides();
  int64_t base = 0;
  for (size_t i = 0; i < low.size(); ++i)
    base += low[i] * rStrides[i];
  placeInto(x, r, base);
  return r;
}

Buffer concat(const Node &node, const std::vector<const Buffer *> &parts) {
  Buffer r(parts[0]->dtype, node.type().shape);
  size_t axis = size_t(node.intAttr("axis"));
  int64_t axisStride = r.shape.strides()[axis], at = 0;
  for (const Buffer *part : parts) {
    placeInto(*part, r, at * axisStride);
    at += part->shape[axis];
  }
  return r;
}

// --- Checking numerics -------------------------------------------------------

/// `where: error: <what> <verb> inf at element 3 (check-numerics)` for the
/// first NaN or infinity of a float buffer; nothing for a finite one.
void checkFinite(const Buffer &b, const std::string &where, const std::string &what,
                 const char *verb) {
  for (size_t i = 0; i < b.reals.size(); ++i) {
    double v = b.reals[i];
    if (std::isfinite(v))
      continue;
    std::string text = std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    throwError(where, what + " " + verb + " " + text + " at element " + std::to_string(i) +
                          " (check-numerics)");
  }
}

/// Where a node is reported: its own location, else that of the fusion
/// around it (`fallback`).
std::string nodeLocation(const Node &node, const std::string &fallback) {
  std::string loc = node.loc().toString();
  return loc.empty() ? fallback : loc;
}

// --- The op switch ---------------------------------------------------------

Buffer evaluate(const Node &node, const std::vector<const Buffer *> &in,
                const InterpreterOptions &options);

/// Runs a fusion body on its operands' buffers and returns what it yields,
/// one buffer per result. Every body value is kept until the body ends
/// (interpreterPeakBytes counts so).
std::vector<Buffer> evaluateBody(const Node &fusion, const std::vector<const Buffer *> &in,
                                 const InterpreterOptions &options) {
  const Graph &body = *fusion.body();
  std::unordered_map<const Value *, Buffer> values;
  std::unordered_map<const Value *, const Buffer *> bound;
  for (size_t i = 0; i < in.size(); ++i)
    bound[&body.arguments()[i]->value] = in[i];
  std::vector<const Buffer *> operands;
  for (const auto &node : body.nodes()) {
    operands.clear();
    for (const Value *v : node->operands()) {
      auto arg = bound.find(v);
      operands.push_back(arg != bound.end() ? arg->second : &values.at(v));
    }
    Buffer result = evaluate(*node, operands, options);
    if (options.checkNumerics && result.isReal())
      checkFinite(result, nodeLocation(*node, fusion.loc().toString()),
                  std::string(opName(node->kind())) + " in a fusion", "produced");
    values.emplace(node->result(), std::move(result));
  }
  std::vector<Buffer> out;
  const auto &yielded = body.results();
  for (size_t r = 0; r < yielded.size(); ++r) {
    auto arg = bound.find(yielded[r]);
    bool yieldedAgain = std::find(yielded.begin() + std::ptrdiff_t(r) + 1, yielded.end(), yielded[r]) !=
                        yielded.end();
    if (arg != bound.end())
      out.push_back(*arg->second);
    else if (yieldedAgain)
      out.push_back(values.at(yielded[r]));
    else
      out.push_back(std::move(values.at(yielded[r])));
  }
  return out;
}

/// Every result of `node`, in order.
std::vector<Buffer> evaluateResults(const Node &node, const std::vector<const Buffer *> &in,
                                    const InterpreterOptions &options) {
  if (node.body())
    return evaluateBody(node, in, options);
  std::vector<Buffer> out;
  out.push_back(evaluate(node, in, options));
  return out;
}

Buffer evaluate(const Node &node, const std::vector<const Buffer *> &in,
                const InterpreterOptions &options) {
  Precision p = options.precision;
  static const Buffer none; // stands for the operands an op does not have
  const Buffer &x = in.size() > 0 ? *in[0] : none;
  const Buffer &y = in.size() > 1 ? *in[1] : none;
  switch (node.kind()) {
  case OpKind::Neg: return mapNumbers(x, p, [](double v) { return -v; }, wrappingNeg);
  case OpKind::Abs:
    return mapNumbers(x, p, [](double v) { return std::fabs(v); },
                      [](int64_t v) { return v < 0 ? wrappingNeg(v) : v; });
  case OpKind::Exp: return mapReals(x, p, [](double v) { return std::exp(v); });
  case OpKind::Log: return mapReals(x, p, [](double v) { return std::log(v); });
  case OpKind::Sqrt: return mapReals(x, p, [](double v) { return std::sqrt(v); });
  case OpKind::Rsqrt: return mapReals(x, p, [](double v) { return 1.0 / std::sqrt(v); });
  case OpKind::Tanh: return mapReals(x, p, [](double v) { return std::tanh(v); });
  case OpKind::Logistic:
    return mapReals(x, p, [](double v) { return 1.0 / (1.0 + std::exp(-v)); });
  case OpKind::Erf: return mapReals(x, p, [](double v) { return std::erf(v); });
  case OpKind::Sin: return mapReals(x, p, [](double v) { return std::sin(v); });
  case OpKind::Cos: return mapReals(x, p, [](double v) { return std::cos(v); });
  case OpKind::Sign:
    return mapNumbers(x, p, realSign, [](int64_t v) { return int64_t((v > 0) - (v < 0)); });
  case OpKind::Floor: return mapReals(x, p, [](double v) { return std::floor(v); });
  case OpKind::Not: return logicalNot(x);
  case OpKind::Cast: return cast(node, x, p);

  case OpKind::Add:
    return zipNumbers(x, y, p, [](double a, double b) { return a + b; }, wrappingAdd);
  case OpKind::Sub:
    return zipNumbers(x, y, p, [](double a, double b) { return a - b; }, wrappingSub);
  case OpKind::Mul:
    return zipNumbers(x, y, p, [](double a, double b) { return a * b; }, wrappingMul);
  case OpKind::Div:
    return zipNumbers(x, y, p, [](double a, double b) { return a / b; }, integerDiv);
  case OpKind::Max:
    return zipNumbers(x, y, p, nanMax, [](int64_t a, int64_t b) { return std::max(a, b); });
  case OpKind::Min:
    return zipNumbers(x, y, p, nanMin, [](int64_t a, int64_t b) { return std::min(a, b); });
  case OpKind::Pow:
    return zipReals(x, y, p, [](double a, double b) { return std::pow(a, b); });
  case OpKind::Eq: return compare(x, y, [](auto a, auto b) { return a == b; });
  case OpKind::Ne: return compare(x, y, [](auto a, auto b) { return a != b; });
  case OpKind::Lt: return compare(x, y, [](auto a, auto b) { return a < b; });
  case OpKind::Le: return compare(x, y, [](auto a, auto b) { return a <= b; });
  case OpKind::Gt: return compare(x, y, [](auto a, auto b) { return a > b; });
  case OpKind::Ge: return compare(x, y, [](auto a, auto b) { return a >= b; });
  case OpKind::And: return compare(x, y, [](auto a, auto b) { return a && b; });
  case OpKind::Or: return compare(x, y, [](auto a, auto b) { return a || b; });

  case OpKind::Select: return select(x, y, *in[2]);
  case OpKind::Constant: return constant(node, p);
  case OpKind::Iota: return iota(node, p);

  case OpKind::Broadcast: return broadcast(node, x);
  case OpKind::Reshape: return reshape(node, x);
  case OpKind::Transpose: return transpose(node, x);
  case OpKind::Slice: return slice(node, x);
  case OpKind::Pad: return pad(node, x, p);
  case OpKind::Concat: return concat(node, in);

  case OpKind::ReduceSum: return reduceSum(node, x, p);
  case OpKind::ReduceMax: return reduceMax(node, x);
  case OpKind::Argmax: return argmax(node, x);
  case OpKind::Matmul: return matmul(node, x, y, p);
  case OpKind::Conv2d: return conv2d(node, x, y, p);
  case OpKind::Conv2dGradInput: return conv2dGradInput(node, x, y, p);
  case OpKind::Conv2dGradFilter: return conv2dGradFilter(node, x, y, p);
  case OpKind::MaxPool2d: return maxPool2d(node, x);
  case OpKind::AvgPool2d: return avgPool2d(node, x, p);
  case OpKind::MaxPool2dGrad: return maxPool2dGrad(node, x, y, p);
  case OpKind::AvgPool2dGrad: return avgPool2dGrad(node, x, p);
  case OpKind::Gather: return gather(node, x, y);
  case OpKind::ScatterAdd: return scatterAdd(node, x, y, p);
  case OpKind::RngUniform: return rngUniform(node, x, p);
  case OpKind::Fusion: return std::move(evaluateBody(node, in, options)[0]);
  }
  KILN_UNREACHABLE("every op kind is handled above");
}

// --- Arguments and results -------------------------------------------------

Buffer fromTensor(const HostTensor &t) {
  Buffer b(t.dtype(), t.shape());
  int64_t count = t.numElements();
  if (t.dtype() == DType::F32) {
    const float *data = t.dataAs<float>();
    for (int64_t i = 0; i < count; ++i)
      b.reals[size_t(i)] = data[i];
  } else if (b.isReal()) {
    for (int64_t i = 0; i < count; ++i)
      b.reals[size_t(i)] = t.getDouble(i);
  } else {
    for (int64_t i = 0; i < count; ++i)
      b.ints[size_t(i)] = t.getInt(i);
  }
  return b;
}

HostTensor toTensor(const Buffer &b, Precision precision) {
  DType dtype = b.isReal() && precision == Precision::F64 ? DType::F64 : b.dtype;
  HostTensor t(dtype, b.shape);
  int64_t count = b.numElements();
  if (dtype == DType::F32) {
    float *data = t.dataAs<float>();
    for (int64_t i = 0; i < count; ++i)
      data[i] = float(b.reals[size_t(i)]);
  } else if (dtype == DType::F64) {
    std::memcpy(t.data(), b.reals.data(), b.reals.size() * sizeof(double));
  } else if (b.isReal()) {
    for (int64_t i = 0; i < count; ++i)
      t.setDouble(i, b.reals[size_t(i)]); // exact: already rounded to the dtype
  } else {
    for (int64_t i = 0; i < count; ++i)
      t.setInt(i, b.ints[size_t(i)]);
  }
  return t;
}

/// Where an argument is reported: its own location (a JSON pointer for a
/// `.json` file), else the graph's.
std::string argumentLocation(const Graph &graph, const Argument &arg) {
  std::string loc = arg.loc.toString();
  return loc.empty() ? graph.loc().toString() : loc;
}

} // namespace
} // namespace interp

InterpreterResult interpret(const Graph &graph, const TensorMap &arguments, Precision precision) {
  InterpreterOptions options;
  options.precision = precision;
  return interpret(graph, arguments, options);
}

InterpreterResult interpret(const Graph &graph, const TensorMap &arguments,
                            const InterpreterOptions &options) {
  using interp::Buffer;
  Precision precision = options.precision;
  std::unordered_map<const Value *, Buffer> values;
  for (const auto &arg : graph.arguments()) {
    auto it = arguments.find(arg->name);
    if (it == arguments.end())
      throwError(interp::argumentLocation(graph, *arg),
                 "no value for argument '" + arg->name + "' of @" + graph.name());
    const HostTensor &feed = it->second;
    const TensorType &want = arg->value.type;
    if (feed.dtype() != want.dtype || feed.shape() != want.shape)
      throwError(interp::argumentLocation(graph, *arg),
                 "feed '" + arg->name + "' has type " + feed.typeString() + " but @" +
                     graph.name() + " expects " + want.toString());
    Buffer value = interp::fromTensor(feed);
    if (options.checkNumerics && value.isReal())
      interp::checkFinite(value, interp::argumentLocation(graph, *arg),
                          "argument '" + arg->name + "'", "holds");
    values.emplace(&arg->value, std::move(value));
  }

  // A node's value is dropped after its last use, so memory stays near the
  // largest live set rather than the sum of all intermediates.
  std::unordered_set<const Value *> kept(graph.results().begin(), graph.results().end());
  for (const Update &u : graph.updates())
    kept.insert(u.source);
  std::unordered_map<const Value *, size_t> usesLeft;
  for (const auto &node : graph.nodes())
    for (const Value *operand : node->operands())
      ++usesLeft[operand];

  std::vector<const Buffer *> operands;
  for (const auto &node : graph.nodes()) {
    operands.clear();
    for (const Value *operand : node->operands())
      operands.push_back(&values.at(operand));
    std::vector<Buffer> results = interp::evaluateResults(*node, operands, options);
    for (size_t r = 0; r < results.size(); ++r) {
      const Buffer &result = results[r];
      assert(result.dtype == node->result(r)->type.dtype &&
             result.shape == node->result(r)->type.shape && "a kernel must produce its node's type");
      if (options.checkNumerics && result.isReal())
        interp::checkFinite(result, interp::nodeLocation(*node, graph.loc().toString()),
                            std::string(opName(node->kind())), "produced");
    }
    for (const Value *operand : node->operands())
      if (--usesLeft[operand] == 0 && !kept.count(operand))
        values.erase(operand);
    for (size_t r = 0; r < results.size(); ++r)
      if (usesLeft[node->result(r)] > 0 || kept.count(node->result(r)))
        values.emplace(node->result(r), std::move(results[r]));
  }

  InterpreterResult out;
  for (const Value *v : graph.results())
    out.results.push_back(interp::toTensor(values.at(v), precision));
  for (const Update &u : graph.updates())
    out.updated[u.target->name] = interp::toTensor(values.at(u.source), precision);
  return out;
}

namespace {

constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();

/// a + b, or kSaturated when that overflows.
uint64_t addBytes(uint64_t a, uint64_t b) { return a > kSaturated - b ? kSaturated : a + b; }

/// What the interpreter holds of a value: 8 bytes per element.
uint64_t interpretedBytes(const TensorType &type) {
  uint64_t elements = uint64_t(type.numElements());
  return elements > kSaturated / 8 ? kSaturated : elements * 8;
}

/// The bytes a node holds while it runs, its result included: a fusion keeps
/// every value of its body until it ends, plus a copy when it yields an argument.
uint64_t runningBytes(const Node &node) {
  const Graph *body = node.body();
  if (!body)
    return interpretedBytes(node.type());
  uint64_t bytes = 0;
  for (const auto &inner : body->nodes())
    bytes = addBytes(bytes, runningBytes(*inner));
  const auto &yielded = body->results();
  for (size_t r = 0; r < yielded.size(); ++r) // copies: of an argument, or of a value yielded again
    if (!yielded[r]->node || std::find(yielded.begin() + std::ptrdiff_t(r) + 1, yielded.end(),
                                       yielded[r]) != yielded.end())
      bytes = addBytes(bytes, interpretedBytes(yielded[r]->type));
  return bytes;
}

} // namespace

uint64_t interpreterPeakBytes(const Graph &graph) {
  // Replays interpret()'s schedule: the same uses, the same drops.
  std::unordered_set<const Value *> kept(graph.results().begin(), graph.results().end());
  for (const Update &u : graph.updates())
    kept.insert(u.source);
  std::unordered_map<const Value *, size_t> usesLeft;
  for (const auto &node : graph.nodes())
    for (const Value *operand : node->operands())
      ++usesLeft[operand];

  uint64_t live = 0;
  for (const auto &arg : graph.arguments())
    live = addBytes(live, interpretedBytes(arg->value.type));
  uint64_t peak = live;
  for (const auto &node : graph.nodes()) {
    peak = std::max(peak, addBytes(live, runningBytes(*node)));
    if (peak == kSaturated)
      return kSaturated;
    for (const Value *operand : node->operands())
      if (--usesLeft[operand] == 0 && !kept.count(operand))
        live -= interpretedBytes(operand->type);
    for (size_t r = 0; r < node->numResults(); ++r)
      if (usesLeft[node->result(r)] > 0 || kept.count(node->result(r)))
        live += interpretedBytes(node->result(r)->type);
  }
  return peak;
}

} // namespace kiln
