#include "runtime/cpu/Executable.h"

#include "runtime/Error.h"
#include "runtime/Numerics.h"
#include "runtime/ProgramCheck.h"
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

} // namespace

Executable::Executable(Program program) : program_(std::move(program)) {
  checkProgram(program_, ProgramCheckOptions{true, kMaxKernelPointers});
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
  stagedUpdates_ = stagedUpdates(program_);
  for (size_t i : stagedUpdates_)
    staging_.push_back(allocateAligned<AlignedBytes>(program_.updates[i].source.bytes));
}

Executable::~Executable() = default;
Executable::Executable(Executable &&) noexcept = default;
Executable &Executable::operator=(Executable &&) noexcept = default;

uint8_t *Executable::resolve(const BufferRef &ref) const {
  uint8_t *base = ref.space == BufferRef::Space::Arena ? arena_.get()
                                                       : arguments_[size_t(ref.argument)].get();
  return base + ref.offset;
}

void Executable::setArgument(const std::string &name, const HostTensor &value) {
  size_t index = argumentIndex(program_, name);
  checkArgumentValue(program_, index, value);
  std::memcpy(arguments_[index].get(), value.data(), value.byteSize());
}

HostTensor Executable::argument(const std::string &name) const {
  size_t index = argumentIndex(program_, name);
  const ArgumentSpec &arg = program_.arguments[size_t(index)];
  HostTensor value(arg.dtype, arg.shape);
  std::memcpy(value.data(), arguments_[size_t(index)].get(), value.byteSize());
  return value;
}

void *Executable::argumentData(const std::string &name) {
  return arguments_[argumentIndex(program_, name)].get();
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
  for (size_t r = 0; r < step.resultTypes.size(); ++r) // checkProgram: one per result
    checkStepResultFinite(program_, index, r, resolve(r ? step.extraResults[r - 1] : step.result));
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
  std::vector<std::pair<size_t, const HostTensor *>> loads = matchCheckpoint(program_, tensors, path);
  for (const auto &[index, tensor] : loads)
    std::memcpy(arguments_[index].get(), tensor->data(), tensor->byteSize());
  return loads.size();
}

} // namespace cpu
} // namespace kiln
