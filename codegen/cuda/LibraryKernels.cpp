// Dedicated CUDA kernels of the library steps other than matmul (which goes
// to cuBLASLt): convolutions and their gradients, pooling and gradients,
// gather and scatter_add, specialized to the step's shapes. One thread per
// output element (grid-stride), which sums its terms in a fixed order in
// double: deterministic, no atomics, the interpreter's accumulation. The
// direct convolution kernels serve grouped convolutions; those of one group
// run as im2col, a cuBLASLt GEMM and col2im (the kernels at the end, and
// CudaLowering.cpp).
#include "codegen/cuda/CudaCodegen.h"

#include "runtime/Error.h"

#include <algorithm>
#include <map>

namespace kiln {

namespace {

std::string ll(int64_t v) { return std::to_string(v) + "LL"; }

/// Replaces every `$NAME` in `text` by its value.
std::string fill(std::string text, const std::map<std::string, std::string> &values) {
  for (auto it = values.rbegin(); it != values.rend(); ++it) { // longer names sort later
    size_t at = 0;
    while ((at = text.find("$" + it->first, at)) != std::string::npos)
      text.replace(at, it->first.size() + 1, it->second);
  }
  return text;
}

std::string floatType(const Step &step, DType t) {
  if (t == DType::F32)
    return "float";
  if (t == DType::F64)
    return "double";
  throwError(step.name, "the CUDA backend has no library kernel for " + std::string(dtypeName(t)) +
                            " (f32 and f64 only)");
}


const char *kGridLoop = "for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < $TOTAL; "
                        "e += (long long)gridDim.x * blockDim.x) {\n";

/// The window's clipped bounds and the first maximum (-1: empty window),
/// shared by max pooling and its gradient.
const char *kFirstMax = R"(
    const long long top = oh * $SH - $PH, left = ow * $SW - $PW;
    const long long h0 = max(top, 0LL), h1 = min(top + $KH, $H), w0 = max(left, 0LL), w1 = min(left + $KW, $W);
    long long best = -1;
    for (long long ih = h0; ih < h1; ++ih)
      for (long long iw = w0; iw < w1; ++iw) {
        const long long at = ih * $W + iw;
        if (best < 0) { best = at; continue; }
        const T bv = plane[best], v = plane[at];
        if (isnan(bv)) { ih = h1; break; }
        if (isnan(v) || v > bv) best = at;
      }
)";

/// How a scatter_add kernel sums the updates `upd[o, j, t]` of an output
/// element: its accumulator type, initial value, the statement adding update
/// j, and the stored result. Floats in double, integers wrapping in 64 bits.
struct ScatterSum {
  std::string acc, init, add, result;
};
ScatterSum scatterSum(const IndexParams &q, const std::string &where) {
  if (q.valueType == DType::F32 || q.valueType == DType::F64)
    return {"double", "0.0", "sum += (double)upd[(o * $IDX + j) * $INNER + t];", "(V)sum"};
  if (q.valueType == DType::I32 || q.valueType == DType::I64)
    return {"unsigned long long", "0ull", "sum += (unsigned long long)(long long)upd[(o * $IDX + j) * $INNER + t];",
            "(V)(long long)sum"};
  throwError(where, "the CUDA backend has no scatter_add kernel for " + std::string(dtypeName(q.valueType)));
}

} // namespace

