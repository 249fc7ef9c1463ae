#include "bench/GpuBench.h"

#include "compiler/CudaBackend.h"
#include "examples/models/Models.h"
#include "ir/Graph.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"
#include "runtime/cuda/Executable.h"

#include <algorithm>
#include <cmath>
#include <iostream>

namespace kiln {
namespace bench {
namespace {

using json = nlohmann::json;

/// Fills `values` with uniform [-1, 1) floats from a fixed-seed xorshift (fast
/// enough for 8192^2 values).
void randomFill(std::vector<float> &values, uint64_t seed) {
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float &v : values) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    v = float(double(state >> 11) / double(1ull << 53) * 2.0 - 1.0);
  }
}

struct Compiled {
  std::unique_ptr<Graph> graph; // planned
  std::unique_ptr<cuda::Executable> exe;
  double seconds = 0;
};

/// The training step of `model` through the default pipeline and the CUDA
/// backend, loaded on `device` (nullptr: compiled for `arch` only); the time
/// from the model graph to the loaded executable.
Compiled compile(const Graph &model, const std::string &modelName, const std::shared_ptr<cuda::Device> &device,
                 const std::string &arch) {
  Compiled c;
  Clock::time_point start = Clock::now();
  c.graph = buildBenchmarkStep(model, modelName, /*train=*/true);
  if (device)
    c.exe = compileCudaExecutable(*c.graph, device);
  else
    compileForCuda(*c.graph, arch);
  c.seconds = secondsSince(start);
  return c;
}

} // namespace

const std::vector<std::string> &gpuWorkloads() {
  static const std::vector<std::string> names{"mlp-gpu", "gpt2-gpu"};
  return names;
}

std::unique_ptr<Graph> buildGpuWorkload(const std::string &workload, bool tiny, std::string &modelName) {
  if (workload == "mlp-gpu") {
    modelName = "mlp";
    // batch, inputs, hidden, classes
    return examples::buildMlp(tiny ? examples::MlpConfig{} : examples::MlpConfig{4096, 4096, 4096, 1000});
  }
  modelName = "gpt";
  // GPT-2 small: batch, seqLen, vocab, dModel, heads, layers, blockSize (learned positions)
  return examples::buildGpt(tiny ? examples::GptConfig{} : examples::GptConfig{8, 1024, 50257, 768, 12, 12, 1024});
}

json measureSgemm(cuda::Device &device, int n, int reps) {
  size_t count = size_t(n) * size_t(n);
  int64_t bytes = int64_t(count * sizeof(float));
  std::vector<float> a(count), b(count);
  randomFill(a, 1);
  randomFill(b, 2);
  cuda::DevicePtr da = device.allocate(bytes), db = device.allocate(bytes), dc = device.allocate(bytes);
  device.copyToDevice(da, a.data(), bytes);
  device.copyToDevice(db, b.data(), bytes);
  MatmulParams params;
  params.m = params.n = params.k = n;
  cuda::MatmulHandle matmul = device.prepareMatmul(params, 256, 0);
  cuda::EventHandle start = device.createEvent(), stop = device.createEvent();
  device.matmul(matmul, da, db, dc);
  device.synchronize();
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    device.recordEvent(start);
    device.matmul(matmul, da, db, dc);
    device.recordEvent(stop);
    ms.push_back(device.elapsedMilliseconds(start, stop));
  }
  double worst = 0;
  for (int i = 0; i < 8; ++i) {
    size_t row = size_t(i * 997 + 13) % size_t(n), col = size_t(i * 1543 + 7) % size_t(n);
    float got = 0;
    device.copyToHost(&got, dc + (row * size_t(n) + col) * sizeof(float), sizeof(float));
    double exact = 0, scale = 0;
    for (size_t k = 0; k < size_t(n); ++k) {
      double term = double(a[row * size_t(n) + k]) * double(b[k * size_t(n) + col]);
      exact += term;
      scale += term * term;
    }
    worst = std::max(worst, std::abs(double(got) - exact) / std::sqrt(scale));
  }
  device.releaseEvent(start);
  device.releaseEvent(stop);
  device.releaseMatmul(matmul);
  for (cuda::DevicePtr p : {da, db, dc})
    device.release(p);
  bool exact = worst <= 1e-4;
  if (!exact) // reported, not fatal: the workloads still run (and bench/gpu.sh fails)
    std::cerr << "kiln-bench-gpu: sgemm: warning: the f32 product is off by " << worst
              << " (relative): not exact f32 arithmetic (TF32?)\n";
  double flops = 2.0 * double(n) * n * n;
  double medianMs = median(ms), bestMs = *std::min_element(ms.begin(), ms.end());
  return {{"n", n},
          {"reps", reps},
          {"median_ms", medianMs},
          {"tflops", flops / (medianMs * 1e-3) / 1e12},
          {"tflops_best", flops / (bestMs * 1e-3) / 1e12},
          {"check_rel_err", worst},
          {"check_ok", exact},
          {"library", "cuBLASLt, CUBLAS_COMPUTE_32F (TF32 off)"}};
}

