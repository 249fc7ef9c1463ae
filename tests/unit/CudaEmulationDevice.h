// A cuda::Device without a GPU, for the tests: the generated CUDA C++ of
// every kernel compiled as host C++ with a shim that emulates the CUDA
// features it uses (thread and block indices, __syncthreads as a barrier of
// one std::thread per CUDA thread, __shfl_xor_sync through a shared slot
// array, static __shared__ arrays), matmuls as plain loops with double sums,
// device memory as host memory filled with garbage, and stream capture as a
// recorded list of operations replayed by launchGraph. It enforces CUDA's
// capture rules: no allocation, synchronous copy or synchronization while
// capturing (a kiln::Error, as the real capture would be invalidated).
//
// It checks the code generator's index arithmetic, reduction strategies and
// semantics and the runtime's logic (buffers, launches, updates, graphs); not
// NVRTC's device math functions (exp, tanh, ... are the host's here) nor timing.
#pragma once

#ifdef KILN_HAVE_CUDA

#include "runtime/cuda/Device.h"

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace kiln {

/// The kernels of several CudaPrograms as one host library (one compile for
/// all, cached by content): program N's kernels get the prefix `cN_`, and
/// each kernel a wrapper `emu_<name>(void **args)`.
class HostKernels {
public:
  void add(size_t program, const CudaProgram &p);
  /// Compiles (or finds in the cache) and loads the library; false (with a
  /// test failure) when it does not compile.
  bool load();

  using Wrapper = void (*)(void **);
  struct Kernel {
    Wrapper wrapper = nullptr;
    bool concurrent = false; // a block's threads synchronize: run them as threads
  };
  /// The kernel `name` of the module whose source is `moduleSource`.
  Kernel find(const std::string &moduleSource, const std::string &name) const;
  /// Runs `kernel` on `grid` blocks (at most 3: the kernels' loops stride
  /// over any grid) of `block` threads.
  void launch(const Kernel &kernel, std::vector<void *> &args, int64_t grid, int64_t block) const;

private:
  std::string source_, wrappers_;
  std::map<std::string, std::string> prefixes_; // module source -> its program's prefix
  std::set<std::string> concurrent_;             // prefixed names of "row" and "split" kernels
  void *handle_ = nullptr;
  void (*launch_)(Wrapper, void **, unsigned, unsigned, int) = nullptr;
};

class EmulatedDevice final : public cuda::Device {
public:
  explicit EmulatedDevice(const HostKernels &kernels);
  ~EmulatedDevice() override;

  const cuda::DeviceInfo &info() const override { return info_; }
  cuda::DevicePtr allocate(int64_t bytes) override;
  void release(cuda::DevicePtr pointer) noexcept override;
  int64_t allocatedBytes() const override { return allocated_; }
  int64_t peakAllocatedBytes() const override { return peak_; }
  void copyToDevice(cuda::DevicePtr to, const void *from, int64_t bytes) override;
  void copyToHost(void *to, cuda::DevicePtr from, int64_t bytes) override;
  void copyOnDevice(cuda::DevicePtr to, cuda::DevicePtr from, int64_t bytes) override;
  void fill(cuda::DevicePtr to, uint8_t byte, int64_t bytes) override;
  cuda::ModuleHandle loadModule(const CudaModule &module) override;
  void unloadModule(cuda::ModuleHandle module) noexcept override;
  cuda::KernelHandle kernel(cuda::ModuleHandle module, const std::string &name) override;
  void launch(cuda::KernelHandle kernel, const CudaLaunch &launch,
              const std::vector<cuda::DevicePtr> &pointers) override;
  cuda::MatmulHandle prepareMatmul(const MatmulParams &params, uint32_t alignment, cuda::DevicePtr bias) override;
  void releaseMatmul(cuda::MatmulHandle matmul) noexcept override;
  void matmul(cuda::MatmulHandle matmul, cuda::DevicePtr a, cuda::DevicePtr b, cuda::DevicePtr c) override;
  void synchronize() override;
  void beginCapture() override;
  cuda::GraphHandle endCapture() override;
  void abortCapture() noexcept override;
  void launchGraph(cuda::GraphHandle graph) override;
  void releaseGraph(cuda::GraphHandle graph) noexcept override;
  cuda::EventHandle createEvent() override;
  void recordEvent(cuda::EventHandle event) override;
  double elapsedMilliseconds(cuda::EventHandle from, cuda::EventHandle to) override;
  void releaseEvent(cuda::EventHandle event) noexcept override;

  /// What ran: kernels launched (directly or in a graph), graph launches,
  /// and the alignment promised to each prepared matmul.
  int64_t kernelsRun = 0, graphsLaunched = 0;
  std::vector<uint32_t> matmulAlignments;
  /// Refuses batched matmuls with a shared A, as a library without such an
  /// algorithm would (the Executable then runs one GEMM per batch).
  bool refuseBroadcastA = false;

private:
  void queue(std::function<void()> op);
  void notCapturing(const char *what) const;

  const HostKernels &kernels_;
  cuda::DeviceInfo info_;
  size_t next_ = 1;
  std::map<cuda::DevicePtr, int64_t> allocations_;
  int64_t allocated_ = 0, peak_ = 0;
  std::map<size_t, std::string> modules_;          // handle -> source
  std::map<size_t, HostKernels::Kernel> functions_;
  std::map<size_t, std::pair<MatmulParams, cuda::DevicePtr>> matmuls_; // params, bias
  bool capturing_ = false;
  std::vector<std::function<void()>> recording_;
  std::map<size_t, std::vector<std::function<void()>>> graphs_;
  std::map<size_t, double> events_;
};

} // namespace kiln

#endif // KILN_HAVE_CUDA