CudaKernel generateLibraryKernel(const Step &step, const std::string &name) {
  const WindowParams &p = step.window;
  std::map<std::string, std::string> v{
      {"N", ll(p.n)},         {"C", ll(p.c)},           {"H", ll(p.h)},          {"W", ll(p.w)},
      {"O", ll(p.o)},         {"KH", ll(p.kh)},         {"KW", ll(p.kw)},        {"OH", ll(p.oh)},
      {"OW", ll(p.ow)},       {"SH", ll(p.strideH)},    {"SW", ll(p.strideW)},   {"PH", ll(p.padH)},
      {"PW", ll(p.padW)},     {"DH", ll(p.dilationH)},  {"DW", ll(p.dilationW)}, {"NAME", name},
      {"CPG", ll(p.groups ? p.c / p.groups : 0)},       {"OPG", ll(p.groups ? p.o / p.groups : 0)},
      {"AREA", std::to_string(p.kh * p.kw) + ".0"}};
  std::string body;
  int64_t total = 0;
  switch (step.kind) {
  case StepKind::Conv2d: // y[n, o, oh, ow]
    total = p.n * p.o * p.oh * p.ow;
    v["T"] = floatType(step, p.dtype);
    body = R"(
    const long long ow = e % $OW, oh = (e / $OW) % $OH, o = (e / ($OW * $OH)) % $O, n = e / ($OW * $OH * $O);
    const long long g = o / $OPG;
    double acc = 0.0;
    for (long long ci = 0; ci < $CPG; ++ci)
      for (long long kh = 0; kh < $KH; ++kh) {
        const long long ih = oh * $SH - $PH + kh * $DH;
        if (ih < 0 || ih >= $H) continue;
        for (long long kw = 0; kw < $KW; ++kw) {
          const long long iw = ow * $SW - $PW + kw * $DW;
          if (iw < 0 || iw >= $W) continue;
          acc += (double)x[((n * $C + g * $CPG + ci) * $H + ih) * $W + iw] * (double)w[((o * $CPG + ci) * $KH + kh) * $KW + kw];
        }
      }
    y[e] = (T)acc;
)";
    body = "extern \"C\" __global__ void __launch_bounds__(256) $NAME(const $T* x, const $T* w, $T* y) {\n  typedef $T T;\n  " +
           std::string(kGridLoop) + body + "  }\n}\n";
    break;
  case StepKind::Conv2dGradInput: // dx[n, c, ih, iw] from dy[n, o, oh, ow], w
    total = p.n * p.c * p.h * p.w;
    v["T"] = floatType(step, p.dtype);
    body = R"(
    const long long iw = e % $W, ih = (e / $W) % $H, c = (e / ($W * $H)) % $C, n = e / ($W * $H * $C);
    const long long g = c / $CPG, ci = c % $CPG;
    double acc = 0.0;
    for (long long og = 0; og < $OPG; ++og) {
      const long long o = g * $OPG + og;
      for (long long kh = 0; kh < $KH; ++kh) {
        const long long th = ih + $PH - kh * $DH;
        if (th < 0 || th % $SH != 0 || th / $SH >= $OH) continue;
        for (long long kw = 0; kw < $KW; ++kw) {
          const long long tw = iw + $PW - kw * $DW;
          if (tw < 0 || tw % $SW != 0 || tw / $SW >= $OW) continue;
          acc += (double)dy[((n * $O + o) * $OH + th / $SH) * $OW + tw / $SW] * (double)w[((o * $CPG + ci) * $KH + kh) * $KW + kw];
        }
      }
    }
    dx[e] = (T)acc;
)";
    body = "extern \"C\" __global__ void __launch_bounds__(256) $NAME(const $T* dy, const $T* w, $T* dx) {\n  typedef $T T;\n  " +
           std::string(kGridLoop) + body + "  }\n}\n";
    break;
  case StepKind::Conv2dGradFilter: // dw[o, ci, kh, kw] from x, dy
    total = p.o * (p.groups ? p.c / p.groups : 0) * p.kh * p.kw;
    v["T"] = floatType(step, p.dtype);
    body = R"(
    const long long kw = e % $KW, kh = (e / $KW) % $KH, ci = (e / ($KW * $KH)) % $CPG, o = e / ($KW * $KH * $CPG);
    const long long c = (o / $OPG) * $CPG + ci;
    double acc = 0.0;
    for (long long n = 0; n < $N; ++n)
      for (long long oh = 0; oh < $OH; ++oh) {
        const long long ih = oh * $SH - $PH + kh * $DH;
        if (ih < 0 || ih >= $H) continue;
        for (long long ow = 0; ow < $OW; ++ow) {
          const long long iw = ow * $SW - $PW + kw * $DW;
          if (iw < 0 || iw >= $W) continue;
          acc += (double)x[((n * $C + c) * $H + ih) * $W + iw] * (double)dy[((n * $O + o) * $OH + oh) * $OW + ow];
        }
      }
    dw[e] = (T)acc;
)";
    body = "extern \"C\" __global__ void __launch_bounds__(256) $NAME(const $T* x, const $T* dy, $T* dw) {\n  typedef $T T;\n  " +
           std::string(kGridLoop) + body + "  }\n}\n";
    break;
  case StepKind::MaxPool2d:
  case StepKind::AvgPool2d: // y[n, c, oh, ow]
    total = p.n * p.c * p.oh * p.ow;
    v["T"] = floatType(step, p.dtype);
    if (step.kind == StepKind::MaxPool2d)
      body = "    const long long ow = e % $OW, oh = (e / $OW) % $OH, plane_index = e / ($OW * $OH);\n"
             "    const T *plane = x + plane_index * $H * $W;\n" +
             std::string(kFirstMax) + "    y[e] = best < 0 ? -(T)__int_as_float(0x7f800000) : plane[best];\n";
    else
      body = R"(
    const long long ow = e % $OW, oh = (e / $OW) % $OH, plane_index = e / ($OW * $OH);
    const T *plane = x + plane_index * $H * $W;
    const long long top = oh * $SH - $PH, left = ow * $SW - $PW;
    const long long h0 = max(top, 0LL), h1 = min(top + $KH, $H), w0 = max(left, 0LL), w1 = min(left + $KW, $W);
    double sum = 0.0;
    for (long long ih = h0; ih < h1; ++ih)
      for (long long iw = w0; iw < w1; ++iw)
        sum += (double)plane[ih * $W + iw];
    y[e] = (T)(sum / $AREA);
)";
    body = "extern \"C\" __global__ void __launch_bounds__(256) $NAME(const $T* x, $T* y) {\n  typedef $T T;\n  " +
           std::string(kGridLoop) + body + "  }\n}\n";
    break;
  case StepKind::MaxPool2dGrad:
  case StepKind::AvgPool2dGrad: { // dx[n, c, ih, iw]: the windows holding it, in (oh, ow) order
    total = p.n * p.c * p.h * p.w;
    v["T"] = floatType(step, p.dtype);
    bool isMax = step.kind == StepKind::MaxPool2dGrad;
    std::string range = R"(
    const long long iw0 = e % $W, ih0 = (e / $W) % $H, plane_index = e / ($W * $H);
    double sum = 0.0;
    // Windows start at o * S - P and hold K positions: o in [ceil((i + P - K + 1) / S), floor((i + P) / S)].
    const long long ohLo = max((ih0 + $PH - $KH + $SH) / $SH, 0LL), ohHi = min((ih0 + $PH) / $SH, $OH - 1);
    const long long owLo = max((iw0 + $PW - $KW + $SW) / $SW, 0LL), owHi = min((iw0 + $PW) / $SW, $OW - 1);
    for (long long oh = ohLo; oh <= ohHi; ++oh)
      for (long long ow = owLo; ow <= owHi; ++ow) {
)";
    std::string inner = isMax ? "    const T *plane = x + plane_index * $H * $W;\n" + std::string(kFirstMax) +
                                    "        if (best == ih0 * $W + iw0) sum += (double)dy[(plane_index * $OH + oh) * $OW + ow];\n"
                              : "        sum += (double)dy[(plane_index * $OH + oh) * $OW + ow] / $AREA;\n";
    body = range + inner + "      }\n    dx[e] = (T)sum;\n";
    body = "extern \"C\" __global__ void __launch_bounds__(256) $NAME(" +
           std::string(isMax ? "const $T* x, const $T* dy, $T* dx" : "const $T* dy, $T* dx") + ") {\n  typedef $T T;\n  " +
           std::string(kGridLoop) + body + "  }\n}\n";
    break;
  }
  case StepKind::Gather:
  case StepKind::ScatterAdd: {
    const IndexParams &q = step.index;
    v["OUTER"] = ll(q.outer), v["ROWS"] = ll(q.rows), v["INNER"] = ll(q.inner), v["IDX"] = ll(q.indices);
    v["I"] = q.indexType == DType::I64 ? "long long" : "int";
    v["V"] = cudaStorageType(q.valueType);
    if (step.kind == StepKind::Gather) { // out[o, j, t] = table[o, clamp(idx[j]), t]
      total = q.outer * q.indices * q.inner;
      body = q.rows == 0 ? "    out[e] = (V)0;\n" : R"(
    const long long t = e % $INNER, j = (e / $INNER) % $IDX, o = e / ($INNER * $IDX);
    const long long row = min(max((long long)idx[j], 0LL), $ROWS - 1);
    out[e] = table[(o * $ROWS + row) * $INNER + t];
)";
      body = "extern \"C\" __global__ void __launch_bounds__(256) $NAME(const $V* table, const $I* idx, $V* out) {\n"
             "  typedef $V V; typedef $I I;\n  " + std::string(kGridLoop) + body + "  }\n}\n";
    } else { // out[o, r, t] = sum over j with idx[j] == r of upd[o, j, t], in index order
      total = q.outer * q.rows * q.inner;
      auto [acc, init, add, result] = scatterSum(q, step.name);
      body = R"(
    const long long t = e % $INNER, r = (e / $INNER) % $ROWS, o = e / ($INNER * $ROWS);
    )" + acc + " sum = " + init + R"(;
    for (long long j = 0; j < $IDX; ++j)
      if ((long long)idx[j] == r) )" + add + R"(
    out[e] = )" + result + ";\n";
      body = "extern \"C\" __global__ void __launch_bounds__(256) $NAME(const $I* idx, const $V* upd, $V* out) {\n"
             "  typedef $V V; typedef $I I;\n  " + std::string(kGridLoop) + body + "  }\n}\n";
    }
    break;
  }
  case StepKind::Kernel:
  case StepKind::Matmul:
  case StepKind::Copy:
    throwError(step.name, "internal error: no dedicated CUDA kernel for this step kind");
  }
  v["TOTAL"] = ll(total);
  CudaKernel kernel;
  kernel.strategy = "library";
  kernel.source = "// " + step.name + ": library kernel\n" + fill(body, v);
  kernel.launch.kernel = name;
  kernel.launch.grid = std::clamp<int64_t>((total + 255) / 256, 1, 65535);
  kernel.launch.block = 256;
  kernel.launch.parameters = int64_t(step.operands.size()) + 1; // operands, then the result
  return kernel;
}

