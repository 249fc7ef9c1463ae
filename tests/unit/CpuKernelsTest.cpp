// The CPU runtime's library kernels (runtime/cpu/Kernels.h) against the
// reference interpreter: each case is a one-op .kir graph run by
// kiln::interpret (Native) and the same op run by the kernel on random inputs,
// with 1, 2 and 3 threads (the sequential and the parallel paths). Kernel
// outputs start as NaN (all bits set), so an element a kernel forgets fails.
//
// Bounds: sums that run in f32 (matmul, convolutions, f32 scatter_add) differ
// from the interpreter's double sums rounded once by the rounding of each
// partial sum: |got - want| <= 1e-5 * (1 + |want|) (f64: 1e-12). Pooling sums
// in double in the interpreter's order, so pooling, gather and scatter_add of
// f64 and integers are exact.
#ifdef KILN_HAVE_CPU_RUNTIME

#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "runtime/Error.h"
#include "runtime/cpu/Kernels.h"
#include "runtime/cpu/Threads.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

namespace kiln {
namespace {

HostTensor randomTensor(DType dtype, Shape shape, std::mt19937 &rng, double low = -1,
                        double high = 1) {
  HostTensor t(dtype, std::move(shape));
  std::uniform_real_distribution<double> uniform(low, high);
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.setDouble(i, uniform(rng));
  return t;
}

HostTensor randomInts(DType dtype, Shape shape, std::mt19937 &rng, int64_t low, int64_t high) {
  HostTensor t(dtype, std::move(shape));
  std::uniform_int_distribution<int64_t> uniform(low, high);
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.setInt(i, uniform(rng));
  return t;
}

/// The first result of the one-graph module `kir`, interpreted in Native precision.
HostTensor interpretKir(const std::string &kir, const TensorMap &arguments) {
  Module module = parseModule(kir, "case.kir");
  return interpret(*module.graphs.at(0), arguments, Precision::Native).results.at(0);
}

/// A kernel's output buffer: every bit set (NaN for floats, -1 for integers).
HostTensor poisoned(DType dtype, const Shape &shape) {
  HostTensor t(dtype, shape);
  std::memset(t.data(), 0xff, t.byteSize());
  return t;
}

std::string pair(int64_t a, int64_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + "]"; }
std::string typeOf(const HostTensor &t) { return t.typeString(); }

enum class Bound { Exact, Sum };

/// Element-by-element check (NaN equals NaN); reports the first mismatches.
void expectMatches(const HostTensor &got, const HostTensor &want, Bound bound,
                   const std::string &what) {
  ASSERT_EQ(got.typeString(), want.typeString()) << what;
  double tolerance = want.dtype() == DType::F64 ? 1e-12 : 1e-5;
  int failures = 0;
  for (int64_t i = 0; i < want.numElements() && failures < 5; ++i) {
    bool ok;
    if (!isFloat(want.dtype())) {
      ok = got.getInt(i) == want.getInt(i);
    } else {
      double g = got.getDouble(i), w = want.getDouble(i);
      if (std::isnan(w) || std::isnan(g))
        ok = std::isnan(w) && std::isnan(g);
      else if (bound == Bound::Exact)
        ok = g == w;
      else
        ok = std::fabs(g - w) <= tolerance * (1 + std::fabs(w));
    }
    if (!ok) {
      ++failures;
      ADD_FAILURE() << what << ": element " << i << " is " << got.getDouble(i) << ", expected "
                    << want.getDouble(i);
    }
  }
}

/// Runs `fn(threads)` with 1, 2 and 3 threads, then restores the count.
template <typename Fn> void forThreadCounts(Fn fn) {
  int saved = cpu::numThreads();
  for (int threads : {1, 2, 3}) {
    cpu::setNumThreads(threads);
    fn(threads);
  }
  cpu::setNumThreads(saved);
}

// --- Matmul ------------------------------------------------------------------

struct MatmulCase {
  std::vector<int64_t> batch;
  int64_t m, n, k;
  bool transposeA, transposeB;
  DType dtype = DType::F32;
};

TEST(CpuKernels, MatmulMatchesInterpreter) {
  std::vector<MatmulCase> cases = {
      {{}, 1, 1, 1, false, false},
      {{}, 7, 5, 3, false, false},
      {{}, 67, 45, 33, true, false},
      {{}, 33, 70, 129, false, true},
      {{3}, 4, 5, 6, true, true},
      {{2, 3}, 8, 9, 10, false, true},
      {{6}, 16, 16, 16, false, false},     // small GEMMs: one per thread
      {{2}, 130, 120, 140, true, false},   // large GEMMs: one at a time, BLAS threads
      {{2}, 9, 11, 13, true, true, DType::F64},
      {{}, 40, 30, 50, false, false, DType::F64},
  };
  std::mt19937 rng(1);
  for (const MatmulCase &c : cases) {
    std::vector<int64_t> aDims = c.batch, bDims = c.batch, yDims = c.batch;
    int64_t batch = Shape(c.batch).numElements();
    aDims.insert(aDims.end(), c.transposeA ? std::initializer_list<int64_t>{c.k, c.m}
                                           : std::initializer_list<int64_t>{c.m, c.k});
    bDims.insert(bDims.end(), c.transposeB ? std::initializer_list<int64_t>{c.n, c.k}
                                           : std::initializer_list<int64_t>{c.k, c.n});
    yDims.insert(yDims.end(), {c.m, c.n});
    HostTensor a = randomTensor(c.dtype, Shape(aDims), rng), b = randomTensor(c.dtype, Shape(bDims), rng);
    HostTensor want(c.dtype, Shape(yDims));
    std::string kir = "graph @t(%a: " + typeOf(a) + " input, %b: " + typeOf(b) + " input) -> (" +
                      typeOf(want) + ") {\n  %0 = matmul %a, %b {transpose_a = " +
                      (c.transposeA ? "true" : "false") + ", transpose_b = " +
                      (c.transposeB ? "true" : "false") + "} : " + typeOf(want) +
                      "\n  return %0\n}\n";
    want = interpretKir(kir, {{"a", a}, {"b", b}});
    MatmulParams p;
    p.batch = batch, p.m = c.m, p.n = c.n, p.k = c.k, p.dtype = c.dtype;
    p.transposeA = c.transposeA, p.transposeB = c.transposeB;
    forThreadCounts([&](int threads) {
      HostTensor got = poisoned(c.dtype, want.shape());
      if (c.dtype == DType::F64)
        cpu::matmul(p, a.dataAs<double>(), b.dataAs<double>(), got.dataAs<double>());
      else
        cpu::matmul(p, a.dataAs<float>(), b.dataAs<float>(), got.dataAs<float>());
      expectMatches(got, want, Bound::Sum, kir + " with " + std::to_string(threads) + " threads");
    });
  }
}

// One A for every batch (MatmulParams::broadcastA): each batch equals the
// matmul of A with that batch's B.
TEST(CpuKernels, MatmulWithABroadcastOverTheBatch) {
  std::mt19937 rng(4);
  for (bool transposeA : {false, true}) {
    MatmulParams p;
    p.batch = 3, p.m = 5, p.n = 7, p.k = 6, p.transposeA = transposeA, p.broadcastA = true;
    HostTensor a = randomTensor(DType::F32, transposeA ? Shape{6, 5} : Shape{5, 6}, rng);
    HostTensor b = randomTensor(DType::F32, Shape{3, 6, 7}, rng);
    HostTensor got = poisoned(DType::F32, Shape{3, 5, 7});
    cpu::matmul(p, a.dataAs<float>(), b.dataAs<float>(), got.dataAs<float>());
    MatmulParams one = p;
    one.batch = 1, one.broadcastA = false;
    for (int64_t batch = 0; batch < 3; ++batch) {
      HostTensor want(DType::F32, Shape{5, 7});
      cpu::matmul(one, a.dataAs<float>(), b.dataAs<float>() + batch * 42, want.dataAs<float>());
      for (int64_t i = 0; i < 35; ++i)
        ASSERT_EQ(got.getDouble(batch * 35 + i), want.getDouble(i)) << "batch " << batch << " element " << i;
    }
  }
}

TEST(CpuKernels, MatmulWithEmptyContractionIsZeros) {
  MatmulParams p;
  p.batch = 2, p.m = 3, p.n = 4, p.k = 0;
  HostTensor got = poisoned(DType::F32, Shape{2, 3, 4});
  cpu::matmul(p, static_cast<const float *>(nullptr), static_cast<const float *>(nullptr),
              got.dataAs<float>());
  for (int64_t i = 0; i < got.numElements(); ++i)
    EXPECT_EQ(got.getDouble(i), 0.0);
}

// --- Convolutions ----------------------------------------------------------

struct ConvCase {
  int64_t n, c, h, w, o, kh, kw, strideH, strideW, padH, padW, dilationH, dilationW, groups;
  DType dtype = DType::F32;
};

WindowParams convParams(const ConvCase &c) {
  WindowParams p;
  p.n = c.n, p.c = c.c, p.h = c.h, p.w = c.w, p.o = c.o, p.kh = c.kh, p.kw = c.kw;
  p.strideH = c.strideH, p.strideW = c.strideW, p.padH = c.padH, p.padW = c.padW;
  p.dilationH = c.dilationH, p.dilationW = c.dilationW, p.groups = c.groups, p.dtype = c.dtype;
  p.oh = (c.h + 2 * c.padH - (c.dilationH * (c.kh - 1) + 1)) / c.strideH + 1;
  p.ow = (c.w + 2 * c.padW - (c.dilationW * (c.kw - 1) + 1)) / c.strideW + 1;
  return p;
}

template <typename T>
void runConv(StepKind kind, const WindowParams &p, const HostTensor &a, const HostTensor &b,
             HostTensor &out) {
  const T *x = a.dataAs<T>(), *y = b.dataAs<T>();
  T *r = out.dataAs<T>();
  if (kind == StepKind::Conv2d)
    cpu::conv2d(p, x, y, r);
  else if (kind == StepKind::Conv2dGradInput)
    cpu::conv2dGradInput(p, x, y, r);
  else
    cpu::conv2dGradFilter(p, x, y, r);
}

TEST(CpuKernels, ConvolutionsMatchInterpreter) {
  std::vector<ConvCase> cases = {
      {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},   // "same" padding
      {2, 4, 9, 8, 6, 3, 2, 2, 1, 0, 2, 1, 2, 2},   // stride, padding, dilation, groups
      {1, 6, 11, 10, 6, 3, 3, 2, 2, 1, 1, 2, 1, 3}, // one image: BLAS and im2col threads
      {5, 8, 5, 5, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1},   // 1x1: the input is its own im2col
      {3, 4, 6, 6, 8, 1, 1, 2, 2, 0, 0, 1, 1, 4},   // 1x1 strided, grouped
      {4, 2, 8, 8, 2, 5, 5, 3, 2, 2, 2, 1, 1, 2},   // depthwise 5x5
      {2, 3, 4, 5, 2, 4, 5, 1, 1, 0, 0, 1, 1, 1},   // the filter covers the input
      {3, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1}, // enough work for parallel im2col
      {2, 4, 7, 7, 6, 3, 3, 2, 1, 1, 0, 1, 2, 2, DType::F64},
  };
  std::mt19937 rng(2);
  for (const ConvCase &c : cases) {
    WindowParams p = convParams(c);
    HostTensor x = randomTensor(c.dtype, Shape{c.n, c.c, c.h, c.w}, rng);
    HostTensor w = randomTensor(c.dtype, Shape{c.o, c.c / c.groups, c.kh, c.kw}, rng);
    HostTensor dy = randomTensor(c.dtype, Shape{c.n, c.o, p.oh, p.ow}, rng);
    std::string attrs = " {stride = " + pair(c.strideH, c.strideW) + ", padding = " +
                        pair(c.padH, c.padW) + ", dilation = " + pair(c.dilationH, c.dilationW) +
                        ", groups = " + std::to_string(c.groups) + "}";
    struct Op {
      StepKind kind;
      const char *name;
      const HostTensor &a, &b;
      const char *aName, *bName;
      const HostTensor &resultLike;
    };
    for (const Op &op : {Op{StepKind::Conv2d, "conv2d", x, w, "x", "w", dy},
                         Op{StepKind::Conv2dGradInput, "conv2d_grad_input", dy, w, "dy", "w", x},
                         Op{StepKind::Conv2dGradFilter, "conv2d_grad_filter", x, dy, "x", "dy", w}}) {
      std::string kir = std::string("graph @t(%") + op.aName + ": " + typeOf(op.a) + " input, %" +
                        op.bName + ": " + typeOf(op.b) + " input) -> (" + typeOf(op.resultLike) +
                        ") {\n  %0 = " + op.name + " %" + op.aName + ", %" + op.bName + attrs +
                        " : " + typeOf(op.resultLike) + "\n  return %0\n}\n";
      HostTensor want = interpretKir(kir, {{op.aName, op.a}, {op.bName, op.b}});
      forThreadCounts([&](int threads) {
        HostTensor got = poisoned(c.dtype, want.shape());
        if (c.dtype == DType::F64)
          runConv<double>(op.kind, p, op.a, op.b, got);
        else
          runConv<float>(op.kind, p, op.a, op.b, got);
        expectMatches(got, want, Bound::Sum, kir + " with " + std::to_string(threads) + " threads");
        HostTensor again = poisoned(c.dtype, want.shape());
        if (c.dtype == DType::F32) {
          runConv<float>(op.kind, p, op.a, op.b, again);
          EXPECT_EQ(std::memcmp(got.data(), again.data(), got.byteSize()), 0)
              << op.name << " is not deterministic with " << threads << " threads";
        }
      });
    }
  }
}

// --- Pooling -------------------------------------------------------------------

struct PoolCase {
  int64_t n, c, h, w, kh, kw, strideH, strideW, padH, padW;
};

TEST(CpuKernels, PoolingMatchesInterpreterExactly) {
  std::vector<PoolCase> cases = {
      {2, 3, 7, 7, 3, 3, 2, 2, 1, 1}, // padded, overlapping
      {1, 2, 6, 8, 2, 2, 2, 2, 0, 0}, // tiled
      {2, 2, 5, 6, 3, 2, 1, 1, 1, 1}, // stride 1: each input in many windows
      {3, 4, 9, 9, 4, 4, 3, 3, 2, 2}, // padding half the window
      {8, 16, 12, 12, 2, 2, 2, 2, 0, 0}, // enough planes for the parallel loop
      {2, 3, 7, 9, 2, 2, 2, 2, 0, 0}, // 2x2 tiles leaving the last row and column uncovered
  };
  std::mt19937 rng(3);
  enum class Values { Random, Ties, Negative, WithNaN };
  for (const PoolCase &c : cases)
    for (Values values : {Values::Random, Values::Ties, Values::Negative, Values::WithNaN}) {
      WindowParams p;
      p.n = c.n, p.c = c.c, p.h = c.h, p.w = c.w, p.o = c.c, p.kh = c.kh, p.kw = c.kw;
      p.strideH = c.strideH, p.strideW = c.strideW, p.padH = c.padH, p.padW = c.padW;
      p.oh = (c.h + 2 * c.padH - c.kh) / c.strideH + 1;
      p.ow = (c.w + 2 * c.padW - c.kw) / c.strideW + 1;
      Shape xShape{c.n, c.c, c.h, c.w}, yShape{c.n, c.c, p.oh, p.ow};
      HostTensor x;
      if (values == Values::Ties) // few distinct values: windows with several maxima
        x = HostTensor::fromDoubles(DType::F32, xShape,
                                    randomInts(DType::I64, xShape, rng, -2, 1).toDoubles());
      else if (values == Values::Negative) // padding (-inf for max, 0 for avg) must not win
        x = randomTensor(DType::F32, xShape, rng, -3, -1);
      else
        x = randomTensor(DType::F32, xShape, rng);
      if (values == Values::WithNaN)
        for (int64_t i = 0; i < x.numElements(); i += 7)
          x.setDouble(i, std::numeric_limits<double>::quiet_NaN());
      HostTensor dy = randomTensor(DType::F32, yShape, rng);
      std::string attrs = " {window = " + pair(c.kh, c.kw) + ", stride = " +
                          pair(c.strideH, c.strideW) + ", padding = " + pair(c.padH, c.padW) + "}";
      std::string xType = typeOf(x), yType = typeOf(dy);
      auto graph = [&](const std::string &args, const std::string &op, const std::string &result) {
        return "graph @t(" + args + ") -> (" + result + ") {\n  %0 = " + op + attrs + " : " +
               result + "\n  return %0\n}\n";
      };
      HostTensor maxWant = interpretKir(graph("%x: " + xType + " input", "max_pool2d %x", yType), {{"x", x}});
      HostTensor avgWant = interpretKir(graph("%x: " + xType + " input", "avg_pool2d %x", yType), {{"x", x}});
      HostTensor maxGradWant = interpretKir(
          graph("%x: " + xType + " input, %dy: " + yType + " input", "max_pool2d_grad %x, %dy", xType),
          {{"x", x}, {"dy", dy}});
      HostTensor avgGradWant = interpretKir(
          graph("%dy: " + yType + " input", "avg_pool2d_grad %dy", xType), {{"dy", dy}});
      std::string what = "pool " + xType + attrs + " values " + std::to_string(int(values));
      forThreadCounts([&](int threads) {
        std::string label = what + " with " + std::to_string(threads) + " threads";
        HostTensor y = poisoned(DType::F32, yShape), dx = poisoned(DType::F32, xShape);
        cpu::maxPool2d(p, x.dataAs<float>(), y.dataAs<float>());
        expectMatches(y, maxWant, Bound::Exact, "max_pool2d " + label);
        cpu::avgPool2d(p, x.dataAs<float>(), y.dataAs<float>());
        expectMatches(y, avgWant, Bound::Exact, "avg_pool2d " + label);
        cpu::maxPool2dGrad(p, x.dataAs<float>(), dy.dataAs<float>(), dx.dataAs<float>());
        expectMatches(dx, maxGradWant, Bound::Exact, "max_pool2d_grad " + label);
        dx = poisoned(DType::F32, xShape);
        cpu::avgPool2dGrad(p, dy.dataAs<float>(), dx.dataAs<float>());
        expectMatches(dx, avgGradWant, Bound::Exact, "avg_pool2d_grad " + label);
      });
    }
}

// --- Indexing ------------------------------------------------------------------

/// gather / scatter_add params for a table shape, axis and index tensor.
IndexParams indexParams(const Shape &table, size_t axis, const HostTensor &indices, DType valueType) {
  IndexParams p;
  p.outer = 1, p.inner = 1, p.rows = table[axis];
  for (size_t i = 0; i < table.rank(); ++i)
    if (i < axis)
      p.outer *= table[i];
    else if (i > axis)
      p.inner *= table[i];
  p.indices = indices.numElements();
  p.indexType = indices.dtype();
  p.valueType = valueType;
  return p;
}

/// `outer + indices + inner`: the shape of gather's result and scatter_add's updates.
Shape takenShape(const Shape &table, size_t axis, const Shape &indices) {
  std::vector<int64_t> dims(table.dims().begin(), table.dims().begin() + long(axis));
  dims.insert(dims.end(), indices.dims().begin(), indices.dims().end());
  dims.insert(dims.end(), table.dims().begin() + long(axis) + 1, table.dims().end());
  return Shape(dims);
}

struct IndexCase {
  Shape table;
  size_t axis;
  Shape indices;
  DType indexType, valueType;
};

std::vector<IndexCase> indexCases() {
  return {
      {Shape{7, 4}, 0, Shape{2, 3}, DType::I32, DType::F32},
      {Shape{3, 5, 4}, 1, Shape{6}, DType::I64, DType::F32},
      {Shape{4, 6}, 1, Shape{}, DType::I32, DType::F64}, // a scalar index
      {Shape{5, 3}, 0, Shape{9}, DType::I64, DType::I32},
      {Shape{2, 6, 2}, 1, Shape{3, 4}, DType::I32, DType::I64},
      {Shape{1000, 64}, 0, Shape{4096}, DType::I32, DType::F32}, // parallel paths
      {Shape{50, 300}, 0, Shape{2000}, DType::I64, DType::F32},
  };
}

/// Indices with repeats and out-of-range values (negative and >= rows).
HostTensor randomIndices(const IndexCase &c, std::mt19937 &rng) {
  int64_t rows = c.table[c.axis];
  HostTensor idx = randomInts(c.indexType, c.indices, rng, -3, rows + 2);
  if (idx.numElements() >= 3) { // some certain ones
    idx.setInt(0, rows), idx.setInt(1, -1), idx.setInt(2, idx.getInt(idx.numElements() - 1));
  }
  return idx;
}

HostTensor randomValues(DType dtype, const Shape &shape, std::mt19937 &rng) {
  if (dtype == DType::I32) // near the edges, so sums wrap
    return randomInts(dtype, shape, rng, std::numeric_limits<int32_t>::min(),
                      std::numeric_limits<int32_t>::max());
  if (dtype == DType::I64)
    return randomInts(dtype, shape, rng, std::numeric_limits<int64_t>::min(),
                      std::numeric_limits<int64_t>::max());
  if (dtype == DType::I1)
    return randomInts(dtype, shape, rng, 0, 1);
  return randomTensor(dtype, shape, rng);
}

TEST(CpuKernels, GatherMatchesInterpreterExactly) {
  std::mt19937 rng(4);
  std::vector<IndexCase> cases = indexCases();
  cases.push_back({Shape{6, 5}, 0, Shape{4}, DType::I32, DType::F16}); // any value type, by bytes
  cases.push_back({Shape{2, 3, 4}, 2, Shape{5}, DType::I64, DType::I1});
  for (const IndexCase &c : cases) {
    HostTensor table = randomValues(c.valueType, c.table, rng);
    HostTensor idx = randomIndices(c, rng);
    Shape resultShape = takenShape(c.table, c.axis, c.indices);
    std::string resultType = std::string(dtypeName(c.valueType)) + resultShape.toString();
    std::string kir = "graph @t(%table: " + typeOf(table) + " input, %idx: " + typeOf(idx) +
                      " input) -> (" + resultType + ") {\n  %0 = gather %table, %idx {axis = " +
                      std::to_string(c.axis) + "} : " + resultType + "\n  return %0\n}\n";
    HostTensor want = interpretKir(kir, {{"table", table}, {"idx", idx}});
    IndexParams p = indexParams(c.table, c.axis, idx, c.valueType);
    forThreadCounts([&](int threads) {
      HostTensor got = poisoned(c.valueType, resultShape);
      cpu::gather(p, table.data(), idx.data(), got.data());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.byteSize()), 0)
          << kir << " with " << threads << " threads";
    });
  }
}

