// kiln-bench-gpu: the GPU workloads of shared/BENCHMARKS.md (mlp-gpu,
// gpt2-gpu) built with Kiln's C++ builder, compiled by the CUDA backend and
// timed with CUDA events, against this GPU's cuBLASLt sgemm rate (TF32 off)
// measured first in the same run. bench/README.md says what is measured;
// bench/gpu.sh runs it beside PyTorch.
#include "bench/GpuBench.h"
#include "examples/common/ExampleMain.h"
#include "runtime/CommandLine.h"
#include "runtime/Error.h"
#include "runtime/cuda/Device.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace {

using json = nlohmann::json;
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
  kiln::bench::GpuOptions options;
  static_cast<kiln::bench::RunOptions &>(options) = kiln::bench::readRunOptions(cl, 8192, 20, 32768);
  options.tiny = cl.has("--tiny");
  options.compileOnly = cl.has("--compile-only");
  options.arch = cl.get("--arch", "sm_90");
  if (cl.has("--arch") && !options.compileOnly)
    kiln::throwError("", "--arch goes with --compile-only (on a GPU the device's own is used)");
  if (options.compileOnly && !options.exportDir.empty())
    kiln::throwError("", "--export-dir needs a GPU run (the values are exported beside the losses they give)");
  options.workloads = cl.has("--workloads") ? kiln::bench::splitList(cl.get("--workloads")) : kiln::bench::gpuWorkloads();
  for (const std::string &w : options.workloads)
    if (std::find(kiln::bench::gpuWorkloads().begin(), kiln::bench::gpuWorkloads().end(), w) == kiln::bench::gpuWorkloads().end())
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
    report["sgemm"] = kiln::bench::measureSgemm(*device, options.sgemmSize, options.sgemmReps);
    peak = report["sgemm"]["tflops"].get<double>() * 1e12;
  }
  report["workloads"] = json::array();
  for (const std::string &w : options.workloads)
    report["workloads"].push_back(
        kiln::bench::runGpuWorkload(w, options, peak, [] { return cuda::openCudaDevice(); }));
  kiln::bench::printReport(report, cl.has("--json"), printTable);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  return kiln::examples::exampleMain("kiln-bench-gpu", run, argc, argv, /*errorCode=*/1);
}
