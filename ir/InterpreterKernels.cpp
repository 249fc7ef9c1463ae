// The interpreter's kernels for reductions, contractions, convolutions,
// pooling and indexing: plain loops over double (floats) or int64 (integers).
#include "ir/InterpreterKernels.h"

#include "ir/Graph.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kiln {
namespace interp {

namespace {

/// Calls `fn(i, offset)` for every element `i` of `dims` in row-major order,
/// where `offset` = sum(idx * strides), kept up to date incrementally.
template <typename Fn>
void forEachOffset(const std::vector<int64_t> &dims, const std::vector<int64_t> &strides, Fn fn) {
  int64_t total = Shape(dims).numElements();
  if (total == 0)
    return;
  size_t rank = dims.size();
  if (rank == 0) {
    fn(int64_t(0), int64_t(0));
    return;
  }
  int64_t inner = dims[rank - 1], step = strides[rank - 1], offset = 0, i = 0;
  std::vector<int64_t> idx(rank, 0);
  while (i < total) {
    for (int64_t j = 0; j < inner; ++j, ++i)
      fn(i, offset + j * step);
    for (size_t k = rank - 1; k-- > 0;) {
      ++idx[k];
      offset += strides[k];
      if (idx[k] < dims[k])
        break;
      offset -= strides[k] * dims[k];
      idx[k] = 0;
    }
  }
}

/// Strides that map an operand index to its element of the reduced result:
/// zero along the reduced axes.
std::vector<int64_t> reducedStrides(const Shape &operand, const std::vector<int64_t> &axes) {
  std::vector<bool> reduced(operand.rank(), false);
  for (int64_t a : axes)
    reduced[size_t(a)] = true;
  std::vector<int64_t> strides(operand.rank(), 0);
  int64_t acc = 1;
  for (size_t i = operand.rank(); i-- > 0;) {
    if (reduced[i])
      continue;
    strides[i] = acc;
    acc *= operand[i];
  }
  return strides;
}

int64_t wrappingAdd(int64_t a, int64_t b) { return int64_t(uint64_t(a) + uint64_t(b)); }

/// An operand viewed as [outer, n, inner] around `axis`.
struct AxisView {
  int64_t outer = 1, n = 1, inner = 1;
  AxisView(const Shape &shape, size_t axis) {
    for (size_t i = 0; i < shape.rank(); ++i)
      (i < axis ? outer : i == axis ? n : inner) *= shape[i];
  }
};

} // namespace

// --- Reductions ------------------------------------------------------------

Buffer reduceSum(const Node &node, const Buffer &x, Precision precision) {
  Buffer r(x.dtype, node.type().shape);
  std::vector<int64_t> strides = reducedStrides(x.shape, node.intsAttr("axes"));
  if (x.isReal()) {
    forEachOffset(x.shape.dims(), strides,
                  [&](int64_t i, int64_t at) { r.reals[size_t(at)] += x.reals[size_t(i)]; });
    roundBuffer(r, precision);
  } else {
    forEachOffset(x.shape.dims(), strides, [&](int64_t i, int64_t at) {
      r.ints[size_t(at)] = wrappingAdd(r.ints[size_t(at)], x.ints[size_t(i)]);
    });
    for (int64_t &v : r.ints)
      v = wrapToDType(v, r.dtype);
  }
  return r;
}

Buffer reduceMax(const Node &node, const Buffer &x) {
  Buffer r(x.dtype, node.type().shape);
  std::vector<int64_t> strides = reducedStrides(x.shape, node.intsAttr("axes"));
  if (x.isReal()) {
    std::fill(r.reals.begin(), r.reals.end(), -std::numeric_limits<double>::infinity());
    forEachOffset(x.shape.dims(), strides, [&](int64_t i, int64_t at) {
      double &acc = r.reals[size_t(at)], v = x.reals[size_t(i)];
      if (!std::isnan(acc) && (std::isnan(v) || v > acc))
        acc = v;
    });
  } else {
    int64_t lowest = x.dtype == DType::I32 ? std::numeric_limits<int32_t>::min()
                                           : std::numeric_limits<int64_t>::min();
    std::fill(r.ints.begin(), r.ints.end(), lowest);
    forEachOffset(x.shape.dims(), strides, [&](int64_t i, int64_t at) {
      r.ints[size_t(at)] = std::max(r.ints[size_t(at)], x.ints[size_t(i)]);
    });
  }
  return r;
}

Buffer argmax(const Node &node, const Buffer &x) {
  Buffer r(DType::I32, node.type().shape);
  AxisView v(x.shape, size_t(node.intAttr("axis")));
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t t = 0; t < v.inner; ++t) {
      int64_t base = o * v.n * v.inner + t, best = 0;
      for (int64_t k = 1; k < v.n; ++k) {
        size_t at = size_t(base + k * v.inner), bestAt = size_t(base + best * v.inner);
        if (x.isReal()) {
          if (std::isnan(x.reals[bestAt]))
            break; // the first NaN is the maximum
          if (std::isnan(x.reals[at]) || x.reals[at] > x.reals[bestAt])
            best = k;
        } else if (x.ints[at] > x.ints[bestAt]) {
          best = k;
        }
      }
      r.ints[size_t(o * v.inner + t)] = best;
    }
  return r;
}