TEST(CpuKernels, GatherFromEmptyAxisIsZeros) {
  IndexParams p;
  p.outer = 2, p.rows = 0, p.inner = 3, p.indices = 2;
  int32_t indices[2] = {0, 5};
  HostTensor got = poisoned(DType::F32, Shape{2, 2, 3});
  cpu::gather(p, nullptr, indices, got.data());
  for (int64_t i = 0; i < got.numElements(); ++i)
    EXPECT_EQ(got.getDouble(i), 0.0);
}

TEST(CpuKernels, ScatterAddMatchesInterpreter) {
  std::mt19937 rng(5);
  for (const IndexCase &c : indexCases()) {
    HostTensor idx = randomIndices(c, rng);
    Shape updateShape = takenShape(c.table, c.axis, c.indices);
    HostTensor updates = randomValues(c.valueType, updateShape, rng);
    std::string resultType = std::string(dtypeName(c.valueType)) + c.table.toString();
    std::string kir = "graph @t(%idx: " + typeOf(idx) + " input, %upd: " + typeOf(updates) +
                      " input) -> (" + resultType + ") {\n  %0 = scatter_add %idx, %upd {axis = " +
                      std::to_string(c.axis) + "} : " + resultType + "\n  return %0\n}\n";
    HostTensor want = interpretKir(kir, {{"idx", idx}, {"upd", updates}});
    IndexParams p = indexParams(c.table, c.axis, idx, c.valueType);
    HostTensor first;
    forThreadCounts([&](int threads) {
      HostTensor got = poisoned(c.valueType, c.table);
      cpu::scatterAdd(p, idx.data(), updates.data(), got.data());
      // f32 sums round at each step; f64 sums run in the interpreter's order.
      expectMatches(got, want, c.valueType == DType::F32 ? Bound::Sum : Bound::Exact,
                    kir + " with " + std::to_string(threads) + " threads");
      if (threads == 1)
        first = got;
      else // each element sums in index order whatever the split
        EXPECT_EQ(std::memcmp(got.data(), first.data(), got.byteSize()), 0)
            << kir << " differs between 1 and " << threads << " threads";
    });
  }
}

TEST(CpuKernels, SetNumThreadsRejectsZero) {
  EXPECT_THROW(cpu::setNumThreads(0), Error);
}

} // namespace
} // namespace kiln

#endif // KILN_HAVE_CPU_RUNTIME
