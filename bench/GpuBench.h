// kiln-bench-gpu's measurements (bench/README.md), apart from its command
// line so that the tests run them on an emulated cuda::Device: the GPU
// workloads of shared/BENCHMARKS.md, the sgemm rate through the Device, and
// one workload compiled cold and warm, run and timed by Device events.
#pragma once

#include "bench/BenchSupport.h"
#include "runtime/cuda/Device.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kiln {

class Graph;

namespace bench {

struct GpuOptions : RunOptions {
  std::vector<std::string> workloads;
  bool tiny = false;        // the CPU workloads' sizes
  bool compileOnly = false; // no device: compile for `arch` only
  std::string arch = "sm_90";
};

/// "mlp-gpu", "gpt2-gpu".
const std::vector<std::string> &gpuWorkloads();

/// The model graph of a workload: shared/BENCHMARKS.md's "GPU workloads"
/// (mlp-gpu: 4096-4096-4096-1000 MLP, batch 4096; gpt2-gpu: GPT-2 small,
/// 8 x 1024 tokens) or, with `tiny`, the CPU workloads' default
/// configurations; `modelName` becomes "mlp" or "gpt".
std::unique_ptr<Graph> buildGpuWorkload(const std::string &workload, bool tiny, std::string &modelName);

/// The rate of an n x n x n f32 matmul through the Device (cuBLASLt, compute
/// type 32F: TF32 off) on random matrices: one untimed call, then `reps`
/// calls each timed by events; the median counts (`tflops`, `median_ms`;
/// `tflops_best` from the fastest). Eight entries of the product are checked
/// against a double-precision dot product on the host: TF32 arithmetic would
/// miss by ~1e-3 relative, f32 by ~1e-6 (`check_rel_err`; `check_ok`: at
/// most 1e-4; a miss is a warning on stderr, not an error). Frees what it
/// allocated.
nlohmann::json measureSgemm(cuda::Device &device, int n, int reps);

using DeviceFactory = std::function<std::shared_ptr<cuda::Device>()>;

/// One workload's report. Compiled twice through the default pipeline and
/// compileCudaExecutable on a Device of its own (`openDevice()`): cold, with
/// a fresh kernel cache, freed at once; then warm, which runs: seeded
/// arguments (exported to options.exportDir/WORKLOAD.safetensors when set),
/// options.warmup steps (the first two give `losses`), options.steps steps
/// each timed by Device events around Executable::run. Its efficiency is
/// against `peak` FLOP/s. With options.compileOnly: no device, the compile
/// (NVRTC for options.arch), FLOPs and memory plan only.
nlohmann::json runGpuWorkload(const std::string &workload, const GpuOptions &options, double peak,
                              const DeviceFactory &openDevice);

} // namespace bench
} // namespace kiln
