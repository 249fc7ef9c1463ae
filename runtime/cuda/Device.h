// The few things Kiln's GPU runtime asks of a device, as an interface (the
// shape of XLA's StreamExecutor platforms): memory, copies, module loading,
// kernel launches, cuBLASLt matmuls and stream capture into a graph, all in
// the order of one stream.
//
// openCudaDevice() is the real one (runtime/cuda/CudaDevice.cpp: the driver
// API loaded at run time, cuBLASLt). The tests also run the Executable on an
// emulated device whose kernels are the generated CUDA C++ compiled for the
// host (tests/unit/CudaEmulationDevice.h), so the runtime's logic is checked
// on machines without a GPU.
#pragma once

#include "runtime/Program.h"
#include "runtime/cuda/CudaProgram.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln {
namespace cuda {

/// A device address (CUdeviceptr).
using DevicePtr = uint64_t;

/// Handles the device hands out, valid until released or the device dies.
using ModuleHandle = size_t;
using KernelHandle = size_t;
using MatmulHandle = size_t;
using GraphHandle = size_t;
using EventHandle = size_t;

struct DeviceInfo {
  std::string name;         // "NVIDIA H100 80GB HBM3"
  std::string arch;         // "sm_90": what NVRTC compiles for
  int64_t memoryBytes = 0;  // total device memory
  int multiprocessors = 0;
  std::string driver;       // "13.0"
};

class Device {
public:
  virtual ~Device() = default;

  virtual const DeviceInfo &info() const = 0;

  /// `bytes` (at least 1) of device memory, 256-byte aligned, contents
  /// undefined; a kiln::Error when the device has no room. Not during capture.
  virtual DevicePtr allocate(int64_t bytes) = 0;
  virtual void release(DevicePtr pointer) noexcept = 0;
  /// Bytes allocated by allocate() and not released, and the most there were.
  virtual int64_t allocatedBytes() const = 0;
  virtual int64_t peakAllocatedBytes() const = 0;

  /// Copies in stream order. copyToDevice and copyToHost return when the copy
  /// is done (the host memory may be reused at once; not during capture);
  /// copyOnDevice and fill are queued (and may be captured).
  virtual void copyToDevice(DevicePtr to, const void *from, int64_t bytes) = 0;
  virtual void copyToHost(void *to, DevicePtr from, int64_t bytes) = 0;
  virtual void copyOnDevice(DevicePtr to, DevicePtr from, int64_t bytes) = 0;
  virtual void fill(DevicePtr to, uint8_t byte, int64_t bytes) = 0;

  /// Loads a compiled module; kernel() finds one of its extern "C" kernels.
  virtual ModuleHandle loadModule(const CudaModule &module) = 0;
  virtual void unloadModule(ModuleHandle module) noexcept = 0;
  virtual KernelHandle kernel(ModuleHandle module, const std::string &name) = 0;
  /// Queues `kernel` with one pointer argument per entry of `pointers`.
  virtual void launch(KernelHandle kernel, const CudaLaunch &launch, const std::vector<DevicePtr> &pointers) = 0;

  /// Chooses how to run matmuls of these params (descriptors, algorithm,
  /// workspace): before any capture. `alignment` (a power of two, at least
  /// the element size) divides the address of every operand, result and
  /// batch of the matmuls it will run. With `params.biasEpilogue`, `bias` is
  /// the address of the n bias values (fixed: part of the plan). A kiln::Error
  /// for params the library cannot run.
  virtual MatmulHandle prepareMatmul(const MatmulParams &params, uint32_t alignment, DevicePtr bias) = 0;
  virtual void releaseMatmul(MatmulHandle matmul) noexcept = 0;
  /// Queues c = op(a) op(b), row-major, batched as prepared.
  virtual void matmul(MatmulHandle matmul, DevicePtr a, DevicePtr b, DevicePtr c) = 0;

  /// Waits for everything queued; a kiln::Error for a failure of queued work.
  virtual void synchronize() = 0;

  /// Records what is queued between beginCapture and endCapture as a graph
  /// instead of running it; endCapture always ends the capture (a failed one
  /// throws after ending it). launchGraph queues the whole graph.
  virtual void beginCapture() = 0;
  virtual GraphHandle endCapture() = 0;
  /// Ends a capture that failed, discarding what it recorded.
  virtual void abortCapture() noexcept = 0;
  virtual void launchGraph(GraphHandle graph) = 0;
  virtual void releaseGraph(GraphHandle graph) noexcept = 0;

  /// Timing in stream order: record an event, then the milliseconds between
  /// two recorded events (waits for the later one).
  virtual EventHandle createEvent() = 0;
  virtual void recordEvent(EventHandle event) = 0;
  virtual double elapsedMilliseconds(EventHandle from, EventHandle to) = 0;
  virtual void releaseEvent(EventHandle event) noexcept = 0;
};

/// Whether this build has the CUDA runtime (the toolkit's headers were found).
bool cudaRuntimeAvailable();

/// The number of CUDA devices; 0 without a driver or a device (never throws).
/// `why`, when given, says why there is none ("no CUDA driver: ...").
int cudaDeviceCount(std::string *why = nullptr);

/// Device `ordinal` through the CUDA driver (loaded at run time:
/// libcuda.so.1) and cuBLASLt (libcublasLt.so.13): its primary context, one
/// non-blocking stream, a cuBLASLt handle and workspace. A kiln::Error
/// ("no CUDA driver: ...", "no CUDA device 1 (1 device)") when there is none.
std::shared_ptr<Device> openCudaDevice(int ordinal = 0);

} // namespace cuda
} // namespace kiln
