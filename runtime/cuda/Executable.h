// A CudaProgram run on a GPU: one device arena for every planned value,
// one persistent device buffer per argument (params, optimizer state,
// inputs), the kernels launched and the matmuls run by cuBLASLt on one
// stream, and the whole step (steps and updates) captured once as a CUDA
// graph and replayed.
#pragma once

#include "runtime/Profile.h"
#include "runtime/Program.h"
#include "runtime/Tensor.h"
#include "runtime/cuda/CudaProgram.h"
#include "runtime/cuda/Device.h"

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace kiln {
namespace cuda {

struct ExecutableOptions {
  /// Capture the step as a CUDA graph on the second run and replay it from
  /// then on; false: launch every kernel every run.
  bool graph = true;
};

/// Executes a CudaProgram whose modules are compiled for the device
/// (compileForCuda). Construction checks the Program as the CPU Executable
/// does (runtime/ProgramCheck.h) and every launch against the modules, loads
/// the modules, allocates every buffer and prepares every matmul: after it,
/// a run allocates nothing.
///
/// The first run launches the steps one by one and waits after each, so a
/// failing kernel is named (`step 12 '%5 fusion': ...`); with graphs on, the
/// second run captures the steps and updates as a graph and every later run
/// replays it. Runs are queued: result(), argument() and synchronize() wait.
///
/// Arguments start as zeros and keep their values between runs, as on the
/// CPU; setArgument copies host values in (feeds), result() copies out.
class Executable {
public:
  Executable(CudaProgram program, std::shared_ptr<Device> device, ExecutableOptions options = {});
  ~Executable();
  Executable(const Executable &) = delete;
  Executable &operator=(const Executable &) = delete;

  const Program &program() const { return program_.program; }
  Device &device() { return *device_; }

  /// Copies `value` into the argument's device buffer; a missing name, or a
  /// dtype or shape other than the argument's, is a kiln::Error.
  void setArgument(const std::string &name, const HostTensor &value);
  /// A copy of the argument's current value (waits for queued runs).
  HostTensor argument(const std::string &name) const;

  /// Queues one step (see the class comment). With `profile`, the run
  /// launches step by step with a CUDA event between steps (not the graph:
  /// the graph's kernels cannot be timed one by one), waits, and adds each
  /// step's GPU time to `profile` (`kiln run --target=cuda --profile`).
  void run(Profile *profile = nullptr);
  /// With check-numerics on, every run is eager: after each step, its float
  /// results (`Step::resultTypes`) are copied to the host and scanned, and the
  /// first NaN or infinity stops the run (before the updates) with the CPU
  /// backend's located error (runtime/Numerics.h). Off by default.
  void setCheckNumerics(bool on) { checkNumerics_ = on; }
  /// Waits for every queued run; a kiln::Error when one failed.
  void synchronize();
  /// Runs so far, and whether the next run replays the captured graph.
  int64_t runs() const { return runs_; }
  bool replaying() const { return graph_ != 0; }

  size_t numResults() const { return program_.program.results.size(); }
  /// A copy of result `i` (or the one named `name`) of the last run (waits).
  HostTensor result(size_t i) const;
  HostTensor result(const std::string &name) const;

  /// As the CPU Executable's: safetensors of the arguments of these roles,
  /// written atomically; loadArguments checks every tensor before loading any.
  void saveArguments(const std::string &path,
                     const std::vector<ArgumentRole> &roles = {ArgumentRole::Param, ArgumentRole::State}) const;
  size_t loadArguments(const std::string &path);

  /// Device bytes this executable holds: arena, arguments, update staging.
  int64_t deviceBytes() const { return deviceBytes_; }

private:
  DevicePtr resolve(const BufferRef &ref) const;
  void checkLaunches() const;
  /// Queues step `index`.
  void queueStep(size_t index);
  void queueUpdates();
  void checkStepNumerics(size_t index) const;
  void runProfiled(Profile &profile);
  void release() noexcept;

  CudaProgram program_;
  std::shared_ptr<Device> device_;
  ExecutableOptions options_;
  DevicePtr arena_ = 0;
  std::vector<DevicePtr> arguments_;
  std::vector<ModuleHandle> modules_;
  /// Per step: its kernel (0: none), its matmul plan (0: none), and its
  /// pointers (operands, then the results).
  std::vector<KernelHandle> kernels_;
  std::vector<MatmulHandle> matmuls_;
  /// Matmul steps with a shared A that run as one GEMM per batch (the device
  /// had no batched algorithm for them).
  std::set<size_t> unbatched_;
  std::vector<std::vector<DevicePtr>> pointers_;
  std::vector<size_t> stagedUpdates_;
  std::vector<DevicePtr> staging_;
  GraphHandle graph_ = 0;
  int64_t runs_ = 0;
  int64_t deviceBytes_ = 0;
  bool checkNumerics_ = false;
  std::vector<EventHandle> events_; // profiling: one before the steps, one after each, one after the updates
};

} // namespace cuda
} // namespace kiln
