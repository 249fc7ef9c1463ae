#include "runtime/cpu/Executable.h"

#include "runtime/Error.h"
#include "runtime/Safetensors.h"
#include "runtime/cpu/Kernels.h"
#include "runtime/cpu/Parallel.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>
#include <utility>

namespace kiln {
namespace cpu {

namespace {

constexpr size_t kAlignment = 64;

/// Calls a generated kernel with `N` pointers. One instantiation per count
/// (a table, not a switch: the same dispatch, written once).
template <size_t> using VoidPointer = void *;
template <size_t... I>
void callWithPointers(KernelFunction kernel, int64_t begin, int64_t end, void *const *pointers,
                      std::index_sequence<I...>) {
  using Function = void (*)(int64_t, int64_t, VoidPointer<I>...);
  reinterpret_cast<Function>(kernel)(begin, end, pointers[I]...);
}
using KernelCaller = void (*)(KernelFunction, int64_t, int64_t, void *const *);
template <size_t N>
void callKernel(KernelFunction kernel, int64_t begin, int64_t end, void *const *pointers) {
  callWithPointers(kernel, begin, end, pointers, std::make_index_sequence<N>());
}
template <size_t... N>
constexpr std::array<KernelCaller, sizeof...(N)> makeKernelCallers(std::index_sequence<N...>) {
  return {{&callKernel<N>...}};
}
constexpr auto kKernelCallers = makeKernelCallers(std::make_index_sequence<kMaxKernelPointers + 1>());

const char *stepKindName(StepKind kind) {
  switch (kind) {
  case StepKind::Kernel: return "kernel";
  case StepKind::Matmul: return "matmul";
  case StepKind::Conv2d: return "conv2d";
  case StepKind::Conv2dGradInput: return "conv2d_grad_input";
  case StepKind::Conv2dGradFilter: return "conv2d_grad_filter";
  case StepKind::MaxPool2d: return "max_pool2d";
  case StepKind::AvgPool2d: return "avg_pool2d";
  case StepKind::MaxPool2dGrad: return "max_pool2d_grad";
  case StepKind::AvgPool2dGrad: return "avg_pool2d_grad";
  case StepKind::Gather: return "gather";
  case StepKind::ScatterAdd: return "scatter_add";
  case StepKind::Copy: return "copy";
  }
  return "?";
}

/// The product of non-negative factors; -1 when one is negative or it overflows.
int64_t product(std::initializer_list<int64_t> factors) {
  int64_t result = 1;
  for (int64_t f : factors)
    if (f < 0 || __builtin_mul_overflow(result, f, &result))
      return -1;
  return result;
}

std::string typeString(DType dtype, const Shape &shape) {
  return std::string(dtypeName(dtype)) + shape.toString();
}

/// 64-byte aligned, zero-filled bytes (at least one alignment unit, so that
/// empty buffers still have a distinct address).
template <typename Bytes> Bytes allocateAligned(int64_t bytes) {
  size_t size = (size_t(std::max<int64_t>(bytes, 1)) + kAlignment - 1) / kAlignment * kAlignment;
  void *memory = std::aligned_alloc(kAlignment, size);
  if (!memory)
    throwError("", "cannot allocate " + std::to_string(size) + " bytes for a CPU executable");
  std::memset(memory, 0, size);
  return Bytes(static_cast<uint8_t *>(memory));
}

/// The operand and result byte sizes a library step's params imply (empty
/// when its params are invalid: `why` says how).
struct StepLayout {
  std::vector<int64_t> operandBytes;
  int64_t resultBytes = 0;
  std::string why;
};

/// Whether every value is in [low, kMaxElements]: bounds the params so that
/// the size arithmetic below cannot overflow.
bool allWithin(int64_t low, std::initializer_list<int64_t> values) {
  return std::all_of(values.begin(), values.end(),
                     [&](int64_t v) { return v >= low && v <= kMaxElements; });
}

bool fitsBlas(std::initializer_list<int64_t> dims) {
  return std::all_of(dims.begin(), dims.end(), [](int64_t d) { return d >= 0 && d <= INT_MAX; });
}

/// OH of a window op: floor((h + 2 * pad - extent) / stride) + 1, or -1 when
/// the window does not fit the padded input.
int64_t windowOutput(int64_t in, int64_t pad, int64_t extent, int64_t stride) {
  int64_t span = in + 2 * pad - extent;
  return span < 0 ? -1 : span / stride + 1;
}

StepLayout convLayout(const Step &step) {
  const WindowParams &p = step.window;
  StepLayout layout;
  if (!isFloatKernelType(p.dtype))
    layout.why = "unsupported dtype " + std::string(dtypeName(p.dtype)) + " (f32 or f64)";
  else if (p.groups < 1 || p.c % p.groups != 0 || p.o % p.groups != 0)
    layout.why = "groups must be >= 1 and divide the channels and filters";
  else if (!allWithin(1, {p.strideH, p.strideW, p.dilationH, p.dilationW, p.kh, p.kw}) ||
           !allWithin(0, {p.n, p.c, p.h, p.w, p.o, p.padH, p.padW}) ||
           !allWithin(1, {product({p.dilationH, p.kh}), product({p.dilationW, p.kw})}))
    layout.why = "invalid stride, dilation, padding or sizes";
  else if (p.oh != windowOutput(p.h, p.padH, p.dilationH * (p.kh - 1) + 1, p.strideH) ||
           p.ow != windowOutput(p.w, p.padW, p.dilationW * (p.kw - 1) + 1, p.strideW))
    layout.why = "output size does not follow from the input, filter, stride, padding and dilation";
  else if (!fitsBlas({p.o, product({p.c / p.groups, p.kh, p.kw}), product({p.oh, p.ow})}))
    layout.why = "too large for 32-bit BLAS";
  if (!layout.why.empty())
    return layout;
  int64_t es = int64_t(dtypeSize(p.dtype));
  int64_t x = product({p.n, p.c, p.h, p.w, es}), w = product({p.o, p.c / p.groups, p.kh, p.kw, es});
  int64_t y = product({p.n, p.o, p.oh, p.ow, es});
  switch (step.kind) {
  case StepKind::Conv2d: layout.operandBytes = {x, w}, layout.resultBytes = y; break;
  case StepKind::Conv2dGradInput: layout.operandBytes = {y, w}, layout.resultBytes = x; break;
  case StepKind::Conv2dGradFilter: layout.operandBytes = {x, y}, layout.resultBytes = w; break;
  default: KILN_UNREACHABLE("not a convolution");
  }
  return layout;
}

StepLayout poolLayout(const Step &step) {
  const WindowParams &p = step.window;
  StepLayout layout;
  if (!isFloatKernelType(p.dtype))
    layout.why = "unsupported dtype " + std::string(dtypeName(p.dtype)) + " (f32 or f64)";
  else if (!allWithin(1, {p.strideH, p.strideW, p.kh, p.kw}) ||
           !allWithin(0, {p.n, p.c, p.h, p.w, p.padH, p.padW}))
    layout.why = "invalid window, stride, padding or sizes";
  else if (p.oh != windowOutput(p.h, p.padH, p.kh, p.strideH) ||
           p.ow != windowOutput(p.w, p.padW, p.kw, p.strideW))
    layout.why = "output size does not follow from the input, window, stride and padding";
  if (!layout.why.empty())
    return layout;
  int64_t es = int64_t(dtypeSize(p.dtype));
  int64_t x = product({p.n, p.c, p.h, p.w, es}), y = product({p.n, p.c, p.oh, p.ow, es});
  switch (step.kind) {
  case StepKind::MaxPool2d:
  case StepKind::AvgPool2d: layout.operandBytes = {x}, layout.resultBytes = y; break;
  case StepKind::MaxPool2dGrad: layout.operandBytes = {x, y}, layout.resultBytes = x; break;
  case StepKind::AvgPool2dGrad: layout.operandBytes = {y}, layout.resultBytes = x; break;
  default: KILN_UNREACHABLE("not a pooling op");
  }
  return layout;
}

StepLayout indexLayout(const Step &step) {
  const IndexParams &p = step.index;
  StepLayout layout;
  if (!allWithin(0, {p.outer, p.rows, p.inner, p.indices}))
    layout.why = "invalid sizes";
  else if (p.indexType != DType::I32 && p.indexType != DType::I64)
    layout.why = "indices must be i32 or i64";
  else if (step.kind == StepKind::ScatterAdd && !isScatterAddValueType(p.valueType))
    layout.why = "unsupported value dtype " + std::string(dtypeName(p.valueType)) +
                 " (f32, f64, i32 or i64)";
  if (!layout.why.empty())
    return layout;
  int64_t es = int64_t(dtypeSize(p.valueType));
  int64_t table = product({p.outer, p.rows, p.inner, es});
  int64_t taken = product({p.outer, p.indices, p.inner, es});
  int64_t indices = product({p.indices, int64_t(dtypeSize(p.indexType))});
  if (step.kind == StepKind::Gather)
    layout.operandBytes = {table, indices}, layout.resultBytes = taken;
  else
    layout.operandBytes = {indices, taken}, layout.resultBytes = table;
  return layout;
}

StepLayout matmulLayout(const Step &step) {
  const MatmulParams &p = step.matmul;
  StepLayout layout;
  if (!isFloatKernelType(p.dtype))
    layout.why = "unsupported dtype " + std::string(dtypeName(p.dtype)) + " (f32 or f64)";
  else if (!allWithin(0, {p.batch, p.m, p.n, p.k}))
    layout.why = "invalid sizes";
  else if (!fitsBlas({p.m, p.n, p.k}))
    layout.why = "too large for 32-bit BLAS";
  if (!layout.why.empty())
    return layout;
  int64_t es = int64_t(dtypeSize(p.dtype));
  layout.operandBytes = {product({p.batch, p.m, p.k, es}), product({p.batch, p.k, p.n, es})};
  layout.resultBytes = product({p.batch, p.m, p.n, es});
  return layout;
}

} // namespace

Executable::Executable(Program program) : program_(std::move(program)) {
  checkProgram();
  arena_ = allocateAligned<AlignedBytes>(program_.arenaBytes);
  for (const ArgumentSpec &arg : program_.arguments) {
    argumentBytes_.push_back(arg.shape.numElements() * int64_t(dtypeSize(arg.dtype)));
    arguments_.push_back(allocateAligned<AlignedBytes>(argumentBytes_.back()));
  }
  for (const Step &step : program_.steps) {
    std::vector<void *> pointers;
    for (const BufferRef &ref : step.operands)
      pointers.push_back(resolve(ref));
    pointers.push_back(resolve(step.result));
    for (const BufferRef &ref : step.extraResults)
      pointers.push_back(resolve(ref));
    stepPointers_.push_back(std::move(pointers));
  }
  std::vector<bool> overwritten(program_.arguments.size(), false);
  for (size_t i = 0; i < program_.updates.size(); ++i) {
    const UpdateSpec &update = program_.updates[i];
    if (update.source.space == BufferRef::Space::Argument && overwritten[size_t(update.source.argument)]) {
      stagedUpdates_.push_back(i);
      staging_.push_back(allocateAligned<AlignedBytes>(update.source.bytes));
    }
    bool inPlace = update.source.space == BufferRef::Space::Argument &&
                   update.source.argument == update.argument && update.source.offset == 0;
    if (!inPlace)
      overwritten[size_t(update.argument)] = true;
  }
}

Executable::~Executable() = default;
Executable::Executable(Executable &&) noexcept = default;
Executable &Executable::operator=(Executable &&) noexcept = default;

void Executable::checkProgram() const {
  const Program &prog = program_;
  auto fail = [&](const std::string &what) { throwError(prog.name, what); };
  if (prog.arenaBytes < 0 || prog.arenaBytes > kMaxElements)
    fail("invalid arena size " + std::to_string(prog.arenaBytes));
  std::vector<int64_t> argumentBytes;
  std::map<std::string, size_t> names;
  for (const ArgumentSpec &arg : prog.arguments) {
    if (checkedNumElements(arg.shape.dims()) < 0)
      fail("argument '" + arg.name + "' has an invalid shape " + arg.shape.toString());
    if (!names.emplace(arg.name, argumentBytes.size()).second)
      fail("two arguments are named '" + arg.name + "'");
    argumentBytes.push_back(arg.shape.numElements() * int64_t(dtypeSize(arg.dtype)));
  }
  // A slice must lie inside its buffer.
  auto checkRef = [&](const BufferRef &ref, const std::string &what) {
    int64_t capacity = prog.arenaBytes;
    if (ref.space == BufferRef::Space::Argument) {
      if (ref.argument < 0 || size_t(ref.argument) >= prog.arguments.size())
        fail(what + " names argument #" + std::to_string(ref.argument) + " of " +
             std::to_string(prog.arguments.size()));
      capacity = argumentBytes[size_t(ref.argument)];
    }
    if (ref.offset < 0 || ref.bytes < 0 || ref.offset > capacity || ref.bytes > capacity - ref.offset)
      fail(what + " [" + std::to_string(ref.offset) + ", +" + std::to_string(ref.bytes) +
           ") is outside its buffer of " + std::to_string(capacity) + " bytes");
  };
  for (size_t i = 0; i < prog.steps.size(); ++i) {
    const Step &step = prog.steps[i];
    std::string where = "step " + std::to_string(i) + " '" + step.name + "' (" +
                        stepKindName(step.kind) + ")";
    for (size_t j = 0; j < step.operands.size(); ++j)
      checkRef(step.operands[j], where + ": operand " + std::to_string(j));
    checkRef(step.result, where + ": result");
    for (size_t j = 0; j < step.extraResults.size(); ++j)
      checkRef(step.extraResults[j], where + ": result " + std::to_string(j + 1));
    if (!step.extraResults.empty() && step.kind != StepKind::Kernel)
      fail(where + ": only a kernel has several results");
    if (!step.resultTypes.empty()) {
      if (step.resultTypes.size() != 1 + step.extraResults.size())
        fail(where + ": " + std::to_string(step.resultTypes.size()) + " result dtypes for " +
             std::to_string(1 + step.extraResults.size()) + " results");
      for (size_t j = 0; j < step.resultTypes.size(); ++j) {
        const BufferRef &ref = j ? step.extraResults[j - 1] : step.result;
        if (ref.bytes % int64_t(dtypeSize(step.resultTypes[j])) != 0)
          fail(where + ": result " + std::to_string(j) + " is " + std::to_string(ref.bytes) +
               " bytes, not a whole number of " + std::string(dtypeName(step.resultTypes[j])));
      }
    }
    StepLayout layout;
    switch (step.kind) {
    case StepKind::Kernel:
      if (!step.kernel)
        fail(where + ": no kernel function");
      if (step.iterations < 0 || step.iterationCost < 1)
        fail(where + ": bad iteration count " + std::to_string(step.iterations) + " x " +
             std::to_string(step.iterationCost));
      if (step.operands.size() + 1 + step.extraResults.size() > kMaxKernelPointers)
        fail(where + ": " + std::to_string(step.operands.size() + 1 + step.extraResults.size()) +
             " pointers, more than a kernel takes (" + std::to_string(kMaxKernelPointers) + ")");
      continue;
    case StepKind::Copy:
      if (step.operands.size() != 1 || step.operands[0].bytes != step.result.bytes)
        fail(where + ": a copy takes one operand of the result's size");
      continue;
    case StepKind::Matmul: layout = matmulLayout(step); break;
    case StepKind::Conv2d:
    case StepKind::Conv2dGradInput:
    case StepKind::Conv2dGradFilter: layout = convLayout(step); break;
    case StepKind::MaxPool2d:
    case StepKind::AvgPool2d:
    case StepKind::MaxPool2dGrad:
    case StepKind::AvgPool2dGrad: layout = poolLayout(step); break;
    case StepKind::Gather:
    case StepKind::ScatterAdd: layout = indexLayout(step); break;
    }
    if (!layout.why.empty())
      fail(where + ": " + layout.why);
    if (step.operands.size() != layout.operandBytes.size())
      fail(where + ": " + std::to_string(step.operands.size()) + " operands, expected " +
           std::to_string(layout.operandBytes.size()));
    for (size_t j = 0; j < step.operands.size(); ++j)
      if (layout.operandBytes[j] < 0 || step.operands[j].bytes != layout.operandBytes[j])
        fail(where + ": operand " + std::to_string(j) + " is " +
             std::to_string(step.operands[j].bytes) + " bytes, its params make " +
             std::to_string(layout.operandBytes[j]));
    if (layout.resultBytes < 0 || step.result.bytes != layout.resultBytes)
      fail(where + ": result is " + std::to_string(step.result.bytes) +
           " bytes, its params make " + std::to_string(layout.resultBytes));
  }
  for (const ResultSpec &result : prog.results) {
    std::string where = "result '" + result.name + "'";
    checkRef(result.buffer, where);
    int64_t elements = checkedNumElements(result.shape.dims());
    if (elements < 0 || result.buffer.bytes != elements * int64_t(dtypeSize(result.dtype)))
      fail(where + " is " + std::to_string(result.buffer.bytes) + " bytes, not a " +
           typeString(result.dtype, result.shape));
  }
  for (const UpdateSpec &update : prog.updates) {
    if (update.argument < 0 || size_t(update.argument) >= prog.arguments.size())
      fail("an update names argument #" + std::to_string(update.argument) + " of " +
           std::to_string(prog.arguments.size()));
    std::string where = "update of '" + prog.arguments[size_t(update.argument)].name + "'";
    checkRef(update.source, where);
    if (update.source.bytes != argumentBytes[size_t(update.argument)])
      fail(where + ": source is " + std::to_string(update.source.bytes) + " bytes, expected " +
           std::to_string(argumentBytes[size_t(update.argument)]));
  }
}

uint8_t *Executable::resolve(const BufferRef &ref) const {
  uint8_t *base = ref.space == BufferRef::Space::Arena ? arena_.get()
                                                       : arguments_[size_t(ref.argument)].get();
  return base + ref.offset;
}

int Executable::argumentIndex(const std::string &name) const {
  for (size_t i = 0; i < program_.arguments.size(); ++i)
    if (program_.arguments[i].name == name)
      return int(i);
  std::string known;
  for (size_t i = 0; i < program_.arguments.size() && i < 8; ++i)
    known += (i ? ", " : "") + program_.arguments[i].name;
  if (program_.arguments.size() > 8)
    known += ", ... (" + std::to_string(program_.arguments.size()) + " in all)";
  throwError(program_.name, "no argument named '" + name + "' (arguments: " + known + ")");
}

void Executable::setArgument(const std::string &name, const HostTensor &value) {
  int index = argumentIndex(name);
  const ArgumentSpec &arg = program_.arguments[size_t(index)];
  if (value.dtype() != arg.dtype || value.shape() != arg.shape)
    throwError(program_.name, "argument '" + name + "' expects " +
                                  typeString(arg.dtype, arg.shape) + ", got " + value.typeString());
  std::memcpy(arguments_[size_t(index)].get(), value.data(), value.byteSize());
}

HostTensor Executable::argument(const std::string &name) const {
  int index = argumentIndex(name);
  const ArgumentSpec &arg = program_.arguments[size_t(index)];
  HostTensor value(arg.dtype, arg.shape);
  std::memcpy(value.data(), arguments_[size_t(index)].get(), value.byteSize());
  return value;
}

void *Executable::argumentData(const std::string &name) {
  return arguments_[size_t(argumentIndex(name))].get();
}

void Executable::run(Profile *profile) {
  using Clock = std::chrono::steady_clock;
  Clock::time_point runStart = Clock::now();
  auto since = [](Clock::time_point t0, Clock::time_point t1) {
    return std::chrono::duration<double>(t1 - t0).count();
  };
  if (profile && profile->stepSeconds.size() < program_.steps.size())
    profile->stepSeconds.resize(program_.steps.size(), 0.0);
  if (profile && profile->trace)
    profile->lastRun.assign(program_.steps.size() + 1, {0.0, 0.0});
  for (size_t i = 0; i < program_.steps.size(); ++i) {
    if (!profile) {
      runStep(i);
      if (checkNumerics_)
        checkStepNumerics(i);
      continue;
    }
    Clock::time_point start = Clock::now();
    runStep(i);
    if (checkNumerics_)
      checkStepNumerics(i);
    Clock::time_point end = Clock::now();
    profile->stepSeconds[i] += since(start, end);
    if (profile->trace)
      profile->lastRun[i] = {since(runStart, start), since(runStart, end)};
  }
  Clock::time_point start = Clock::now();
  applyUpdates();
  if (profile) {
    Clock::time_point end = Clock::now();
    profile->updateSeconds += since(start, end);
    if (profile->trace)
      profile->lastRun.back() = {since(runStart, start), since(runStart, end)};
    ++profile->runs;
  }
}

namespace {

/// Runs a generated kernel, its outermost loop split into one contiguous
/// range per thread when there is enough work. A kernel computes each
/// iteration the same way whatever the split, so results do not depend on it.
void runKernel(const Step &step, const std::vector<void *> &ptrs) {
  KernelCaller call = kKernelCallers[ptrs.size()];
  int64_t n = step.iterations;
  int threads = availableThreads();
  if (n < 2 || threads < 2 || n * step.iterationCost < kParallelWork)
    return call(step.kernel, 0, n, ptrs.data());
  int64_t chunks = std::min<int64_t>(threads, n);
#pragma omp parallel for schedule(static) num_threads(int(chunks))
  for (int64_t c = 0; c < chunks; ++c)
    call(step.kernel, n * c / chunks, n * (c + 1) / chunks, ptrs.data());
}

} // namespace

void Executable::runStep(size_t index) {
  const Step &step = program_.steps[index];
  const std::vector<void *> &ptrs = stepPointers_[index];
  void *out = ptrs[step.operands.size()];
  bool f64 = false;
  switch (step.kind) {
  case StepKind::Kernel:
    return runKernel(step, ptrs);
  case StepKind::Copy:
    if (ptrs[0] != out)
      std::memmove(out, ptrs[0], size_t(step.result.bytes));
    return;
  case StepKind::Matmul:
    if (step.matmul.dtype == DType::F64)
      return matmul(step.matmul, static_cast<const double *>(ptrs[0]),
                    static_cast<const double *>(ptrs[1]), static_cast<double *>(out));
    return matmul(step.matmul, static_cast<const float *>(ptrs[0]),
                  static_cast<const float *>(ptrs[1]), static_cast<float *>(out));
  case StepKind::Gather:
    return gather(step.index, ptrs[0], ptrs[1], out);
  case StepKind::ScatterAdd:
    return scatterAdd(step.index, ptrs[0], ptrs[1], out);
  case StepKind::Conv2d:
  case StepKind::Conv2dGradInput:
  case StepKind::Conv2dGradFilter:
  case StepKind::MaxPool2d:
  case StepKind::AvgPool2d:
  case StepKind::MaxPool2dGrad:
  case StepKind::AvgPool2dGrad:
    f64 = step.window.dtype == DType::F64;
    break;
  }
  // The window ops, on T = float or double.
  auto window = [&](auto zero) {
    using T = decltype(zero);
    const WindowParams &p = step.window;
    const T *a = static_cast<const T *>(ptrs[0]);
    const T *b = ptrs.size() > 2 ? static_cast<const T *>(ptrs[1]) : nullptr;
    T *y = static_cast<T *>(out);
    switch (step.kind) {
    case StepKind::Conv2d: return conv2d(p, a, b, y);
    case StepKind::Conv2dGradInput: return conv2dGradInput(p, a, b, y);
    case StepKind::Conv2dGradFilter: return conv2dGradFilter(p, a, b, y);
    case StepKind::MaxPool2d: return maxPool2d(p, a, y);
    case StepKind::AvgPool2d: return avgPool2d(p, a, y);
    case StepKind::MaxPool2dGrad: return maxPool2dGrad(p, a, b, y);
    case StepKind::AvgPool2dGrad: return avgPool2dGrad(p, a, y);
    default: KILN_UNREACHABLE("not a window op");
    }
  };
  if (f64)
    window(0.0);
  else
    window(0.0f);
}

void Executable::checkStepNumerics(size_t index) const {
  const Step &step = program_.steps[index];
  for (size_t r = 0; r < step.resultTypes.size(); ++r) { // checkProgram: one per result
    DType dtype = step.resultTypes[r];
    const BufferRef &ref = r ? step.extraResults[r - 1] : step.result;
    const uint8_t *data = resolve(ref);
    int64_t bad = firstNonFinite(dtype, data, ref.bytes / int64_t(dtypeSize(dtype)));
    if (bad < 0)
      continue;
    std::string what = step.what.empty() ? "step " + step.name : step.what;
    if (step.extraResults.size() > 0)
      what += " (result " + std::to_string(r) + ")";
    throwError(step.where.empty() ? "@" + program_.name : step.where,
               what + " produced " + nonFiniteName(dtype, data, bad) + " at element " +
                   std::to_string(bad) + " (check-numerics)");
  }
}

namespace {

/// The bits of a float format: `Bits` its storage, exponent and mantissa masks.
template <typename Bits, Bits kExponent, Bits kMantissa, Bits kSign> struct FloatBits {
  static Bits at(const void *data, int64_t i) {
    Bits b;
    std::memcpy(&b, static_cast<const uint8_t *>(data) + i * int64_t(sizeof(Bits)), sizeof b);
    return b;
  }
  static int64_t first(const void *data, int64_t n) {
    const Bits *p = static_cast<const Bits *>(data);
    for (int64_t i = 0; i < n; ++i)
      if ((p[i] & kExponent) == kExponent)
        return i;
    return -1;
  }
  static const char *name(const void *data, int64_t i) {
    Bits b = at(data, i);
    return (b & kMantissa) ? "nan" : (b & kSign) ? "-inf" : "inf";
  }
};
using F32Bits = FloatBits<uint32_t, 0x7F800000u, 0x007FFFFFu, 0x80000000u>;
using F64Bits = FloatBits<uint64_t, 0x7FF0000000000000ull, 0x000FFFFFFFFFFFFFull,
                          0x8000000000000000ull>;
using BF16Bits = FloatBits<uint16_t, 0x7F80, 0x007F, 0x8000>;
using F16Bits = FloatBits<uint16_t, 0x7C00, 0x03FF, 0x8000>;

} // namespace

int64_t firstNonFinite(DType dtype, const void *data, int64_t elements) {
  switch (dtype) {
  case DType::F32: return F32Bits::first(data, elements);
  case DType::F64: return F64Bits::first(data, elements);
  case DType::BF16: return BF16Bits::first(data, elements);
  case DType::F16: return F16Bits::first(data, elements);
  default: return -1;
  }
}

const char *nonFiniteName(DType dtype, const void *data, int64_t index) {
  switch (dtype) {
  case DType::F32: return F32Bits::name(data, index);
  case DType::F64: return F64Bits::name(data, index);
  case DType::BF16: return BF16Bits::name(data, index);
  case DType::F16: return F16Bits::name(data, index);
  default: return "finite";
  }
}

void Executable::applyUpdates() {
  for (size_t s = 0; s < stagedUpdates_.size(); ++s) {
    const BufferRef &source = program_.updates[stagedUpdates_[s]].source;
    std::memcpy(staging_[s].get(), resolve(source), size_t(source.bytes));
  }
  size_t nextStaged = 0;
  for (size_t i = 0; i < program_.updates.size(); ++i) {
    const UpdateSpec &update = program_.updates[i];
    const uint8_t *source = resolve(update.source);
    if (nextStaged < stagedUpdates_.size() && stagedUpdates_[nextStaged] == i)
      source = staging_[nextStaged++].get();
    uint8_t *target = arguments_[size_t(update.argument)].get();
    if (source != target) // else the plan wrote it in place
      std::memmove(target, source, size_t(update.source.bytes));
  }
}

HostTensor Executable::result(size_t i) const {
  if (i >= program_.results.size())
    throwError(program_.name, "no result #" + std::to_string(i) + " (" +
                                  std::to_string(program_.results.size()) + " results)");
  const ResultSpec &spec = program_.results[i];
  HostTensor value(spec.dtype, spec.shape);
  std::memcpy(value.data(), resolve(spec.buffer), value.byteSize());
  return value;
}

HostTensor Executable::result(const std::string &name) const {
  for (size_t i = 0; i < program_.results.size(); ++i)
    if (program_.results[i].name == name)
      return result(i);
  throwError(program_.name, "no result named '" + name + "'");
}

void Executable::saveArguments(const std::string &path, const std::vector<ArgumentRole> &roles) const {
  TensorMap tensors;
  for (const ArgumentSpec &arg : program_.arguments)
    if (std::find(roles.begin(), roles.end(), arg.role) != roles.end())
      tensors.emplace(arg.name, argument(arg.name));
  writeSafetensors(path, tensors);
}

size_t Executable::loadArguments(const std::string &path) {
  TensorMap tensors = readSafetensors(path);
  std::vector<std::pair<size_t, const HostTensor *>> loads;
  for (const auto &[name, tensor] : tensors) {
    auto arg = std::find_if(program_.arguments.begin(), program_.arguments.end(),
                            [&](const ArgumentSpec &a) { return a.name == name; });
    if (arg == program_.arguments.end())
      throwError(path, "tensor '" + name + "' names no argument of " +
                           (program_.name.empty() ? "the program" : "'" + program_.name + "'"));
    if (tensor.dtype() != arg->dtype || tensor.shape() != arg->shape)
      throwError(path, "tensor '" + name + "' is " + tensor.typeString() + ", the argument is " +
                           typeString(arg->dtype, arg->shape));
    loads.emplace_back(size_t(arg - program_.arguments.begin()), &tensor);
  }
  for (const auto &[index, tensor] : loads)
    std::memcpy(arguments_[index].get(), tensor->data(), tensor->byteSize());
  return loads.size();
}

std::string formatProfile(const Program &program, const Profile &profile) {
  double runs = double(std::max<int64_t>(profile.runs, 1)), total = profile.updateSeconds;
  for (double s : profile.stepSeconds)
    total += s;
  std::vector<size_t> order(std::min(profile.stepSeconds.size(), program.steps.size()));
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return profile.stepSeconds[a] > profile.stepSeconds[b];
  });
  std::string text;
  char line[256];
  std::snprintf(line, sizeof line, "%lld runs, %.3f ms per run\n", (long long)profile.runs,
                total / runs * 1e3);
  text += line;
  auto row = [&](double seconds, const std::string &label) {
    std::snprintf(line, sizeof line, "%10.3f ms %5.1f%%  %s\n", seconds / runs * 1e3,
                  total > 0 ? 100 * seconds / total : 0.0, label.c_str());
    text += line;
  };
  for (size_t i : order)
    row(profile.stepSeconds[i], "#" + std::to_string(i) + " " +
                                    stepKindName(program.steps[i].kind) + " " +
                                    program.steps[i].name);
  row(profile.updateSeconds, "updates");
  // The same time by kind of entry, largest first.
  std::map<std::string, std::pair<double, int>> byKind;
  for (size_t i : order) {
    auto &[kindSeconds, count] = byKind[stepKindName(program.steps[i].kind)];
    kindSeconds += profile.stepSeconds[i];
    ++count;
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> kinds(byKind.begin(), byKind.end());
  std::stable_sort(kinds.begin(), kinds.end(),
                   [](const auto &a, const auto &b) { return a.second.first > b.second.first; });
  text += "by kind:\n";
  for (const auto &[kind, total] : kinds)
    row(total.first, kind + " (" + std::to_string(total.second) + " entries)");
  return text;
}

namespace {

/// A step's sizes, as the args of its trace event.
nlohmann::ordered_json traceArgs(size_t index, const Step &step) {
  nlohmann::ordered_json args{{"step", index}};
  const WindowParams &w = step.window;
  auto dims = [](std::initializer_list<int64_t> d) { return std::vector<int64_t>(d); };
  switch (step.kind) {
  case StepKind::Kernel:
    args["iterations"] = step.iterations;
    args["per_iteration"] = step.iterationCost;
    break;
  case StepKind::Matmul:
    args["batch"] = step.matmul.batch, args["m"] = step.matmul.m;
    args["n"] = step.matmul.n, args["k"] = step.matmul.k;
    break;
  case StepKind::Gather:
  case StepKind::ScatterAdd:
  case StepKind::Copy:
    args["bytes"] = step.result.bytes;
    break;
  default: // the window ops: NCHW input and output, the window
    args["input"] = dims({w.n, w.c, w.h, w.w});
    args["output"] = dims({w.n, w.o, w.oh, w.ow});
    args["window"] = dims({w.kh, w.kw});
    break;
  }
  return args;
}

} // namespace

std::string formatChromeTrace(const Program &program, const Profile &profile) {
  using Json = nlohmann::ordered_json;
  Json events = Json::array();
  events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 1},
                    {"args", {{"name", "kiln @" + program.name}}}});
  auto event = [&](const std::string &name, const char *kind, std::pair<double, double> span,
                   Json args) {
    events.push_back({{"name", name}, {"cat", kind}, {"ph", "X"}, {"pid", 1}, {"tid", 1},
                      {"ts", span.first * 1e6}, {"dur", (span.second - span.first) * 1e6},
                      {"args", std::move(args)}});
  };
  size_t steps = std::min(program.steps.size(), profile.lastRun.size());
  for (size_t i = 0; i < steps; ++i)
    event(program.steps[i].name, stepKindName(program.steps[i].kind), profile.lastRun[i],
          traceArgs(i, program.steps[i]));
  if (profile.lastRun.size() == program.steps.size() + 1)
    event("updates", "updates", profile.lastRun.back(), Json{{"updates", program.updates.size()}});
  Json trace{{"displayTimeUnit", "ms"},
             {"otherData", {{"program", program.name}}},
             {"traceEvents", std::move(events)}};
  return trace.dump(1) + "\n";
}

} // namespace cpu
} // namespace kiln
