// Matmul, pooling, gather and scatter_add (convolutions: ConvKernels.cpp).
#include "runtime/cpu/Kernels.h"

#include "runtime/cpu/Parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

namespace kiln {
namespace cpu {


// --- Matmul ------------------------------------------------------------------

/// Batches of GEMMs at most this big (m * n * k) run one per thread: OpenBLAS
/// splits a small GEMM across threads for little gain.
constexpr int64_t kSmallGemm = int64_t(1) << 21;

template <typename T> void matmul(const MatmulParams &p, const T *a, const T *b, T *c) {
  int64_t m = p.m, n = p.n, k = p.k;
  if (p.batch == 0 || m == 0 || n == 0)
    return;
  if (k == 0) {
    std::fill_n(c, p.batch * m * n, T(0));
    return;
  }
  int64_t lda = p.transposeA ? m : k, ldb = p.transposeB ? k : n;
  auto multiply = [&](int64_t batch) {
    gemm(p.transposeA, p.transposeB, m, n, k, T(1), a + (p.broadcastA ? 0 : batch * m * k), lda, b + batch * k * n,
         ldb, T(0), c + batch * m * n, n);
  };
  if (p.batch > 1 && availableThreads() > 1 && m * n * k <= kSmallGemm) {
#pragma omp parallel for schedule(static)
    for (int64_t batch = 0; batch < p.batch; ++batch)
      multiply(batch);
    return;
  }
  for (int64_t batch = 0; batch < p.batch; ++batch)
    multiply(batch);
}

// --- Pooling -----------------------------------------------------------------

namespace {

/// One output's window, clipped to the plane: rows [h0, h1), columns [w0, w1).
struct Window {
  int64_t h0, h1, w0, w1;
  Window(const WindowParams &p, int64_t oh, int64_t ow) {
    int64_t top = oh * p.strideH - p.padH, left = ow * p.strideW - p.padW;
    h0 = std::max<int64_t>(top, 0), h1 = std::min(top + p.kh, p.h);
    w0 = std::max<int64_t>(left, 0), w1 = std::min(left + p.kw, p.w);
  }
};

/// The plane position of the first maximum of the window (-1 when the window
/// holds no input position); the first NaN counts as the maximum.
template <typename T> int64_t firstMaximum(const WindowParams &p, const T *plane, const Window &win) {
  int64_t best = -1;
  for (int64_t ih = win.h0; ih < win.h1; ++ih)
    for (int64_t iw = win.w0; iw < win.w1; ++iw) {
      int64_t at = ih * p.w + iw;
      if (best < 0) {
        best = at;
      } else {
        T bestValue = plane[best], value = plane[at];
        if (std::isnan(bestValue))
          return best;
        if (std::isnan(value) || value > bestValue)
          best = at;
      }
    }
  return best;
}

/// Runs `fn(plane)` for every plane of n * c, in parallel when the work is
/// big enough; each plane is written by one thread.
template <typename Fn> void forEachPlane(const WindowParams &p, int64_t workPerPlane, Fn fn) {
  int64_t planes = p.n * p.c;
  bool parallel = planes > 1 && planes * workPerPlane >= kParallelWork && availableThreads() > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t plane = 0; plane < planes; ++plane)
    fn(plane);
}

/// 2x2 windows at stride 2 without padding (the usual pooling): each input
/// is in at most one window, so the windows can be computed side by side in
/// vector registers, branch-free, with firstMaximum's semantics.
bool isPlain2x2(const WindowParams &p) {
  return p.kh == 2 && p.kw == 2 && p.strideH == 2 && p.strideW == 2 && p.padH == 0 && p.padW == 0 &&
         p.oh * 2 <= p.h && p.ow * 2 <= p.w;
}

/// Which of a window's 4 values (row-major) firstMaximum picks: the first
/// NaN, else the first maximum. `k` is 0-3; `value` its value.
template <typename T> struct FirstOf4 {
  int k;
  T value;
  FirstOf4(T a, T b, T c, T d) : k(0), value(a) {
    step(b, 1), step(c, 2), step(d, 3);
  }
  void step(T v, int index) {
    bool take = !std::isnan(value) && (std::isnan(v) || v > value);
    k = take ? index : k;
    value = take ? v : value;
  }
};

} // namespace

template <typename T> void maxPool2d(const WindowParams &p, const T *x, T *y) {
  int64_t inPlane = p.h * p.w, outPlane = p.oh * p.ow;
  if (isPlain2x2(p)) {
    forEachPlane(p, outPlane * 4, [&](int64_t plane) {
      const T *xs = x + plane * inPlane;
      T *ys = y + plane * outPlane;
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        const T *top = xs + 2 * oh * p.w, *bottom = top + p.w;
        for (int64_t ow = 0; ow < p.ow; ++ow)
          ys[oh * p.ow + ow] = FirstOf4<T>(top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1]).value;
      }
    });
    return;
  }
  forEachPlane(p, outPlane * p.kh * p.kw, [&](int64_t plane) {
    const T *xs = x + plane * inPlane;
    T *ys = y + plane * outPlane;
    for (int64_t oh = 0; oh < p.oh; ++oh)
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        int64_t at = firstMaximum(p, xs, Window(p, oh, ow));
        ys[oh * p.ow + ow] = at < 0 ? -std::numeric_limits<T>::infinity() : xs[at];
      }
  });
}

