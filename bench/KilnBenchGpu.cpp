// kiln-bench-gpu: the GPU workloads of shared/BENCHMARKS.md (mlp-gpu,
// gpt2-gpu) built with Kiln's C++ builder, compiled by the CUDA backend and
// timed with CUDA events, against this GPU's cuBLASLt sgemm rate (TF32 off)
// measured first in the same run. bench/README.md says what is measured;
// bench/gpu.sh runs it beside PyTorch.
#include "bench/BenchSupport.h"
#include "compiler/CudaBackend.h"
#include "examples/common/ExampleMain.h"
#include "examples/models/Models.h"
#include "ir/Graph.h"
#include "runtime/CommandLine.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"
#include "runtime/cuda/Device.h"
#include "runtime/cuda/Executable.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace {

using json = nlohmann::json;
using kiln::bench::Clock;
using kiln::bench::secondsSince;
namespace cuda = kiln::cuda;

const char *kUsage = R"(usage: kiln-bench-gpu [--workloads=LIST] [--steps=N] [--warmup=N] [--seed=S] [--json]
                      [--export-dir=DIR] [--sgemm-size=N] [--sgemm-reps=N] [--tiny]
                      [--compile-only [--arch=sm_NN]]

Times the GPU workloads of shared/BENCHMARKS.md, built with Kiln's C++ builder
and compiled by the CUDA backend after the default pipeline, against the
cuBLASLt sgemm rate (f32, TF32 off) of this GPU measured first in the same run.

options:
  --workloads=LIST  comma list of mlp-gpu, gpt2-gpu (default: both)
  --steps=N         timed steps per workload (default 50), after
  --warmup=N        untimed steps (default 5; at least 2: the first two give
                    the losses that bench/gpu.sh checks against the peers;
                    the first runs eagerly, the second captures the CUDA graph)
  --seed=S          seed of the initial params and the random input batch
                    (default 0); one batch is fed to every step
  --json            one JSON object on stdout instead of the table
  --export-dir=DIR  writes DIR/WORKLOAD.safetensors: the initial params and
                    the input batch of each workload, for bench/peers/torch_gpu.py
  --sgemm-size=N    the square sgemm of the peak rate (default 8192)
  --sgemm-reps=N    its timed repetitions; the median counts (default 20)
  --tiny            the models at the sizes of the CPU workloads (mlp, gpt):
                    a quick check, not the benchmark
  --compile-only    no GPU: compile each step with NVRTC for --arch (default
                    sm_90) and report FLOPs, memory plan and compile times

Each workload is compiled twice (cold: the first compile, with an empty
kernel cache; warm: the second, which loads its kernels from that cache),
then runs the warm-up and timed steps, each timed by CUDA events recorded
around Executable::run. FLOPs are counted from the graph by countFlops
(compiler/FlopCount.h): matmul 2*M*N*K, its gradients included; elementwise
ops are reported apart and not in TFLOP/s. Peak device memory is the most
device memory Kiln's allocations held for the workload (cuBLASLt's
workspace included, the CUDA context not).
)";

struct Options : kiln::bench::RunOptions {
  std::vector<std::string> workloads;
  bool tiny = false, compileOnly = false;
  std::string arch = "sm_90";
};

const std::vector<std::string> &allWorkloads() {
  static const std::vector<std::string> names{"mlp-gpu", "gpt2-gpu"};
  return names;
}

/// The model graph of a workload: shared/BENCHMARKS.md's "GPU workloads",
/// or with `tiny` the CPU workloads' default configurations.
std::unique_ptr<kiln::Graph> buildWorkload(const std::string &workload, bool tiny, std::string &modelName) {
  if (workload == "mlp-gpu") {
    modelName = "mlp";
    // batch, inputs, hidden, classes
    return kiln::examples::buildMlp(tiny ? kiln::examples::MlpConfig{}
                                         : kiln::examples::MlpConfig{4096, 4096, 4096, 1000});
  }
  modelName = "gpt";
  // GPT-2 small: batch, seqLen, vocab, dModel, heads, layers, blockSize (learned positions)
  return kiln::examples::buildGpt(tiny ? kiln::examples::GptConfig{}
                                       : kiln::examples::GptConfig{8, 1024, 50257, 768, 12, 12, 1024});
}