// --- Matmul ------------------------------------------------------------------

Buffer matmul(const Node &node, const Buffer &a, const Buffer &b, Precision precision) {
  Buffer r(a.dtype, node.type().shape);
  size_t rank = a.shape.rank();
  bool transposeA = node.boolAttr("transpose_a"), transposeB = node.boolAttr("transpose_b");
  int64_t m = r.shape[rank - 2], n = r.shape[rank - 1];
  int64_t k = a.shape[rank - (transposeA ? 2 : 1)];
  int64_t batches = r.numElements() / std::max<int64_t>(m * n, 1);
  if (m * n == 0)
    return r;
  // Element (i, kk) of batch `bt` of a, and a row-major [k, n] copy of b's
  // batch, so that the inner loop runs over contiguous rows and vectorizes.
  int64_t aRowStride = transposeA ? 1 : k, aColStride = transposeA ? m : 1;
  std::vector<double> bRows(size_t(k * n));
  // Blocks keep a [kBlock, nBlock] tile of b in cache while every row of a
  // passes over it; each sum still runs over kk in increasing order.
  constexpr int64_t kBlock = 128, nBlock = 512;
  for (int64_t bt = 0; bt < batches; ++bt) {
    const double *aBatch = a.reals.data() + bt * m * k;
    const double *bBatch = b.reals.data() + bt * k * n;
    if (transposeB) {
      for (int64_t kk = 0; kk < k; ++kk)
        for (int64_t j = 0; j < n; ++j)
          bRows[size_t(kk * n + j)] = bBatch[j * k + kk];
    } else {
      std::copy(bBatch, bBatch + k * n, bRows.begin());
    }
    double *out = r.reals.data() + bt * m * n;
    for (int64_t j0 = 0; j0 < n; j0 += nBlock) {
      int64_t j1 = std::min(n, j0 + nBlock);
      for (int64_t k0 = 0; k0 < k; k0 += kBlock) {
        int64_t k1 = std::min(k, k0 + kBlock);
        for (int64_t i = 0; i < m; ++i) {
          double *row = out + i * n;
          for (int64_t kk = k0; kk < k1; ++kk) {
            double scale = aBatch[i * aRowStride + kk * aColStride];
            const double *bRow = bRows.data() + kk * n;
            for (int64_t j = j0; j < j1; ++j)
              row[j] += scale * bRow[j];
          }
        }
      }
    }
  }
  roundBuffer(r, precision);
  return r;
}

// --- Convolution -------------------------------------------------------------

namespace {

/// The index arithmetic shared by conv2d and its two gradients.
struct ConvGeometry {
  int64_t batch, inChannels, inH, inW;  // x: [N, C, H, W]
  int64_t outChannels, kernelH, kernelW; // w: [O, C / groups, KH, KW]
  int64_t outH, outW;                    // y: [N, O, OH, OW]
  int64_t strideH, strideW, padH, padW, dilationH, dilationW, groups;

  ConvGeometry(const Node &node, const Shape &x, const Shape &w, const Shape &y) {
    batch = x[0], inChannels = x[1], inH = x[2], inW = x[3];
    outChannels = w[0], kernelH = w[2], kernelW = w[3];
    outH = y[2], outW = y[3];
    const auto &stride = node.intsAttr("stride"), &padding = node.intsAttr("padding"),
               &dilation = node.intsAttr("dilation");
    strideH = stride[0], strideW = stride[1], padH = padding[0], padW = padding[1];
    dilationH = dilation[0], dilationW = dilation[1];
    groups = node.intAttr("groups");
  }

