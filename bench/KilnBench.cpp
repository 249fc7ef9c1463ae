// kiln-bench: the CPU workloads of shared/BENCHMARKS.md (mlp, cnn, gpt and
// their -infer forms) built with Kiln's C++ builder, compiled by the CPU
// backend and timed, against this machine's peak sgemm rate measured in the
// same run. bench/README.md says what is measured and how.
#include "bench/BenchSupport.h"
#include "compiler/CpuBackend.h"
#include "examples/common/ExampleMain.h"
#include "examples/models/Models.h"
#include "ir/Graph.h"
#include "runtime/Safetensors.h"
#include "runtime/cpu/Executable.h"
#include "runtime/cpu/Threads.h"
#include "runtime/CommandLine.h"

#include <cblas.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char **environ;

namespace {

using json = nlohmann::json;
using kiln::bench::Clock;
using kiln::bench::secondsSince;
using kiln::bench::splitList;

const char *kUsage = R"(usage: kiln-bench [--workloads=LIST] [--steps=N] [--warmup=N] [--threads=N]
                  [--seed=S] [--json] [--export-dir=DIR] [--sgemm-size=N] [--sgemm-reps=N]

Times the CPU workloads of shared/BENCHMARKS.md, built with Kiln's C++ builder
and compiled by the CPU backend after the default pipeline, against the peak
sgemm rate of this machine measured first in the same run.

options:
  --workloads=LIST  comma list of mlp, cnn, gpt, mlp-infer, cnn-infer,
                    gpt-infer (default: all six)
  --steps=N         timed steps per workload (default 50), after
  --warmup=N        untimed steps (default 5; at least 2: the first two give
                    the losses that bench/compare checks against the peers)
  --threads=N       threads of Kiln's loops and of OpenBLAS (default:
                    OMP_NUM_THREADS, else every core)
  --seed=S          seed of the initial params and the random input batch
                    (default 0); one batch is fed to every step
  --json            one JSON object on stdout instead of the table
  --export-dir=DIR  writes DIR/MODEL.safetensors: the initial params and the
                    input batch of each model, for bench/peers
  --sgemm-size=N    the square sgemm of the peak rate (default 2048)
  --sgemm-reps=N    its repetitions, before the workloads and again after
                    them; the best of all counts (default 5)

Each workload runs in a child process of its own (so its peak RSS is its
own): compiled twice (cold: the first compile, with an empty kernel cache;
warm: the second, which loads its kernels from that cache), then warm-up and timed steps. FLOPs are counted from the graph by
countFlops (compiler/FlopCount.h): matmul and conv 2*M*N*K, their gradients
included; elementwise ops are reported apart and not in GFLOP/s.
)";

struct Options : kiln::bench::RunOptions {
  std::vector<std::string> workloads;
  int threads = 1;
  std::string threadsSource;
};

const std::vector<std::string> &allWorkloads() {
  static const std::vector<std::string> names{"mlp", "cnn", "gpt", "mlp-infer", "cnn-infer",
                                              "gpt-infer"};
  return names;
}

int64_t peakRssBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024; // kilobytes on Linux
}

int64_t currentRssBytes() {
  std::ifstream status("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  status >> pages >> resident;
  return resident * int64_t(::sysconf(_SC_PAGE_SIZE));
}

std::string cpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "unknown CPU";
}

/// The best rate of `reps` square n x n x n cblas_sgemm calls on random
/// matrices, in FLOP/s (2 n^3 per call), after one untimed call.
double measureSgemm(int n, int reps) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> a(size_t(n) * size_t(n)), b(a.size()), c(a.size());
  for (size_t i = 0; i < a.size(); ++i)
    a[i] = uniform(rng), b[i] = uniform(rng);
  auto call = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(),
                n, 0.0f, c.data(), n);
  };
  call();
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    Clock::time_point start = Clock::now();
    call();
    best = std::max(best, 2.0 * double(n) * n * n / secondsSince(start));
  }
  return best;
}

struct Compiled {
  std::unique_ptr<kiln::Graph> graph; // planned
  std::unique_ptr<kiln::CpuCompiled> cpu;
  double seconds = 0;
};

/// The training step (or the forward pass) of `model` through the default
/// pipeline and the CPU backend; the time from the model graph to the executable.
Compiled compile(const kiln::Graph &model, const std::string &modelName, bool train) {
  Compiled c;
  Clock::time_point start = Clock::now();
  c.graph = kiln::bench::buildBenchmarkStep(model, modelName, train);
  c.cpu = kiln::compileForCpu(*c.graph);
  c.seconds = secondsSince(start);
  return c;
}