/// Fills `values` with uniform [-1, 1) floats from a fixed-seed xorshift (fast
/// enough for 8192^2 values).
void randomFill(std::vector<float> &values, uint64_t seed) {
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float &v : values) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    v = float(double(state >> 11) / double(1ull << 53) * 2.0 - 1.0);
  }
}

/// The rate of an n x n x n f32 matmul through the Device (cuBLASLt, compute
/// type 32F: TF32 off) on random matrices: one untimed call, then `reps`
/// calls each timed by events; the median counts. A few entries of the
/// product are checked against a double-precision dot product on the host:
/// TF32 arithmetic would miss by ~1e-3 relative, f32 by ~1e-6 (`check_ok`:
/// at most 1e-4; a miss is a warning on stderr, not an error).
json measureSgemm(cuda::Device &device, int n, int reps) {
  size_t count = size_t(n) * size_t(n);
  int64_t bytes = int64_t(count * sizeof(float));
  std::vector<float> a(count), b(count);
  randomFill(a, 1);
  randomFill(b, 2);
  cuda::DevicePtr da = device.allocate(bytes), db = device.allocate(bytes), dc = device.allocate(bytes);
  device.copyToDevice(da, a.data(), bytes);
  device.copyToDevice(db, b.data(), bytes);
  kiln::MatmulParams params;
  params.m = params.n = params.k = n;
  cuda::MatmulHandle matmul = device.prepareMatmul(params, 256);
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
  double medianMs = kiln::bench::median(ms), bestMs = *std::min_element(ms.begin(), ms.end());
  return {{"n", n},
          {"reps", reps},
          {"median_ms", medianMs},
          {"tflops", flops / (medianMs * 1e-3) / 1e12},
          {"tflops_best", flops / (bestMs * 1e-3) / 1e12},
          {"check_rel_err", worst},
          {"check_ok", exact},
          {"library", "cuBLASLt, CUBLAS_COMPUTE_32F (TF32 off)"}};
}

struct Compiled {
  std::unique_ptr<kiln::Graph> graph; // planned
  std::unique_ptr<cuda::Executable> exe;
  double seconds = 0;
};

/// The training step of `model` through the default pipeline and the CUDA
/// backend, loaded on `device` (nullptr: compiled for `arch` only); the time
/// from the model graph to the loaded executable.
Compiled compile(const kiln::Graph &model, const std::string &modelName, const std::shared_ptr<cuda::Device> &device,
                 const std::string &arch) {
  Compiled c;
  Clock::time_point start = Clock::now();
  c.graph = kiln::bench::buildBenchmarkStep(model, modelName, /*train=*/true);
  if (device)
    c.exe = kiln::compileCudaExecutable(*c.graph, device);
  else
    kiln::compileForCuda(*c.graph, arch);
  c.seconds = secondsSince(start);
  return c;
}