namespace {

std::map<std::string, std::string> windowValues(const WindowParams &p, const std::string &name) {
  return {{"N", ll(p.n)},         {"C", ll(p.c)},          {"H", ll(p.h)},          {"W", ll(p.w)},
          {"KH", ll(p.kh)},       {"KW", ll(p.kw)},        {"OH", ll(p.oh)},        {"OW", ll(p.ow)},
          {"SH", ll(p.strideH)},  {"SW", ll(p.strideW)},   {"PH", ll(p.padH)},      {"PW", ll(p.padW)},
          {"DH", ll(p.dilationH)}, {"DW", ll(p.dilationW)}, {"NAME", name},
          {"K", ll(p.c * p.kh * p.kw)}, {"P", ll(p.oh * p.ow)}};
}

CudaKernel libraryKernel(const std::string &name, const std::string &source, int64_t total, int64_t parameters) {
  CudaKernel kernel;
  kernel.strategy = "library";
  kernel.source = source;
  kernel.launch.kernel = name;
  kernel.launch.grid = std::clamp<int64_t>((total + 255) / 256, 1, 65535);
  kernel.launch.block = 256;
  kernel.launch.parameters = parameters;
  return kernel;
}

std::string floatName(DType t) {
  if (t == DType::F32)
    return "float";
  if (t == DType::F64)
    return "double";
  throwError("", "internal error: a convolution kernel of " + std::string(dtypeName(t)) + " (f32 and f64 only)");
}

} // namespace