// The sums below run in double in the interpreter's order and are rounded
// once, so the results equal the interpreter's exactly.

template <typename T> void avgPool2d(const WindowParams &p, const T *x, T *y) {
  int64_t inPlane = p.h * p.w, outPlane = p.oh * p.ow;
  double area = double(p.kh * p.kw); // padded zeros count in the divisor
  forEachPlane(p, outPlane * p.kh * p.kw, [&](int64_t plane) {
    const T *xs = x + plane * inPlane;
    T *ys = y + plane * outPlane;
    for (int64_t oh = 0; oh < p.oh; ++oh)
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        Window win(p, oh, ow);
        double sum = 0;
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw)
            sum += double(xs[ih * p.w + iw]);
        ys[oh * p.ow + ow] = T(sum / area);
      }
  });
}

template <typename T> void maxPool2dGrad(const WindowParams &p, const T *x, const T *dy, T *dx) {
  int64_t inPlane = p.h * p.w, outPlane = p.oh * p.ow;
  if (isPlain2x2(p)) {
    // One contribution per input at most: dx is dy at each window's first
    // maximum and 0 elsewhere (the same bits as the double sum rounded).
    forEachPlane(p, outPlane * 4, [&](int64_t plane) {
      const T *xs = x + plane * inPlane, *dys = dy + plane * outPlane;
      T *dxs = dx + plane * inPlane;
      if (p.oh * 2 < p.h || p.ow * 2 < p.w)
        std::fill_n(dxs, inPlane, T(0)); // rows or columns no window covers
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        const T *top = xs + 2 * oh * p.w, *bottom = top + p.w;
        T *dtop = dxs + 2 * oh * p.w, *dbottom = dtop + p.w;
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          int k = FirstOf4<T>(top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1]).k;
          T g = dys[oh * p.ow + ow];
          dtop[2 * ow] = k == 0 ? g : T(0);
          dtop[2 * ow + 1] = k == 1 ? g : T(0);
          dbottom[2 * ow] = k == 2 ? g : T(0);
          dbottom[2 * ow + 1] = k == 3 ? g : T(0);
        }
      }
    });
    return;
  }
  forEachPlane(p, outPlane * p.kh * p.kw, [&](int64_t plane) {
    const T *xs = x + plane * inPlane, *dys = dy + plane * outPlane;
    double *sums = scratch<double>(inPlane);
    std::fill_n(sums, inPlane, 0.0);
    for (int64_t oh = 0; oh < p.oh; ++oh)
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        int64_t at = firstMaximum(p, xs, Window(p, oh, ow));
        if (at >= 0)
          sums[at] += double(dys[oh * p.ow + ow]);
      }
    std::copy_n(sums, inPlane, dx + plane * inPlane); // rounds each sum to T
  });
}

template <typename T> void avgPool2dGrad(const WindowParams &p, const T *dy, T *dx) {
  int64_t inPlane = p.h * p.w, outPlane = p.oh * p.ow;
  double area = double(p.kh * p.kw);
  forEachPlane(p, outPlane * p.kh * p.kw, [&](int64_t plane) {
    const T *dys = dy + plane * outPlane;
    double *sums = scratch<double>(inPlane);
    std::fill_n(sums, inPlane, 0.0);
    for (int64_t oh = 0; oh < p.oh; ++oh)
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        Window win(p, oh, ow);
        double share = double(dys[oh * p.ow + ow]) / area;
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw)
            sums[ih * p.w + iw] += share;
      }
    std::copy_n(sums, inPlane, dx + plane * inPlane);
  });
}

