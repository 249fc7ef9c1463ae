#include "runtime/cuda/Executable.h"

#include "runtime/Error.h"
#include "runtime/Numerics.h"
#include "runtime/ProgramCheck.h"
#include "runtime/Safetensors.h"

#include <algorithm>
#include <map>
#include <set>

namespace kiln {
namespace cuda {

namespace {

/// The most pointers a generated CUDA kernel takes (as on the CPU: the fuse
/// pass caps a kernel's buffers).
constexpr size_t kMaxKernelPointers = 32;

/// The largest power of two dividing `value`, at most 256 (0 counts as 256).
uint32_t alignmentOf(uint64_t value) {
  uint64_t low = value & (~value + 1);
  return uint32_t(low == 0 || low > 256 ? 256 : low);
}

std::string stepWhere(const Program &program, size_t index) {
  const Step &step = program.steps[index];
  return "step " + std::to_string(index) + " '" + step.name + "' (" + stepKindName(step.kind) + ")";
}

} // namespace

Executable::Executable(CudaProgram program, std::shared_ptr<Device> device, ExecutableOptions options)
    : program_(std::move(program)), device_(std::move(device)), options_(options) {
  const Program &prog = program_.program;
  checkProgram(prog, ProgramCheckOptions{false, kMaxKernelPointers, true});
  checkLaunches();
  try {
    arena_ = device_->allocate(prog.arenaBytes);
    deviceBytes_ += std::max<int64_t>(prog.arenaBytes, 1);
    for (const ArgumentSpec &arg : prog.arguments) {
      arguments_.push_back(device_->allocate(argumentBytes(arg)));
      device_->fill(arguments_.back(), 0, std::max<int64_t>(argumentBytes(arg), 1));
      deviceBytes_ += std::max<int64_t>(argumentBytes(arg), 1);
    }
    stagedUpdates_ = stagedUpdates(prog);
    for (size_t i : stagedUpdates_) {
      staging_.push_back(device_->allocate(prog.updates[i].source.bytes));
      deviceBytes_ += std::max<int64_t>(prog.updates[i].source.bytes, 1);
    }
    std::map<std::string, KernelHandle> byName;
    for (const CudaModule &module : program_.modules) {
      modules_.push_back(device_->loadModule(module));
      for (const std::string &name : module.kernels)
        byName[name] = device_->kernel(modules_.back(), name);
    }
    for (size_t s = 0; s < prog.steps.size(); ++s) {
      const Step &step = prog.steps[s];
      std::vector<DevicePtr> pointers;
      for (const BufferRef &ref : step.operands)
        pointers.push_back(resolve(ref));
      pointers.push_back(resolve(step.result));
      for (const BufferRef &ref : step.extraResults)
        pointers.push_back(resolve(ref));
      const CudaLaunch &launch = program_.launches[s];
      kernels_.push_back(launch.kernel.empty() ? 0 : byName.at(launch.kernel));
      for (DevicePtr ptr : pointers)
        if (launch.alignment > 1 && ptr % DevicePtr(launch.alignment) != 0)
          throwError(prog.name, stepWhere(prog, s) + ": kernel '" + launch.kernel + "' needs " +
                                    std::to_string(launch.alignment) + "-byte aligned buffers, one is at offset " +
                                    std::to_string(ptr % 256) + " mod 256");
      MatmulHandle matmul = 0;
      if (step.kind == StepKind::Matmul) {
        const MatmulParams &p = step.matmul;
        uint32_t alignment = 256;
        for (DevicePtr ptr : pointers)
          alignment = std::min(alignment, alignmentOf(ptr));
        int64_t es = int64_t(dtypeSize(p.dtype));
        if (p.batch > 1)
          for (int64_t stride : {p.broadcastA ? 256 : p.m * p.k * es, p.k * p.n * es, p.m * p.n * es})
            alignment = std::min(alignment, alignmentOf(uint64_t(stride)));
        // An empty product is no call; k = 0 is zeros (cuBLASLt is not asked either).
        if (p.batch * p.m * p.n > 0 && p.k > 0) {
          try {
            matmul = device_->prepareMatmul(p, alignment, p.biasEpilogue ? pointers[2] : 0);
          } catch (const Error &) {
            if (!p.broadcastA || p.batch < 2)
              throw;
            // No batched algorithm with a shared A: one GEMM per batch.
            MatmulParams one = p;
            one.batch = 1, one.broadcastA = false;
            matmul = device_->prepareMatmul(one, alignment, 0);
            unbatched_.insert(s);
          }
        }
      }
      matmuls_.push_back(matmul);
      pointers_.push_back(std::move(pointers));
    }
    device_->synchronize();
  } catch (...) {
    release();
    throw;
  }
}

Executable::~Executable() {
  try {
    device_->synchronize();
  } catch (const Error &) {
    // A failed run was reported (or will never be read): free the memory anyway.
  }
  release();
}

void Executable::release() noexcept {
  for (EventHandle e : events_)
    device_->releaseEvent(e);
  events_.clear();
  if (graph_)
    device_->releaseGraph(graph_);
  for (MatmulHandle m : matmuls_)
    if (m)
      device_->releaseMatmul(m);
  for (ModuleHandle m : modules_)
    device_->unloadModule(m);
  for (DevicePtr p : staging_)
    device_->release(p);
  for (DevicePtr p : arguments_)
    device_->release(p);
  if (arena_)
    device_->release(arena_);
  graph_ = 0, arena_ = 0;
  matmuls_.clear(), modules_.clear(), staging_.clear(), arguments_.clear();
}

void Executable::checkLaunches() const {
  const Program &prog = program_.program;
  if (program_.launches.size() != prog.steps.size())
    throwError(prog.name, std::to_string(program_.launches.size()) + " launches for " +
                              std::to_string(prog.steps.size()) + " steps");
  std::set<std::string> defined;
  for (const CudaModule &module : program_.modules)
    defined.insert(module.kernels.begin(), module.kernels.end());
  for (size_t s = 0; s < prog.steps.size(); ++s) {
    const Step &step = prog.steps[s];
    const CudaLaunch &launch = program_.launches[s];
    bool needsKernel = step.kind != StepKind::Matmul && step.kind != StepKind::Copy;
    if (needsKernel != !launch.kernel.empty())
      throwError(prog.name, stepWhere(prog, s) + (needsKernel ? ": no kernel to launch" : ": launches a kernel"));
    if (!needsKernel)
      continue;
    if (!defined.count(launch.kernel))
      throwError(prog.name, stepWhere(prog, s) + ": kernel '" + launch.kernel + "' is in no module");
    int64_t pointers = int64_t(step.operands.size() + 1 + step.extraResults.size());
    if (launch.parameters != pointers)
      throwError(prog.name, stepWhere(prog, s) + ": kernel '" + launch.kernel + "' takes " +
                                std::to_string(launch.parameters) + " pointers, the step passes " +
                                std::to_string(pointers));
    if (launch.grid < 0 || launch.grid > INT32_MAX || launch.block < 1 || launch.block > 1024 ||
        launch.sharedBytes < 0 || launch.sharedBytes > (int64_t(1) << 20) || launch.alignment < 1 ||
        launch.alignment > 256 || (launch.alignment & (launch.alignment - 1)) != 0)
      throwError(prog.name, stepWhere(prog, s) + ": bad launch: grid " + std::to_string(launch.grid) + ", block " +
                                std::to_string(launch.block) + ", shared " + std::to_string(launch.sharedBytes));
  }
}

DevicePtr Executable::resolve(const BufferRef &ref) const {
  DevicePtr base = ref.space == BufferRef::Space::Arena ? arena_ : arguments_[size_t(ref.argument)];
  return base + DevicePtr(ref.offset);
}

void Executable::setArgument(const std::string &name, const HostTensor &value) {
  size_t index = argumentIndex(program_.program, name);
  checkArgumentValue(program_.program, index, value);
  device_->copyToDevice(arguments_[index], value.data(), int64_t(value.byteSize()));
}

HostTensor Executable::argument(const std::string &name) const {
  size_t index = argumentIndex(program_.program, name);
  const ArgumentSpec &arg = program_.program.arguments[index];
  HostTensor value(arg.dtype, arg.shape);
  device_->copyToHost(value.data(), arguments_[index], int64_t(value.byteSize()));
  return value;
}

void Executable::queueStep(size_t index) {
  const Step &step = program_.program.steps[index];
  const std::vector<DevicePtr> &pointers = pointers_[index];
  switch (step.kind) {
  case StepKind::Matmul:
    if (matmuls_[index] && unbatched_.count(index)) {
      const MatmulParams &p = step.matmul;
      DevicePtr es = dtypeSize(p.dtype);
      for (int64_t b = 0; b < p.batch; ++b)
        device_->matmul(matmuls_[index], pointers[0], pointers[1] + DevicePtr(b * p.k * p.n) * es,
                        pointers[2] + DevicePtr(b * p.m * p.n) * es);
    } else if (matmuls_[index]) {
      device_->matmul(matmuls_[index], pointers[0], pointers[1], pointers[step.operands.size()]);
    } else {
      device_->fill(pointers[step.operands.size()], 0, step.result.bytes);
      if (step.matmul.biasEpilogue) // k = 0: the bias alone
        for (int64_t row = 0; row < step.matmul.m; ++row)
          device_->copyOnDevice(pointers[3] + DevicePtr(row * step.matmul.n) * dtypeSize(step.matmul.dtype), pointers[2],
                                step.matmul.n * int64_t(dtypeSize(step.matmul.dtype)));
    }
    return;
  case StepKind::Copy:
    if (step.result.bytes > 0 && pointers[1] != pointers[0])
      device_->copyOnDevice(pointers[1], pointers[0], step.result.bytes);
    return;
  default:
    if (program_.launches[index].grid > 0)
      device_->launch(kernels_[index], program_.launches[index], pointers);
    return;
  }
}

void Executable::queueUpdates() {
  const Program &prog = program_.program;
  for (size_t s = 0; s < stagedUpdates_.size(); ++s) {
    const BufferRef &source = prog.updates[stagedUpdates_[s]].source;
    device_->copyOnDevice(staging_[s], resolve(source), source.bytes);
  }
  size_t nextStaged = 0;
  for (size_t i = 0; i < prog.updates.size(); ++i) {
    const UpdateSpec &update = prog.updates[i];
    DevicePtr source = resolve(update.source);
    if (nextStaged < stagedUpdates_.size() && stagedUpdates_[nextStaged] == i)
      source = staging_[nextStaged++];
    DevicePtr target = arguments_[size_t(update.argument)];
    if (source != target && update.source.bytes > 0) // else the plan wrote it in place
      device_->copyOnDevice(target, source, update.source.bytes);
  }
}

void Executable::runProfiled(Profile &profile) {
  const Program &prog = program_.program;
  size_t n = prog.steps.size();
  while (events_.size() < n + 2)
    events_.push_back(device_->createEvent());
  device_->recordEvent(events_[0]);
  for (size_t s = 0; s < n; ++s) {
    queueStep(s);
    device_->recordEvent(events_[s + 1]);
  }
  queueUpdates();
  device_->recordEvent(events_[n + 1]);
  device_->synchronize();
  profile.stepSeconds.resize(n, 0.0);
  if (profile.trace)
    profile.lastRun.assign(n + 1, {0.0, 0.0});
  for (size_t s = 0; s <= n; ++s) {
    double seconds = device_->elapsedMilliseconds(events_[s], events_[s + 1]) * 1e-3;
    (s < n ? profile.stepSeconds[s] : profile.updateSeconds) += seconds;
    if (profile.trace)
      profile.lastRun[s] = {device_->elapsedMilliseconds(events_[0], events_[s]) * 1e-3,
                            device_->elapsedMilliseconds(events_[0], events_[s + 1]) * 1e-3};
  }
  ++profile.runs;
}

void Executable::run(Profile *profile) {
  const Program &prog = program_.program;
  if (profile && runs_ > 0 && !checkNumerics_) {
    runProfiled(*profile);
  } else if (runs_ == 0 || checkNumerics_) {
    // Eagerly, one step at a time: a failing kernel is named here, and lazy
    // loading happens outside any capture.
    for (size_t s = 0; s < prog.steps.size(); ++s) {
      queueStep(s);
      try {
        device_->synchronize();
      } catch (const Error &e) {
        throwError(prog.name, stepWhere(prog, s) + ": " + e.what());
      }
      if (checkNumerics_)
        checkStepNumerics(s);
    }
    queueUpdates();
  } else if (!options_.graph) {
    for (size_t s = 0; s < prog.steps.size(); ++s)
      queueStep(s);
    queueUpdates();
  } else {
    if (!graph_) {
      device_->beginCapture();
      try {
        for (size_t s = 0; s < prog.steps.size(); ++s)
          queueStep(s);
        queueUpdates();
      } catch (...) {
        device_->abortCapture(); // the first error is the one to report
        throw;
      }
      graph_ = device_->endCapture();
    }
    device_->launchGraph(graph_);
  }
  ++runs_;
}

void Executable::synchronize() { device_->synchronize(); }

void Executable::checkStepNumerics(size_t index) const {
  const Step &step = program_.program.steps[index];
  std::vector<uint8_t> host;
  for (size_t r = 0; r < step.resultTypes.size(); ++r) {
    const BufferRef &ref = r ? step.extraResults[r - 1] : step.result;
    host.resize(size_t(std::max<int64_t>(ref.bytes, 1)));
    device_->copyToHost(host.data(), resolve(ref), ref.bytes);
    checkStepResultFinite(program_.program, index, r, host.data());
  }
}

HostTensor Executable::result(size_t i) const {
  const Program &prog = program_.program;
  if (i >= prog.results.size())
    throwError(prog.name, "no result #" + std::to_string(i) + " (" + std::to_string(prog.results.size()) + " results)");
  const ResultSpec &spec = prog.results[i];
  HostTensor value(spec.dtype, spec.shape);
  device_->copyToHost(value.data(), resolve(spec.buffer), int64_t(value.byteSize()));
  return value;
}

HostTensor Executable::result(const std::string &name) const {
  const Program &prog = program_.program;
  for (size_t i = 0; i < prog.results.size(); ++i)
    if (prog.results[i].name == name)
      return result(i);
  throwError(prog.name, "no result named '" + name + "'");
}

void Executable::saveArguments(const std::string &path, const std::vector<ArgumentRole> &roles) const {
  TensorMap tensors;
  for (const ArgumentSpec &arg : program_.program.arguments)
    if (std::find(roles.begin(), roles.end(), arg.role) != roles.end())
      tensors.emplace(arg.name, argument(arg.name));
  writeSafetensors(path, tensors);
}

size_t Executable::loadArguments(const std::string &path) {
  TensorMap tensors = readSafetensors(path);
  std::vector<std::pair<size_t, const HostTensor *>> loads = matchCheckpoint(program_.program, tensors, path);
  for (const auto &[index, tensor] : loads)
    device_->copyToDevice(arguments_[index], tensor->data(), int64_t(tensor->byteSize()));
  return loads.size();
}

} // namespace cuda
} // namespace kiln