  /// Calls `fn(yRow, xRow, wAt, owBegin, owEnd)` for every (n, oc, ic, kh, kw,
  /// oh) whose input row is in bounds: for ow in [owBegin, owEnd), output
  /// y[yRow + ow] meets input x[xRow + ow * strideW] through filter tap w[wAt].
  template <typename Fn> void forEachRow(Fn fn) const {
    int64_t groupIn = inChannels / groups, groupOut = outChannels / groups;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t oc = 0; oc < outChannels; ++oc)
        for (int64_t icInGroup = 0; icInGroup < groupIn; ++icInGroup) {
          int64_t ic = oc / groupOut * groupIn + icInGroup;
          for (int64_t kh = 0; kh < kernelH; ++kh)
            for (int64_t kw = 0; kw < kernelW; ++kw) {
              int64_t wAt = ((oc * groupIn + icInGroup) * kernelH + kh) * kernelW + kw;
              int64_t colShift = kw * dilationW - padW; // iw = ow * strideW + colShift
              int64_t owBegin = colShift >= 0 ? 0 : (-colShift + strideW - 1) / strideW;
              int64_t owEnd = inW - colShift <= 0 ? 0 : (inW - colShift - 1) / strideW + 1;
              owEnd = std::min(owEnd, outW);
              if (owBegin >= owEnd)
                continue;
              for (int64_t oh = 0; oh < outH; ++oh) {
                int64_t ih = oh * strideH - padH + kh * dilationH;
                if (ih < 0 || ih >= inH)
                  continue;
                int64_t yRow = ((n * outChannels + oc) * outH + oh) * outW;
                int64_t xRow = ((n * inChannels + ic) * inH + ih) * inW + colShift;
                fn(yRow, xRow, wAt, owBegin, owEnd);
              }
            }
        }
  }
};

} // namespace

Buffer conv2d(const Node &node, const Buffer &x, const Buffer &w, Precision precision) {
  Buffer y(x.dtype, node.type().shape);
  ConvGeometry g(node, x.shape, w.shape, y.shape);
  const double *xs = x.reals.data();
  double *ys = y.reals.data();
  g.forEachRow([&](int64_t yRow, int64_t xRow, int64_t wAt, int64_t begin, int64_t end) {
    double tap = w.reals[size_t(wAt)];
    for (int64_t ow = begin; ow < end; ++ow)
      ys[yRow + ow] += tap * xs[xRow + ow * g.strideW];
  });
  roundBuffer(y, precision);
  return y;
}

Buffer conv2dGradInput(const Node &node, const Buffer &dy, const Buffer &w, Precision precision) {
  Buffer dx(dy.dtype, node.type().shape);
  ConvGeometry g(node, dx.shape, w.shape, dy.shape);
  const double *dys = dy.reals.data();
  double *dxs = dx.reals.data();
  g.forEachRow([&](int64_t yRow, int64_t xRow, int64_t wAt, int64_t begin, int64_t end) {
    double tap = w.reals[size_t(wAt)];
    for (int64_t ow = begin; ow < end; ++ow)
      dxs[xRow + ow * g.strideW] += tap * dys[yRow + ow];
  });
  roundBuffer(dx, precision);
  return dx;
}

Buffer conv2dGradFilter(const Node &node, const Buffer &x, const Buffer &dy, Precision precision) {
  Buffer dw(x.dtype, node.type().shape);
  ConvGeometry g(node, x.shape, dw.shape, dy.shape);
  const double *xs = x.reals.data(), *dys = dy.reals.data();
  g.forEachRow([&](int64_t yRow, int64_t xRow, int64_t wAt, int64_t begin, int64_t end) {
    double sum = 0;
    for (int64_t ow = begin; ow < end; ++ow)
      sum += xs[xRow + ow * g.strideW] * dys[yRow + ow];
    dw.reals[size_t(wAt)] += sum;
  });
  roundBuffer(dw, precision);
  return dw;
}

// --- Pooling -----------------------------------------------------------------

namespace {

/// Window arithmetic of the pooling ops over x: [N, C, H, W] -> y: [N, C, OH, OW].
struct PoolGeometry {
  int64_t planes, inH, inW, outH, outW;
  int64_t windowH, windowW, strideH, strideW, padH, padW;

  PoolGeometry(const Node &node, const Shape &x, const Shape &y) {
    planes = x[0] * x[1], inH = x[2], inW = x[3], outH = y[2], outW = y[3];
    const auto &window = node.intsAttr("window"), &stride = node.intsAttr("stride"),
               &padding = node.intsAttr("padding");
    windowH = window[0], windowW = window[1], strideH = stride[0], strideW = stride[1];
    padH = padding[0], padW = padding[1];
  }
  double area() const { return double(windowH * windowW); }

  /// Calls `fn(plane, oh, ow, inAt)` for every in-bounds input position
  /// `inAt` (within the plane) of each output's window, window rows in order.
  template <typename Fn> void forEachTap(Fn fn) const {
    for (int64_t plane = 0; plane < planes; ++plane)
      for (int64_t oh = 0; oh < outH; ++oh)
        for (int64_t ow = 0; ow < outW; ++ow) {
          int64_t h0 = oh * strideH - padH, w0 = ow * strideW - padW;
          for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + windowH, inH); ++ih)
            for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + windowW, inW); ++iw)
              fn(plane, oh, ow, ih * inW + iw);
        }
  }

  /// For each output, the plane position of the first maximum of its window
  /// (padding never wins; the first NaN counts as the maximum).
  std::vector<int64_t> firstMaxima(const Buffer &x) const {
    std::vector<int64_t> argmaxAt(size_t(planes * outH * outW), -1);
    forEachTap([&](int64_t plane, int64_t oh, int64_t ow, int64_t inAt) {
      int64_t &best = argmaxAt[size_t((plane * outH + oh) * outW + ow)];
      const double *xs = x.reals.data() + plane * inH * inW;
      if (best < 0 || (!std::isnan(xs[best]) && (std::isnan(xs[inAt]) || xs[inAt] > xs[best])))
        best = inAt;
    });
    return argmaxAt;
  }
};

} // namespace

