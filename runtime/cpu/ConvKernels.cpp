// conv2d and its two gradients: im2col (or, for a 1x1 filter with stride 1 and
// no padding, the input itself) and one GEMM per image and group.
//
// For image n and group g, with K = (c / groups) * kh * kw and P = oh * ow:
//   cols [K, P]          im2col of x[n, channels of g]
//   y[n, g]   [og, P]  = w[g] [og, K] x cols                 (conv2d)
//   cols      [K, P]   = w[g]^T x dy[n, g], then col2im      (conv2d_grad_input)
//   dw[g]     [og, K] += dy[n, g] x cols^T                   (conv2d_grad_filter)
#include "runtime/cpu/Kernels.h"

#include "runtime/cpu/Parallel.h"

#include <algorithm>
#include <vector>

namespace kiln {
namespace cpu {

namespace {

/// The sizes every convolution kernel derives from its params.
struct ConvShape {
  int64_t groupIn, groupOut; // c / groups, o / groups
  int64_t taps;              // K = groupIn * kh * kw
  int64_t positions;         // P = oh * ow
  int64_t inPlane;           // h * w
  bool direct;               // the input is its own im2col

  explicit ConvShape(const WindowParams &p)
      : groupIn(p.c / p.groups), groupOut(p.o / p.groups), taps(groupIn * p.kh * p.kw),
        positions(p.oh * p.ow), inPlane(p.h * p.w),
        direct(p.kh == 1 && p.kw == 1 && p.strideH == 1 && p.strideW == 1 && p.padH == 0 &&
               p.padW == 0) {}
};

/// The output columns [begin, end) whose input column `ow * strideW + shift`
/// is inside the row, for the filter column `kw` (shift = kw * dilationW - padW).
struct ColumnRange {
  int64_t shift, begin, end;
  ColumnRange(const WindowParams &p, int64_t kw) {
    shift = kw * p.dilationW - p.padW;
    begin = shift >= 0 ? 0 : (-shift + p.strideW - 1) / p.strideW;
    end = p.w - shift <= 0 ? 0 : (p.w - shift - 1) / p.strideW + 1;
    end = std::min(end, p.ow);
    begin = std::min(begin, end);
  }
};

/// cols [channels * kh * kw, oh * ow] of x [channels, h, w]; out-of-bounds
/// taps are zeros.
template <typename T> void im2col(const WindowParams &p, const T *x, int64_t channels, T *cols) {
  int64_t rows = channels * p.kh * p.kw, positions = p.oh * p.ow;
  bool parallel = rows > 1 && rows * positions >= kParallelWork && availableThreads() > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t c = r / (p.kh * p.kw), kh = r / p.kw % p.kh, kw = r % p.kw;
    ColumnRange range(p, kw);
    const T *plane = x + c * p.h * p.w;
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      T *line = cols + r * positions + oh * p.ow;
      int64_t ih = oh * p.strideH - p.padH + kh * p.dilationH;
      if (ih < 0 || ih >= p.h) {
        std::fill_n(line, p.ow, T(0));
        continue;
      }
      const T *source = plane + ih * p.w; // column ow reads source[ow * strideW + shift]
      std::fill_n(line, range.begin, T(0));
      if (p.strideW == 1)
        std::copy_n(source + range.begin + range.shift, range.end - range.begin, line + range.begin);
      else
        for (int64_t ow = range.begin; ow < range.end; ++ow)
          line[ow] = source[ow * p.strideW + range.shift];
      std::fill(line + range.end, line + p.ow, T(0));
    }
  }
}

/// x [channels, h, w] = the sum of cols' taps at their input positions (the
/// transpose of im2col). Each channel is written by one thread, its taps added
/// in (kh, kw, oh, ow) order.
template <typename T> void col2im(const WindowParams &p, const T *cols, int64_t channels, T *x) {
  int64_t positions = p.oh * p.ow;
  bool parallel = channels > 1 && channels * p.kh * p.kw * positions >= kParallelWork &&
                  availableThreads() > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t c = 0; c < channels; ++c) {
    T *plane = x + c * p.h * p.w;
    std::fill_n(plane, p.h * p.w, T(0));
    for (int64_t kh = 0; kh < p.kh; ++kh)
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        ColumnRange range(p, kw);
        const T *row = cols + ((c * p.kh + kh) * p.kw + kw) * positions;
        for (int64_t oh = 0; oh < p.oh; ++oh) {
          int64_t ih = oh * p.strideH - p.padH + kh * p.dilationH;
          if (ih < 0 || ih >= p.h)
            continue;
          T *target = plane + ih * p.w;
          const T *line = row + oh * p.ow;
          for (int64_t ow = range.begin; ow < range.end; ++ow)
            target[ow * p.strideW + range.shift] += line[ow];
        }
      }
  }
}