CudaKernel generateIm2colKernel(const WindowParams &p, const std::string &name) {
  std::map<std::string, std::string> v = windowValues(p, name);
  int64_t total = p.n * p.c * p.kh * p.kw * p.oh * p.ow;
  v["TOTAL"] = ll(total);
  v["T"] = floatName(p.dtype);
  std::string body = R"(
    const long long q = e % $P, k = (e / $P) % $K, n = e / ($P * $K);
    const long long ow = q % $OW, oh = q / $OW, kw = k % $KW, kh = (k / $KW) % $KH, c = k / ($KW * $KH);
    const long long ih = oh * $SH - $PH + kh * $DH, iw = ow * $SW - $PW + kw * $DW;
    cols[e] = (ih < 0 || ih >= $H || iw < 0 || iw >= $W) ? (T)0 : x[((n * $C + c) * $H + ih) * $W + iw];
)";
  std::string source = "// im2col of " + std::to_string(p.n) + " images: library kernel\n" +
                       fill("extern \"C\" __global__ void __launch_bounds__(256) $NAME(const $T* x, $T* cols) {\n"
                            "  typedef $T T;\n  " + std::string(kGridLoop) + body + "  }\n}\n", v);
  return libraryKernel(name, source, total, 2);
}

CudaKernel generateCol2imKernel(const WindowParams &p, const std::string &name) {
  std::map<std::string, std::string> v = windowValues(p, name);
  int64_t total = p.n * p.c * p.h * p.w;
  v["TOTAL"] = ll(total);
  v["T"] = floatName(p.dtype);
  std::string body = R"(
    const long long iw = e % $W, ih = (e / $W) % $H, c = (e / ($W * $H)) % $C, n = e / ($W * $H * $C);
    double acc = 0.0;
    for (long long kh = 0; kh < $KH; ++kh) {
      const long long th = ih + $PH - kh * $DH;
      if (th < 0 || th % $SH != 0 || th / $SH >= $OH) continue;
      for (long long kw = 0; kw < $KW; ++kw) {
        const long long tw = iw + $PW - kw * $DW;
        if (tw < 0 || tw % $SW != 0 || tw / $SW >= $OW) continue;
        acc += (double)cols[(n * $K + (c * $KH + kh) * $KW + kw) * $P + (th / $SH) * $OW + tw / $SW];
      }
    }
    dx[e] = (T)acc;
)";
  std::string source = "// col2im of " + std::to_string(p.n) + " images: library kernel\n" +
                       fill("extern \"C\" __global__ void __launch_bounds__(256) $NAME(const $T* cols, $T* dx) {\n"
                            "  typedef $T T;\n  " + std::string(kGridLoop) + body + "  }\n}\n", v);
  return libraryKernel(name, source, total, 2);
}