/// One workload's report; its efficiency against `peak` FLOP/s.
json runWorkload(const std::string &workload, const Options &options, double peak) {
  std::string modelName;
  std::unique_ptr<kiln::Graph> model = buildWorkload(workload, options.tiny, modelName);
  // A Device of its own: its peak counts this workload's allocations only.
  std::shared_ptr<cuda::Device> device = options.compileOnly ? nullptr : cuda::openCudaDevice();

  // Cold: the first compile, with an empty kernel cache of its own; warm: the
  // second, which finds its kernels there. The cold executable is freed
  // before the warm one is made (the warm one runs).
  double coldSeconds = 0;
  Compiled compiled;
  {
    kiln::bench::FreshKernelCache cache("kiln-bench-gpu");
    coldSeconds = compile(*model, modelName, device, options.arch).seconds;
    compiled = compile(*model, modelName, device, options.arch);
  }
  json out = kiln::bench::graphFigures(*compiled.graph);
  out["name"] = workload;
  out["model"] = modelName;
  out["tiny"] = options.tiny;
  out["compile_cold_s"] = coldSeconds;
  out["compile_warm_s"] = compiled.seconds;
  if (!device)
    return out;

  cuda::Executable &exe = *compiled.exe;
  out["program_steps"] = exe.program().steps.size();
  kiln::TensorMap exported = kiln::bench::setArgumentValues(
      *compiled.graph, options.seed, workload,
      [&](const std::string &name, const kiln::HostTensor &value) { exe.setArgument(name, value); });
  if (!options.exportDir.empty())
    kiln::writeSafetensors(options.exportDir + "/" + workload + ".safetensors", exported);
  exported.clear();

  size_t loss = kiln::bench::resultIndex(exe.program(), "loss");
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
      kiln::throwError(workload, "the loss is not finite (" + std::to_string(l) + ")");

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
    kiln::throwError(workload, "the loss after the timed steps is not finite");

  out["steps"] = options.steps;
  out["graph_replay"] = exe.replaying();
  out["median_ms"] = kiln::bench::median(stepMs);
  out["min_ms"] = *std::min_element(stepMs.begin(), stepMs.end());
  out["step_ms"] = stepMs;
  out["losses"] = losses;
  out["last_loss"] = lastLoss;
  out["device_bytes"] = exe.deviceBytes();
  out["peak_device_bytes"] = device->peakAllocatedBytes();
  out["tflops"] = kiln::bench::addEfficiency(out, peak) / 1e12;
  return out;
}

std::string megabytes(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", bytes / 1048576.0);
  return text;
}

void printTable(const json &report) {
  bool compileOnly = report["compile_only"];
  if (compileOnly) {
    std::printf("kiln-bench-gpu: compile only, for %s; %s\n\n", report["arch"].get<std::string>().c_str(),
                report["date"].get<std::string>().c_str());
  } else {
    const json &d = report["device"];
    std::printf("kiln-bench-gpu: %s (%s, %d SMs, %s MB, driver %s); %s\n", d["name"].get<std::string>().c_str(),
                d["arch"].get<std::string>().c_str(), d["multiprocessors"].get<int>(),
                megabytes(d["memory_bytes"].get<double>()).c_str(), d["driver"].get<std::string>().c_str(),
                report["date"].get<std::string>().c_str());
    const json &s = report["sgemm"];
    std::printf("peak sgemm: %d^3 f32 matmul (%s), median of %d: %.2f TFLOP/s (best %.2f); "
                "checked against the host: rel err %.1e (%s)\n",
                s["n"].get<int>(), s["library"].get<std::string>().c_str(), s["reps"].get<int>(),
                s["tflops"].get<double>(), s["tflops_best"].get<double>(), s["check_rel_err"].get<double>(),
                s["check_ok"].get<bool>() ? "ok" : "NOT exact f32");
    std::printf("steps: %llu timed (CUDA events) after %llu warm-up, seed %llu\n\n",
                (unsigned long long)report["steps"].get<uint64_t>(),
                (unsigned long long)report["warmup"].get<uint64_t>(),
                (unsigned long long)report["seed"].get<uint64_t>());
  }
  std::printf("%-9s %9s %9s %9s %8s %8s %9s %9s %9s %8s %8s %10s %10s\n", "workload", "median ms", "min ms",
              "TFLOP", "TFLOP/s", "% sgemm", "arena MB", "device MB", "peak MB", "cold s", "warm s", "loss 1",
              "loss 2");
  for (const json &w : report["workloads"]) {
    double flops = double(w["flops"].get<int64_t>());
    if (compileOnly) {
      std::printf("%-9s %9s %9s %9.3f %8s %8s %9s %9s %9s %8.2f %8.2f %10s %10s\n",
                  w["name"].get<std::string>().c_str(), "-", "-", flops / 1e12, "-", "-",
                  megabytes(w["arena_bytes"].get<double>()).c_str(), "-", "-", w["compile_cold_s"].get<double>(),
                  w["compile_warm_s"].get<double>(), "-", "-");
      continue;
    }
    std::printf("%-9s %9.2f %9.2f %9.3f %8.2f %7.1f%% %9s %9s %9s %8.2f %8.2f %10.6f %10.6f\n",
                w["name"].get<std::string>().c_str(), w["median_ms"].get<double>(), w["min_ms"].get<double>(),
                flops / 1e12, w["tflops"].get<double>(), 100 * w["efficiency"].get<double>(),
                megabytes(w["arena_bytes"].get<double>()).c_str(), megabytes(w["device_bytes"].get<double>()).c_str(),
                megabytes(w["peak_device_bytes"].get<double>()).c_str(), w["compile_cold_s"].get<double>(),
                w["compile_warm_s"].get<double>(), w["losses"][0].get<double>(), w["losses"][1].get<double>());
  }
  std::printf("\nTFLOP: matmul FLOPs of one step (2*M*N*K, gradients included; elementwise not counted);\n"
              "%% sgemm = (TFLOP / peak sgemm rate) / median step; device MB = the executable's arena, arguments and\n"
              "update staging; peak MB = the most device memory Kiln held for the workload (cuBLASLt workspace\n"
              "included, the CUDA context not);\n"
              "cold/warm = first compile (empty kernel cache) / second (cached kernels), model graph to loaded "
              "executable.\n");
}