// --- Indexing ----------------------------------------------------------------

namespace {

int64_t indexAt(const void *indices, DType type, int64_t j) {
  return type == DType::I64 ? static_cast<const int64_t *>(indices)[j]
                            : static_cast<const int32_t *>(indices)[j];
}

/// Columns of `inner` per parallel task of scatter_add: every element still
/// receives its updates in index order, whatever the split.
constexpr int64_t kColumnBlock = 256;

template <typename T, typename Add>
void scatterAddTyped(const IndexParams &p, const void *indices, const T *updates, T *out, Add add) {
  std::fill_n(out, p.outer * p.rows * p.inner, T(0));
  int64_t blocks = (p.inner + kColumnBlock - 1) / kColumnBlock, tasks = p.outer * blocks;
  bool parallel =
      tasks > 1 && p.outer * p.indices * p.inner >= kParallelWork && availableThreads() > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t task = 0; task < tasks; ++task) {
    int64_t o = task / blocks, begin = task % blocks * kColumnBlock;
    int64_t end = std::min(p.inner, begin + kColumnBlock);
    for (int64_t j = 0; j < p.indices; ++j) {
      int64_t row = indexAt(indices, p.indexType, j);
      if (row < 0 || row >= p.rows)
        continue; // out-of-range updates are dropped
      T *to = out + (o * p.rows + row) * p.inner;
      const T *from = updates + (o * p.indices + j) * p.inner;
      for (int64_t t = begin; t < end; ++t)
        to[t] = add(to[t], from[t]);
    }
  }
}

template <typename Int> Int wrappingAdd(Int a, Int b) {
  using Unsigned = std::make_unsigned_t<Int>;
  return Int(Unsigned(a) + Unsigned(b));
}

} // namespace

void gather(const IndexParams &p, const void *table, const void *indices, void *out) {
  size_t rowBytes = dtypeSize(p.valueType) * size_t(p.inner);
  auto *to = static_cast<uint8_t *>(out);
  const auto *from = static_cast<const uint8_t *>(table);
  if (p.rows == 0) { // nothing to read
    std::memset(to, 0, size_t(p.outer * p.indices) * rowBytes);
    return;
  }
  int64_t copies = p.outer * p.indices;
  bool parallel = copies > 1 && copies * int64_t(rowBytes) >= 4 * kParallelWork &&
                  availableThreads() > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t copy = 0; copy < copies; ++copy) {
    int64_t o = copy / p.indices, j = copy % p.indices;
    int64_t row = std::clamp<int64_t>(indexAt(indices, p.indexType, j), 0, p.rows - 1);
    std::memcpy(to + size_t(copy) * rowBytes, from + size_t(o * p.rows + row) * rowBytes,
                rowBytes);
  }
}

void scatterAdd(const IndexParams &p, const void *indices, const void *updates, void *out) {
  switch (p.valueType) {
  case DType::F32:
    return scatterAddTyped(p, indices, static_cast<const float *>(updates),
                           static_cast<float *>(out), [](float a, float b) { return a + b; });
  case DType::F64:
    return scatterAddTyped(p, indices, static_cast<const double *>(updates),
                           static_cast<double *>(out), [](double a, double b) { return a + b; });
  case DType::I32:
    return scatterAddTyped(p, indices, static_cast<const int32_t *>(updates),
                           static_cast<int32_t *>(out), wrappingAdd<int32_t>);
  case DType::I64:
    return scatterAddTyped(p, indices, static_cast<const int64_t *>(updates),
                           static_cast<int64_t *>(out), wrappingAdd<int64_t>);
  case DType::BF16:
  case DType::F16:
  case DType::I1:
    break;
  }
  assert(false && "the Executable rejects other scatter_add value types");
}

#define KILN_INSTANTIATE(T)                                                                        \
  template void matmul<T>(const MatmulParams &, const T *, const T *, T *);                        \
  template void maxPool2d<T>(const WindowParams &, const T *, T *);                                \
  template void avgPool2d<T>(const WindowParams &, const T *, T *);                                \
  template void maxPool2dGrad<T>(const WindowParams &, const T *, const T *, T *);                 \
  template void avgPool2dGrad<T>(const WindowParams &, const T *, T *);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

} // namespace cpu
} // namespace kiln