CudaKernel generateBatchSumKernel(int64_t batch, int64_t elements, DType dtype, const std::string &name) {
  std::map<std::string, std::string> v{
      {"NAME", name}, {"TOTAL", ll(elements)}, {"B", ll(batch)}, {"T", floatName(dtype)}};
  std::string body = R"(
    double acc = 0.0;
    for (long long b = 0; b < $B; ++b)
      acc += (double)parts[b * $TOTAL + e];
    out[e] = (T)acc;
)";
  std::string source = "// sum of " + std::to_string(batch) + " partial products: library kernel\n" +
                       fill("extern \"C\" __global__ void __launch_bounds__(256) $NAME(const $T* parts, $T* out) {\n"
                            "  typedef $T T;\n  " + std::string(kGridLoop) + body + "  }\n}\n", v);
  return libraryKernel(name, source, elements, 2);
}

namespace {

std::map<std::string, std::string> indexValues(const IndexParams &q, const std::string &name) {
  return {{"OUTER", ll(q.outer)}, {"ROWS", ll(q.rows)}, {"INNER", ll(q.inner)}, {"IDX", ll(q.indices)},
          {"I", q.indexType == DType::I64 ? "long long" : "int"}, {"V", cudaStorageType(q.valueType)},
          {"NAME", name}};
}

} // namespace

CudaKernel generateScatterSortKernel(const IndexParams &q, const std::string &name) {
  std::map<std::string, std::string> v = indexValues(q, name);
  v["TOTAL"] = ll(q.indices);
  std::string body = R"(
    const long long key = (long long)idx[e];
    long long rank = 0;
    for (long long j = 0; j < $IDX; ++j) {
      const long long other = (long long)idx[j];
      rank += (other < key || (other == key && j < e)) ? 1 : 0;
    }
    sorted[rank] = key;
    sorted[$IDX + rank] = e;
)";
  std::string source = "// scatter_add: the indices sorted: library kernel\n" +
                       fill("extern \"C\" __global__ void __launch_bounds__(256) $NAME(const $I* idx, long long* sorted) {\n"
                            "  " + std::string(kGridLoop) + body + "  }\n}\n", v);
  return libraryKernel(name, source, q.indices, 2);
}

CudaKernel generateSortedScatterAddKernel(const IndexParams &q, const std::string &name) {
  std::map<std::string, std::string> v = indexValues(q, name);
  int64_t total = q.outer * q.rows * q.inner;
  v["TOTAL"] = ll(total);
  auto [acc, init, add, result] = scatterSum(q, "");
  std::string body = R"(
    const long long t = e % $INNER, r = (e / $INNER) % $ROWS, o = e / ($INNER * $ROWS);
    long long lo = 0, hi = $IDX;
    while (lo < hi) {
      const long long mid = (lo + hi) >> 1;
      if (sorted[mid] < r) lo = mid + 1; else hi = mid;
    }
    )" + acc + " sum = " + init + R"(;
    for (long long p = lo; p < $IDX && sorted[p] == r; ++p) {
      const long long j = sorted[$IDX + p];
      )" + add + R"(
    }
    out[e] = )" + result + ";\n";
  std::string source = "// scatter_add: sums of the sorted runs: library kernel\n" +
                       fill("extern \"C\" __global__ void __launch_bounds__(256) $NAME(const long long* sorted, const $V* upd, $V* out) {\n"
                            "  typedef $V V;\n  " + std::string(kGridLoop) + body + "  }\n}\n", v);
  return libraryKernel(name, source, total, 3);
}

} // namespace kiln