Buffer maxPool2d(const Node &node, const Buffer &x) {
  Buffer y(x.dtype, node.type().shape);
  PoolGeometry g(node, x.shape, y.shape);
  std::vector<int64_t> argmaxAt = g.firstMaxima(x);
  int64_t perPlane = g.outH * g.outW;
  for (size_t i = 0; i < argmaxAt.size(); ++i)
    y.reals[i] = x.reals[size_t(int64_t(i) / perPlane * g.inH * g.inW + argmaxAt[i])];
  return y;
}

Buffer maxPool2dGrad(const Node &node, const Buffer &x, const Buffer &dy, Precision precision) {
  Buffer dx(x.dtype, x.shape);
  PoolGeometry g(node, x.shape, dy.shape);
  std::vector<int64_t> argmaxAt = g.firstMaxima(x);
  int64_t perPlane = g.outH * g.outW;
  for (size_t i = 0; i < argmaxAt.size(); ++i)
    dx.reals[size_t(int64_t(i) / perPlane * g.inH * g.inW + argmaxAt[i])] += dy.reals[i];
  roundBuffer(dx, precision);
  return dx;
}

Buffer avgPool2d(const Node &node, const Buffer &x, Precision precision) {
  Buffer y(x.dtype, node.type().shape);
  PoolGeometry g(node, x.shape, y.shape);
  g.forEachTap([&](int64_t plane, int64_t oh, int64_t ow, int64_t inAt) {
    y.reals[size_t((plane * g.outH + oh) * g.outW + ow)] +=
        x.reals[size_t(plane * g.inH * g.inW + inAt)];
  });
  for (double &v : y.reals)
    v /= g.area(); // padded zeros count in the divisor
  roundBuffer(y, precision);
  return y;
}

Buffer avgPool2dGrad(const Node &node, const Buffer &dy, Precision precision) {
  Buffer dx(dy.dtype, node.type().shape);
  PoolGeometry g(node, dx.shape, dy.shape);
  g.forEachTap([&](int64_t plane, int64_t oh, int64_t ow, int64_t inAt) {
    dx.reals[size_t(plane * g.inH * g.inW + inAt)] +=
        dy.reals[size_t((plane * g.outH + oh) * g.outW + ow)] / g.area();
  });
  roundBuffer(dx, precision);
  return dx;
}

// --- Indexing ----------------------------------------------------------------

Buffer gather(const Node &node, const Buffer &table, const Buffer &indices) {
  Buffer r(table.dtype, node.type().shape);
  AxisView v(table.shape, size_t(node.intAttr("axis")));
  int64_t count = indices.numElements();
  if (v.n == 0)
    return r; // nothing to read; the result is empty unless outer or inner is 0
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t j = 0; j < count; ++j) {
      int64_t row = std::clamp<int64_t>(indices.ints[size_t(j)], 0, v.n - 1);
      int64_t from = (o * v.n + row) * v.inner, to = (o * count + j) * v.inner;
      if (table.isReal())
        std::copy_n(table.reals.begin() + from, v.inner, r.reals.begin() + to);
      else
        std::copy_n(table.ints.begin() + from, v.inner, r.ints.begin() + to);
    }
  return r;
}

Buffer scatterAdd(const Node &node, const Buffer &indices, const Buffer &updates,
                  Precision precision) {
  Buffer r(updates.dtype, node.type().shape);
  AxisView v(r.shape, size_t(node.intAttr("axis")));
  int64_t count = indices.numElements();
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t j = 0; j < count; ++j) {
      int64_t row = indices.ints[size_t(j)];
      if (row < 0 || row >= v.n)
        continue; // out-of-range updates are dropped
      size_t to = size_t((o * v.n + row) * v.inner), from = size_t((o * count + j) * v.inner);
      for (size_t t = 0; t < size_t(v.inner); ++t) {
        if (r.isReal())
          r.reals[to + t] += updates.reals[from + t];
        else
          r.ints[to + t] = wrappingAdd(r.ints[to + t], updates.ints[from + t]);
      }
    }
  if (r.isReal())
    roundBuffer(r, precision);
  else
    for (int64_t &value : r.ints)
      value = wrapToDType(value, r.dtype);
  return r;
}

} // namespace interp
} // namespace kiln