/// One workload, in this process: what the parent prints for it.
json runWorkload(const std::string &workload, const Options &options) {
  int64_t rssStart = currentRssBytes();
  bool train = workload.find("-infer") == std::string::npos;
  std::string modelName = train ? workload : workload.substr(0, workload.find('-'));
  std::unique_ptr<kiln::Graph> model = kiln::examples::buildExampleModel(modelName);

  // Cold: the first compile, with an empty kernel cache of its own; warm: the
  // second, which finds its kernels in that cache.
  Compiled compiled;
  double warmSeconds = 0;
  {
    kiln::bench::FreshKernelCache cache("kiln-bench");
    compiled = compile(*model, modelName, train);
    warmSeconds = compile(*model, modelName, train).seconds; // freed at once
  }
  const kiln::Graph &graph = *compiled.graph;
  kiln::cpu::Executable &exe = *compiled.cpu->executable;

  // Seeded random values: params from their initializers, inputs uniform in
  // their feed ranges (the same batch every step); lr from its default.
  kiln::TensorMap exported = kiln::bench::setArgumentValues(
      graph, options.seed, workload,
      [&](const std::string &name, const kiln::HostTensor &value) { exe.setArgument(name, value); });
  if (!options.exportDir.empty())
    kiln::writeSafetensors(options.exportDir + "/" + modelName + ".safetensors", exported);

  size_t loss = kiln::bench::resultIndex(exe.program(), "loss");
  std::vector<double> losses;
  for (uint64_t i = 0; i < std::max<uint64_t>(options.warmup, 2); ++i) {
    exe.run();
    if (losses.size() < 2)
      losses.push_back(exe.result(loss).getDouble(0));
  }
  std::vector<double> stepMs;
  for (uint64_t i = 0; i < options.steps; ++i) {
    Clock::time_point start = Clock::now();
    exe.run();
    stepMs.push_back(secondsSince(start) * 1e3);
  }
  json out = kiln::bench::graphFigures(graph);
  out["name"] = workload;
  out["model"] = modelName;
  out["train"] = train;
  out["steps"] = options.steps;
  out["median_ms"] = kiln::bench::median(stepMs);
  out["min_ms"] = *std::min_element(stepMs.begin(), stepMs.end());
  out["step_ms"] = stepMs;
  out["program_steps"] = exe.program().steps.size();
  out["peak_rss_bytes"] = peakRssBytes();
  out["rss_start_bytes"] = rssStart;
  out["compile_cold_s"] = compiled.seconds;
  out["compile_warm_s"] = warmSeconds;
  out["losses"] = losses;
  return out;
}

std::string selfPath() {
  char path[4096];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0)
    kiln::throwError("", "cannot find this program's path (/proc/self/exe)");
  return std::string(path, size_t(n));
}