int run(int argc, char **argv) {
  kiln::CommandLine cl({"--workloads", "--steps", "--warmup", "--seed", "--export-dir", "--sgemm-size", "--sgemm-reps",
                        "--arch"},
                       {"--json", "--tiny", "--compile-only", "--help", "-h"});
  if (!kiln::bench::parseCommandLine(cl, argc, argv, kUsage))
    return 0;
  Options options;
  static_cast<kiln::bench::RunOptions &>(options) = kiln::bench::readRunOptions(cl, 8192, 20, 32768);
  options.tiny = cl.has("--tiny");
  options.compileOnly = cl.has("--compile-only");
  options.arch = cl.get("--arch", "sm_90");
  if (cl.has("--arch") && !options.compileOnly)
    kiln::throwError("", "--arch goes with --compile-only (on a GPU the device's own is used)");
  if (options.compileOnly && !options.exportDir.empty())
    kiln::throwError("", "--export-dir needs a GPU run (the values are exported beside the losses they give)");
  options.workloads = cl.has("--workloads") ? kiln::bench::splitList(cl.get("--workloads")) : allWorkloads();
  for (const std::string &w : options.workloads)
    if (std::find(allWorkloads().begin(), allWorkloads().end(), w) == allWorkloads().end())
      kiln::throwError("", "unknown workload '" + w + "' (expected mlp-gpu or gpt2-gpu)");
  if (!options.exportDir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.exportDir, ec);
    if (ec)
      kiln::throwError(options.exportDir, "cannot create the export folder: " + ec.message());
  }

  json report;
  report["date"] = kiln::bench::utcDate();
  report["compile_only"] = options.compileOnly;
  report["steps"] = options.steps;
  report["warmup"] = options.warmup;
  report["seed"] = options.seed;
  report["tiny"] = options.tiny;
  double peak = 0;
  if (options.compileOnly) {
    report["arch"] = options.arch;
  } else {
    std::string why;
    if (cuda::cudaDeviceCount(&why) == 0)
      kiln::throwError("", why);
    // The sgemm on a Device of its own, freed before the workloads.
    std::shared_ptr<cuda::Device> device = cuda::openCudaDevice();
    const cuda::DeviceInfo &info = device->info();
    report["device"] = {{"name", info.name},
                        {"arch", info.arch},
                        {"memory_bytes", info.memoryBytes},
                        {"multiprocessors", info.multiprocessors},
                        {"driver", info.driver}};
    report["sgemm"] = measureSgemm(*device, options.sgemmSize, options.sgemmReps);
    peak = report["sgemm"]["tflops"].get<double>() * 1e12;
  }
  report["workloads"] = json::array();
  for (const std::string &w : options.workloads)
    report["workloads"].push_back(runWorkload(w, options, peak));
  kiln::bench::printReport(report, cl.has("--json"), printTable);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  return kiln::examples::exampleMain("kiln-bench-gpu", run, argc, argv, /*errorCode=*/1);
}