json runGpuWorkload(const std::string &workload, const GpuOptions &options, double peak,
                    const DeviceFactory &openDevice) {
  std::string modelName;
  std::unique_ptr<Graph> model = buildGpuWorkload(workload, options.tiny, modelName);
  // A Device of its own: its peak counts this workload's allocations only.
  std::shared_ptr<cuda::Device> device = options.compileOnly ? nullptr : openDevice();

  // Cold: the first compile, with an empty kernel cache of its own; warm: the
  // second, which finds its kernels there. The cold executable is freed
  // before the warm one is made (the warm one runs).
  double coldSeconds = 0;
  Compiled compiled;
  {
    FreshKernelCache cache("kiln-bench-gpu");
    coldSeconds = compile(*model, modelName, device, options.arch).seconds;
    compiled = compile(*model, modelName, device, options.arch);
  }
  json out = graphFigures(*compiled.graph);
  out["name"] = workload;
  out["model"] = modelName;
  out["tiny"] = options.tiny;
  out["compile_cold_s"] = coldSeconds;
  out["compile_warm_s"] = compiled.seconds;
  if (!device)
    return out;

  cuda::Executable &exe = *compiled.exe;
  out["program_steps"] = exe.program().steps.size();
  TensorMap exported = setArgumentValues(
      *compiled.graph, options.seed, workload,
      [&](const std::string &name, const HostTensor &value) { exe.setArgument(name, value); });
  if (!options.exportDir.empty())
    writeSafetensors(options.exportDir + "/" + workload + ".safetensors", exported);
  exported.clear();

  size_t loss = resultIndex(exe.program(), "loss");
  std::vector<double> losses;
  for (uint64_t i = 0; i < std::max<uint64_t>(options.warmup, 2); ++i) {
    Clock::time_point start = Clock::now();
    exe.run();
    if (losses.size() < 2)
      losses.push_back(exe.result(loss).getDouble(0));
    else
      exe.synchronize();
    if (i == 0)
      out["first_step_s"] = secondsSince(start); // eager, one step at a time
    if (i == 1)
      out["capture_step_s"] = secondsSince(start); // captured as a graph, then launched
  }
  for (double l : losses)
    if (!std::isfinite(l))
      throwError(workload, "the loss is not finite (" + std::to_string(l) + ")");

  cuda::EventHandle start = device->createEvent(), stop = device->createEvent();
  std::vector<double> stepMs;
  for (uint64_t i = 0; i < options.steps; ++i) {
    device->recordEvent(start);
    exe.run();
    device->recordEvent(stop);
    stepMs.push_back(device->elapsedMilliseconds(start, stop));
  }
  device->releaseEvent(start);
  device->releaseEvent(stop);
  double lastLoss = exe.result(loss).getDouble(0);
  if (!std::isfinite(lastLoss))
    throwError(workload, "the loss after the timed steps is not finite");

  // One more run, step by step with events between the steps: where the GPU
  // time goes (the table does not print it; bench-gpu.json keeps it).
  Profile profile;
  exe.run(&profile);
  out["profile"] = formatProfile(exe.program(), profile);

  out["steps"] = options.steps;
  out["graph_replay"] = exe.replaying();
  out["median_ms"] = median(stepMs);
  out["min_ms"] = *std::min_element(stepMs.begin(), stepMs.end());
  out["step_ms"] = stepMs;
  out["losses"] = losses;
  out["last_loss"] = lastLoss;
  out["device_bytes"] = exe.deviceBytes();
  out["peak_device_bytes"] = device->peakAllocatedBytes();
  out["tflops"] = addEfficiency(out, peak) / 1e12;
  return out;
}
} // namespace bench
} // namespace kiln