/// Runs `kiln-bench --worker=WORKLOAD ...` and returns the JSON it prints.
json runChild(const std::string &workload, const Options &options) {
  std::vector<std::string> args{selfPath(),
                                "--worker=" + workload,
                                "--threads=" + std::to_string(options.threads),
                                "--steps=" + std::to_string(options.steps),
                                "--warmup=" + std::to_string(options.warmup),
                                "--seed=" + std::to_string(options.seed)};
  if (!options.exportDir.empty())
    args.push_back("--export-dir=" + options.exportDir);
  std::vector<char *> argv;
  for (std::string &a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  int pipeFds[2];
  if (::pipe(pipeFds) != 0)
    kiln::throwError("", "cannot create a pipe: " + std::string(std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipeFds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipeFds[0]);
  posix_spawn_file_actions_addclose(&actions, pipeFds[1]);
  pid_t pid = 0;
  int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipeFds[1]);
  if (spawned != 0) {
    ::close(pipeFds[0]);
    kiln::throwError("", "cannot start " + args[0] + ": " + std::strerror(spawned));
  }
  std::string output;
  char buffer[4096];
  ssize_t got;
  while ((got = ::read(pipeFds[0], buffer, sizeof buffer)) > 0)
    output.append(buffer, size_t(got));
  ::close(pipeFds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    kiln::throwError(workload, "the benchmark process failed (its error is above)");
  return json::parse(output);
}

std::string megabytes(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", bytes / 1048576.0);
  return text;
}

void printTable(const json &report) {
  std::printf("kiln-bench: %d threads (%s; OMP_WAIT_POLICY %s) on %s, %u cores; %s\n",
              report["threads"].get<int>(), report["threads_source"].get<std::string>().c_str(),
              report["omp_wait_policy"].get<std::string>().c_str(),
              report["machine"]["cpu"].get<std::string>().c_str(),
              report["machine"]["cores"].get<unsigned>(),
              report["date"].get<std::string>().c_str());
  const json &sgemm = report["sgemm"];
  std::printf("peak sgemm: %d^3 cblas_sgemm (OpenBLAS), best of %d before and %d after the "
              "workloads: %.1f GFLOP/s (before %.1f, after %.1f)\n",
              sgemm["n"].get<int>(), sgemm["reps"].get<int>(), sgemm["reps"].get<int>(),
              sgemm["gflops"].get<double>(), sgemm["gflops_before"].get<double>(),
              sgemm["gflops_after"].get<double>());
  std::printf("steps: %llu timed after %llu warm-up, seed %llu\n\n",
              (unsigned long long)report["steps"].get<uint64_t>(),
              (unsigned long long)report["warmup"].get<uint64_t>(),
              (unsigned long long)report["seed"].get<uint64_t>());
  std::printf("%-10s %9s %9s %8s %7s %9s %9s %9s %9s %8s %8s %10s\n", "workload", "median ms",
              "min ms", "GFLOP", "GFLOP/s", "% limit", "arena MB", "live MB", "RSS MB",
              "cold s", "warm s", "loss 1");
  for (const json &w : report["workloads"]) {
    double median = w["median_ms"], flops = double(w["flops"].get<int64_t>());
    std::printf("%-10s %9.2f %9.2f %8.3f %7.1f %8.1f%% %9s %9s %9s %8.3f %8.3f %10.6f\n",
                w["name"].get<std::string>().c_str(), median, w["min_ms"].get<double>(),
                flops / 1e9, w["gflops"].get<double>(), 100 * w["efficiency"].get<double>(),
                megabytes(w["arena_bytes"].get<double>()).c_str(),
                megabytes(w["max_live_bytes"].get<double>()).c_str(),
                megabytes(w["peak_rss_bytes"].get<double>()).c_str(),
                w["compile_cold_s"].get<double>(), w["compile_warm_s"].get<double>(),
                w["losses"][0].get<double>());
  }
  std::printf("\nGFLOP: matmul and conv FLOPs of one step (2*M*N*K, gradients included; "
              "elementwise not counted);\n%% limit = (GFLOP / peak sgemm rate) / median step; "
              "live MB = the max-live lower bound of the arena;\nRSS = the workload process's "
              "peak RSS (compiles included); cold/warm = first compile (empty kernel cache) / second (cached kernels).\n");
}

int run(int argc, char **argv) {
  kiln::CommandLine cl({"--workloads", "--steps", "--warmup", "--threads", "--seed", "--export-dir",
                        "--sgemm-size", "--sgemm-reps", "--worker"},
                       {"--json", "--help", "-h"});
  if (!kiln::bench::parseCommandLine(cl, argc, argv, kUsage))
    return 0;
  Options options;
  static_cast<kiln::bench::RunOptions &>(options) = kiln::bench::readRunOptions(cl, 2048, 5, 16384);
  const char *ompThreads = std::getenv("OMP_NUM_THREADS");
  if (cl.has("--threads")) {
    options.threads = int(cl.getUnsigned("--threads", 0));
    options.threadsSource = "--threads";
  } else if (ompThreads && std::atoi(ompThreads) > 0) {
    options.threads = std::atoi(ompThreads);
    options.threadsSource = "OMP_NUM_THREADS";
  } else {
    options.threads = int(std::max(1u, std::thread::hardware_concurrency()));
    options.threadsSource = "all cores";
  }
  if (options.threads < 1 || options.threads > 1024)
    kiln::throwError("", "--threads must be 1 to 1024");
  kiln::cpu::setNumThreads(options.threads);

  if (cl.has("--worker")) { // a child started by runChild
    std::cout << runWorkload(cl.get("--worker"), options).dump() << "\n";
    return 0;
  }

  options.workloads = cl.has("--workloads") ? splitList(cl.get("--workloads")) : allWorkloads();
  for (const std::string &w : options.workloads)
    if (std::find(allWorkloads().begin(), allWorkloads().end(), w) == allWorkloads().end())
      kiln::throwError("", "unknown workload '" + w +
                               "' (expected mlp, cnn, gpt, mlp-infer, cnn-infer or gpt-infer)");

  json report;
  report["date"] = kiln::bench::utcDate();
  report["threads"] = options.threads;
  report["threads_source"] = options.threadsSource;
  const char *waitPolicy = std::getenv("OMP_WAIT_POLICY");
  report["omp_wait_policy"] = waitPolicy && *waitPolicy ? waitPolicy : "default";
  report["machine"] = {{"cpu", cpuModel()}, {"cores", std::thread::hardware_concurrency()}};
  report["steps"] = options.steps;
  report["warmup"] = options.warmup;
  report["seed"] = options.seed;
  // The peak is measured before the workloads and again after them, and the
  // better of the two counts: on a shared machine one measurement can land
  // in a busy moment.
  double before = measureSgemm(options.sgemmSize, options.sgemmReps);
  std::vector<json> results;
  for (const std::string &w : options.workloads)
    results.push_back(runChild(w, options));
  double after = measureSgemm(options.sgemmSize, options.sgemmReps);
  double peak = std::max(before, after);
  report["sgemm"] = {{"n", options.sgemmSize},
                     {"reps", options.sgemmReps},
                     {"gflops", peak / 1e9},
                     {"gflops_before", before / 1e9},
                     {"gflops_after", after / 1e9}};
  report["workloads"] = json::array();
  for (json &result : results) {
    result["gflops"] = kiln::bench::addEfficiency(result, peak) / 1e9;
    report["workloads"].push_back(result);
  }
  kiln::bench::printReport(report, cl.has("--json"), printTable);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  return kiln::examples::exampleMain("kiln-bench", run, argc, argv, /*errorCode=*/1);
}
