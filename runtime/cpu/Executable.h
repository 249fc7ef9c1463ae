// A Program run on the CPU: one arena, one persistent buffer per argument, the
// steps in order, then the updates.
#pragma once

#include "runtime/Numerics.h"
#include "runtime/Profile.h"
#include "runtime/Program.h"
#include "runtime/Tensor.h"

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace kiln {
namespace cpu {

/// The most pointers (operands + result) a generated kernel takes.
inline constexpr size_t kMaxKernelPointers = 32;

/// Executes a Program whose Kernel steps have their function pointers filled
/// in (JIT or AOT). Construction checks the whole Program: every buffer slice
/// inside its buffer, operand counts and byte sizes against each library
/// step's params, dtypes the kernels support; any defect is a kiln::Error, so
/// `run` never reads or writes outside its buffers (given correct kernels).
///
/// Arguments start as zeros and keep their values between runs: `run` reads
/// inputs, params and state from them and writes `updates` back into them.
/// Results are read after the updates: a result planned in an updated
/// argument's buffer reads the new value.
///
/// Results are bitwise deterministic from run to run with the same thread
/// count (runtime/cpu/Threads.h), given deterministic kernels.
class Executable {
public:
  explicit Executable(Program program);
  ~Executable();
  Executable(Executable &&) noexcept;
  Executable &operator=(Executable &&) noexcept;
  Executable(const Executable &) = delete;
  Executable &operator=(const Executable &) = delete;

  const Program &program() const { return program_; }

  /// Copies `value` into the argument's buffer; a missing name, or a dtype or
  /// shape other than the argument's, is a kiln::Error naming both types.
  void setArgument(const std::string &name, const HostTensor &value);
  /// A copy of the argument's current value.
  HostTensor argument(const std::string &name) const;
  /// The argument's buffer (its spec's dtype and shape, 64-byte aligned), to
  /// feed or read without a copy. Valid for the Executable's lifetime.
  void *argumentData(const std::string &name);

  /// Runs the steps in order, then applies the updates. With `profile`, adds
  /// each step's wall time to it.
  ///
  /// With checkNumerics set, every float result of each step (its `result`
  /// and `extraResults`, of the dtypes in `Step::resultTypes`) is scanned
  /// after the step, and the first NaN or infinity stops the run before the
  /// next step (and before the updates) with a kiln::Error located at the
  /// step's `where`: `a.kir:4:10: error: fusion (neg, exp) produced inf at
  /// element 1 (check-numerics)`. Off by default (one branch per step).
  void run(Profile *profile = nullptr);
  void setCheckNumerics(bool on) { checkNumerics_ = on; }
  bool checkNumerics() const { return checkNumerics_; }

  size_t numResults() const { return program_.results.size(); }
  /// A copy of result `i` (or the one named `name`) of the last run.
  HostTensor result(size_t i) const;
  HostTensor result(const std::string &name) const;

  /// Writes the arguments of the given roles to a safetensors file, by name;
  /// the write is atomic (a temporary file renamed over `path`).
  void saveArguments(const std::string &path,
                     const std::vector<ArgumentRole> &roles = {ArgumentRole::Param,
                                                               ArgumentRole::State}) const;
  /// Reads a safetensors file into the arguments of the same names. Every
  /// tensor must name an argument and have its dtype and shape, or nothing is
  /// loaded (kiln::Error naming the file and tensor); arguments the file does
  /// not name keep their values. Returns how many were loaded.
  size_t loadArguments(const std::string &path);

private:
  struct FreeBytes {
    void operator()(void *p) const { std::free(p); }
  };
  using AlignedBytes = std::unique_ptr<uint8_t, FreeBytes>;

  uint8_t *resolve(const BufferRef &ref) const;
  void runStep(size_t index);
  void checkStepNumerics(size_t index) const;
  void applyUpdates();

  Program program_;
  AlignedBytes arena_;
  std::vector<AlignedBytes> arguments_;
  std::vector<int64_t> argumentBytes_;
  /// Per step: operand pointers, then the result's.
  std::vector<std::vector<void *>> stepPointers_;
  /// Updates whose source is an argument that an earlier update overwrites:
  /// their source is copied here before any update is applied.
  std::vector<size_t> stagedUpdates_;
  std::vector<AlignedBytes> staging_;
  bool checkNumerics_ = false;
};

} // namespace cpu
} // namespace kiln