/// Runs `fn(n)` for every image: one image per thread when there are at least
/// as many images as threads (BLAS then runs single-threaded inside), else in
/// order with the threads left to BLAS and im2col.
template <typename Fn> void forEachImage(int64_t images, Fn fn) {
  int threads = availableThreads();
  if (threads > 1 && images >= threads) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < images; ++n)
      fn(n);
    return;
  }
  for (int64_t n = 0; n < images; ++n)
    fn(n);
}

} // namespace

template <typename T> void conv2d(const WindowParams &p, const T *x, const T *w, T *y) {
  ConvShape s(p);
  if (s.taps == 0) { // no input channels: every sum is empty
    std::fill_n(y, p.n * p.o * s.positions, T(0));
    return;
  }
  if (s.groupOut == 0)
    return;
  forEachImage(p.n, [&](int64_t n) {
    T *cols = s.direct ? nullptr : scratch<T>(s.taps * s.positions);
    for (int64_t g = 0; g < p.groups; ++g) {
      const T *input = x + (n * p.c + g * s.groupIn) * s.inPlane;
      if (!s.direct)
        im2col(p, input, s.groupIn, cols);
      gemm(false, false, s.groupOut, s.positions, s.taps, T(1), w + g * s.groupOut * s.taps,
           s.taps, s.direct ? input : cols, s.positions, T(0),
           y + (n * p.o + g * s.groupOut) * s.positions, s.positions);
    }
  });
}

template <typename T> void conv2dGradInput(const WindowParams &p, const T *dy, const T *w, T *dx) {
  ConvShape s(p);
  if (s.taps == 0)
    return; // dx has no elements
  if (s.groupOut == 0) { // no filters: nothing flows back
    std::fill_n(dx, p.n * p.c * s.inPlane, T(0));
    return;
  }
  forEachImage(p.n, [&](int64_t n) {
    T *cols = s.direct ? nullptr : scratch<T>(s.taps * s.positions);
    for (int64_t g = 0; g < p.groups; ++g) {
      T *input = dx + (n * p.c + g * s.groupIn) * s.inPlane;
      gemm(true, false, s.taps, s.positions, s.groupOut, T(1), w + g * s.groupOut * s.taps,
           s.taps, dy + (n * p.o + g * s.groupOut) * s.positions, s.positions, T(0),
           s.direct ? input : cols, s.positions);
      if (!s.direct)
        col2im(p, cols, s.groupIn, input);
    }
  });
}

template <typename T> void conv2dGradFilter(const WindowParams &p, const T *x, const T *dy, T *dw) {
  ConvShape s(p);
  int64_t filterSize = p.o * s.taps;
  if (filterSize == 0)
    return;
  if (p.n == 0 || s.positions == 0) {
    std::fill_n(dw, filterSize, T(0));
    return;
  }
  // dw (+)= the contribution of image n; `first` overwrites.
  auto accumulate = [&](int64_t n, T *out, bool first) {
    T *cols = s.direct ? nullptr : scratch<T>(s.taps * s.positions);
    for (int64_t g = 0; g < p.groups; ++g) {
      const T *input = x + (n * p.c + g * s.groupIn) * s.inPlane;
      if (!s.direct)
        im2col(p, input, s.groupIn, cols);
      gemm(false, true, s.groupOut, s.taps, s.positions, T(1),
           dy + (n * p.o + g * s.groupOut) * s.positions, s.positions,
           s.direct ? input : cols, s.positions, first ? T(0) : T(1),
           out + g * s.groupOut * s.taps, s.taps);
    }
  };
  int threads = availableThreads();
  if (threads <= 1 || p.n < threads) {
    for (int64_t n = 0; n < p.n; ++n)
      accumulate(n, dw, n == 0);
    return;
  }
  // One partial sum per part of the batch, added in part order: the result
  // depends on the thread count only, not on which thread ran which part.
  int64_t parts = threads;
  std::vector<T> partials(size_t((parts - 1) * filterSize));
#pragma omp parallel for schedule(static, 1)
  for (int64_t part = 0; part < parts; ++part) {
    T *out = part == 0 ? dw : partials.data() + (part - 1) * filterSize;
    int64_t begin = part * p.n / parts, end = (part + 1) * p.n / parts;
    for (int64_t n = begin; n < end; ++n)
      accumulate(n, out, n == begin);
  }
  bool parallel = filterSize * parts >= kParallelWork;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < filterSize; ++i) {
    T sum = dw[i];
    for (int64_t part = 1; part < parts; ++part)
      sum += partials[size_t((part - 1) * filterSize + i)];
    dw[i] = sum;
  }
}

#define KILN_INSTANTIATE(T)                                                                        \
  template void conv2d<T>(const WindowParams &, const T *, const T *, T *);                        \
  template void conv2dGradInput<T>(const WindowParams &, const T *, const T *, T *);               \
  template void conv2dGradFilter<T>(const WindowParams &, const T *, const T *, T *);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

} // namespace cpu
} // namespace kiln
