// `kiln run`: a graph on the reference interpreter, or (with --train, its
// training step) compiled for the CPU or a GPU and run there.
#include "ToolSupport.h"

#include "compiler/CpuBackend.h"
#include "compiler/CudaBackend.h"
#include "ir/ArgumentValues.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Verifier.h"
#include "passes/PassManager.h"
#include "runtime/Error.h"
#include "runtime/Numerics.h"
#include "runtime/Profile.h"
#ifdef KILN_HAVE_CPU_BACKEND
#include "runtime/cpu/Executable.h"
#include "runtime/cpu/Threads.h"
#endif

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <unistd.h>

namespace kiln {
namespace cli {

namespace {

using kiln::HostTensor;
using kiln::TensorMap;

uint64_t physicalMemoryBytes();

/// The bytes a planned graph's program holds: its arena (rounded as the
/// backends round it) and its arguments' buffers.
std::pair<int64_t, int64_t> programBytes(const kiln::Graph &planned) {
  int64_t arena = 0, arguments = 0;
  for (const auto &node : planned.nodes())
    for (const kiln::BufferSlice &slice : kiln::nodeBuffers(*node))
      if (slice.isArena())
        arena = std::max(arena, slice.end);
  arena = (arena + 63) / 64 * 64;
  for (const auto &arg : planned.arguments())
    arguments += arg->value.type.numElements() * int64_t(kiln::dtypeSize(arg->value.type.dtype));
  return {arena, arguments};
}

/// Refuses a planned graph whose arena and argument buffers exceed `limit`
/// (--memory-limit when given, else `fallback`, described by `what`).
void checkProgramMemory(const kiln::Graph &planned, const std::string &file, const kiln::CommandLine &cl,
                        uint64_t fallback, const std::string &what) {
  auto [arena, arguments] = programBytes(planned);
  uint64_t needed = uint64_t(arena) + uint64_t(arguments);
  bool given = cl.has("--memory-limit");
  uint64_t limit = given ? cl.getUnsigned("--memory-limit", 0) : fallback;
  if (needed <= limit)
    return;
  kiln::throwError(planned.loc().toString().empty() ? file : planned.loc().toString(),
                   "@" + planned.name() + " needs " + std::to_string(needed) + " bytes (arena " +
                       std::to_string(arena) + " + arguments " + std::to_string(arguments) + "), more than " +
                       (given ? "--memory-limit " + std::to_string(limit) : what + " (--memory-limit sets a limit)"));
}

#ifdef KILN_HAVE_CUDA_RUNTIME
/// --target=cuda: the device's memory is the default limit.
void checkDeviceMemory(const kiln::Graph &planned, const std::string &file, const kiln::CommandLine &cl,
                       const kiln::cuda::Device &device) {
  checkProgramMemory(planned, file, cl, uint64_t(device.info().memoryBytes),
                     "the memory of " + device.info().name + " (" + std::to_string(device.info().memoryBytes) +
                         " bytes)");
}
#endif

#ifdef KILN_HAVE_CPU_BACKEND
/// Refuses a planned graph whose CPU program (its arena and its argument
/// buffers) would exceed --memory-limit (default: the physical memory),
/// before anything is allocated.
void checkCpuMemory(const kiln::Graph &planned, const std::string &file, const kiln::CommandLine &cl) {
  checkProgramMemory(planned, file, cl, physicalMemoryBytes(), "the physical memory");
}

#endif

/// --check-numerics: the first NaN or infinity of a float argument, located
/// at the argument (else the graph), as the interpreter reports it.
void checkArgumentsFinite(const kiln::Graph &graph, const TensorMap &arguments) {
  for (const auto &arg : graph.arguments()) {
    auto it = arguments.find(arg->name);
    if (it == arguments.end())
      continue;
    const HostTensor &value = it->second;
    int64_t bad = kiln::firstNonFinite(value.dtype(), value.data(), value.numElements());
    if (bad < 0)
      continue;
    std::string loc = arg->loc.toString();
    kiln::throwError(loc.empty() ? graph.loc().toString() : loc,
                     "argument '" + arg->name + "' holds " +
                         kiln::nonFiniteName(value.dtype(), value.data(), bad) +
                         " at element " + std::to_string(bad) + " (check-numerics)");
  }
}
/// What `kiln run --target=cpu|cuda` share: the graph (or, with --train, its
/// training step) through the default pipeline, and every argument's value
/// (--inputs, else the file's weights, else seeded random values).
struct CompiledRun {
  std::string file;
  uint64_t seed = 0, steps = 1;
  std::unique_ptr<kiln::Graph> graph; // planned
  TensorMap arguments;
  double passesMs = 0;
};

/// `checkMemory` sees the planned graph before any argument is read or allocated.
CompiledRun prepareCompiledRun(const kiln::CommandLine &cl,
                               const std::function<void(const kiln::Graph &, const std::string &)> &checkMemory) {
  CompiledRun run;
  run.seed = cl.getUnsigned("--seed", 0);
  run.steps = cl.getUnsigned("--steps", 1);
  if (run.steps == 0)
    kiln::throwError("", "--steps must be at least 1");
  run.file = cl.positional()[0];
  kiln::Module module = kiln::loadModuleFile(run.file);
  const kiln::Graph &model = selectGraph(module, cl.get("--graph"), run.file);
  checkFeeds(model, module.weights, run.file + " weights");
  run.graph = cl.has("--train") ? kiln::buildTrainingStep(model, optimizerOptions(cl), cl.get("--loss"))
                                : kiln::cloneGraph(model);
  auto start = std::chrono::steady_clock::now();
  kiln::runPasses(*run.graph, kiln::parsePassPipeline(kiln::defaultPipeline()));
  run.passesMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  checkMemory(*run.graph, run.file);
  TensorMap feeds;
  if (cl.has("--inputs"))
    feeds = loadFeeds(*run.graph, cl.get("--inputs"));
  // Argument values by name (the pipeline keeps the arguments' names and types).
  for (const auto &arg : run.graph->arguments()) {
    if (feeds.count(arg->name))
      run.arguments[arg->name] = feeds.at(arg->name);
    else if (module.weights.count(arg->name))
      run.arguments[arg->name] = module.weights.at(arg->name);
    else
      run.arguments[arg->name] = kiln::defaultArgumentValue(*arg, run.seed);
  }
  return run;
}

/// With --steps > 1, a line per step: `step 3/20 loss=4.5 (1.23 ms)`.
void printStepLine(const CompiledRun &run, uint64_t step, const std::function<HostTensor(size_t)> &result,
                   size_t results, double ms) {
  if (run.steps == 1)
    return;
  std::string line = "step " + std::to_string(step + 1) + "/" + std::to_string(run.steps);
  for (size_t i = 0; i < results; ++i) {
    HostTensor r = result(i);
    if (r.numElements() == 1) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s=%.6g", run.graph->resultName(i).c_str(), r.getDouble(0));
      line += buf;
    }
  }
  char timing[48];
  std::snprintf(timing, sizeof timing, " (%.2f ms)", ms);
  std::cout << line << timing << "\n";
}

/// After the last step: a summary of each result, and --output (the results
/// and the updated params and state).
void finishCompiledRun(const kiln::CommandLine &cl, const CompiledRun &run, const std::string &target,
                       const std::function<HostTensor(size_t)> &result, size_t results,
                       const std::function<HostTensor(const std::string &)> &argument) {
  const kiln::Graph &graph = *run.graph;
  std::cout << "@" << graph.name() << " on " << target << ", seed " << run.seed << ", " << run.steps << " step"
            << (run.steps == 1 ? "" : "s") << ":\n";
  TensorMap outputs;
  for (size_t i = 0; i < results; ++i) {
    HostTensor r = result(i);
    std::cout << "  " << summarize(graph.resultName(i), r) << "\n";
    outputs[graph.resultName(i)] = r;
  }
  if (!graph.updates().empty())
    std::cout << "  updated " << graph.updates().size() << " params/state\n";
  if (cl.has("--output")) {
    for (const kiln::Update &u : graph.updates())
      outputs[u.target->name] = argument(u.target->name);
    kiln::writeSafetensors(cl.get("--output"), outputs);
  }
}

/// `kiln run --target=cpu`: compiled by the CPU backend and run.
int runOnCpu(const kiln::CommandLine &cl) {
#ifndef KILN_HAVE_CPU_BACKEND
  kiln::throwError("", "this build has no CPU backend (configure with -DKILN_ENABLE_CPU_BACKEND=ON)");
#else
  CompiledRun run = prepareCompiledRun(cl, [&](const kiln::Graph &planned, const std::string &file) {
    checkCpuMemory(planned, file, cl); // before any argument or buffer is allocated
  });
  kiln::Graph &graph = *run.graph;
  if (cl.has("--check-numerics"))
    checkArgumentsFinite(graph, run.arguments);
  auto compileStart = std::chrono::steady_clock::now();
  std::unique_ptr<kiln::CpuCompiled> compiled = kiln::compileForCpu(graph);
  double compileMs = run.passesMs + std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                                              compileStart).count();
  kiln::cpu::Executable &exe = *compiled->executable;
  exe.setCheckNumerics(cl.has("--check-numerics"));
  for (const auto &[name, value] : run.arguments)
    exe.setArgument(name, value);
  std::printf("@%s compiled for the CPU in %.0f ms (%zu steps, arena %lld bytes)\n", graph.name().c_str(), compileMs,
              exe.program().steps.size(), (long long)exe.program().arenaBytes);
  // Profiled: every run after the first (which pays for page faults), or
  // the one run of --steps=1.
  bool profiling = cl.has("--profile") || cl.has("--trace");
  kiln::Profile profile;
  profile.trace = cl.has("--trace");
  auto result = [&](size_t i) { return exe.result(i); };
  for (uint64_t step = 0; step < run.steps; ++step) {
    auto start = std::chrono::steady_clock::now();
    exe.run(profiling && (step > 0 || run.steps == 1) ? &profile : nullptr);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    printStepLine(run, step, result, exe.numResults(), ms);
  }
  finishCompiledRun(cl, run, "cpu", result, exe.numResults(),
                    [&](const std::string &name) { return exe.argument(name); });
  if (cl.has("--profile"))
    std::cout << "profile of @" << graph.name() << ", " << kiln::cpu::numThreads() << " threads:\n"
              << kiln::formatProfile(exe.program(), profile);
  if (cl.has("--trace"))
    kiln::writeFileAtomically(cl.get("--trace"), kiln::formatChromeTrace(exe.program(), profile));
  return 0;
#endif
}

/// `kiln run --target=cuda`: compiled by NVRTC for the first GPU and run
/// there, the step captured as a CUDA graph from its second run on
/// (--no-cuda-graph: launched kernel by kernel every run).
int runOnCuda(const kiln::CommandLine &cl) {
#ifndef KILN_HAVE_CUDA_RUNTIME
  kiln::throwError("", "this build has no CUDA backend (configure with -DKILN_ENABLE_CUDA=ON)");
#else
  std::shared_ptr<kiln::cuda::Device> device = kiln::cuda::openCudaDevice(0);
  CompiledRun run = prepareCompiledRun(cl, [&](const kiln::Graph &planned, const std::string &file) {
    checkDeviceMemory(planned, file, cl, *device);
  });
  kiln::Graph &graph = *run.graph;
  if (cl.has("--check-numerics"))
    checkArgumentsFinite(graph, run.arguments);
  kiln::cuda::ExecutableOptions options;
  options.graph = !cl.has("--no-cuda-graph");
  auto compileStart = std::chrono::steady_clock::now();
  std::unique_ptr<kiln::cuda::Executable> exe = kiln::compileCudaExecutable(graph, device, options);
  double compileMs = run.passesMs + std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                                              compileStart).count();
  exe->setCheckNumerics(cl.has("--check-numerics"));
  for (const auto &[name, value] : run.arguments)
    exe->setArgument(name, value);
  std::printf("@%s compiled for %s (%s) in %.0f ms (%zu steps, arena %lld bytes, %lld device bytes)\n",
              graph.name().c_str(), device->info().name.c_str(), device->info().arch.c_str(), compileMs,
              exe->program().steps.size(), (long long)exe->program().arenaBytes, (long long)exe->deviceBytes());
  // Profiled (--profile, --trace): the runs after the first (eager) one,
  // each launched step by step with events between the steps.
  bool profiling = cl.has("--profile") || cl.has("--trace");
  kiln::Profile profile;
  profile.trace = cl.has("--trace");
  auto result = [&](size_t i) { return exe->result(i); };
  for (uint64_t step = 0; step < run.steps; ++step) {
    auto start = std::chrono::steady_clock::now();
    exe->run(profiling && step > 0 ? &profile : nullptr);
    exe->synchronize();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    printStepLine(run, step, result, exe->numResults(), ms);
  }
  finishCompiledRun(cl, run, "cuda", result, exe->numResults(),
                    [&](const std::string &name) { return exe->argument(name); });
  if (cl.has("--profile"))
    std::cout << "profile of @" << graph.name() << " on " << device->info().name
              << " (GPU time by CUDA events, kernel by kernel):\n"
              << (profile.runs ? kiln::formatProfile(exe->program(), profile) : "no profiled run (--steps=2 or more)\n");
  if (cl.has("--trace"))
    kiln::writeFileAtomically(cl.get("--trace"), kiln::formatChromeTrace(exe->program(), profile));
  return 0;
#endif
}

/// The machine's physical memory: `kiln run`'s default --memory-limit.
uint64_t physicalMemoryBytes() {
  long pages = ::sysconf(_SC_PHYS_PAGES), pageSize = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || pageSize <= 0)
    return UINT64_MAX;
  return uint64_t(pages) * uint64_t(pageSize);
}

/// Refuses a graph whose live values in the interpreter would exceed
/// --memory-limit (default: the physical memory), before anything is allocated.
void checkInterpreterMemory(const kiln::Graph &graph, const std::string &file,
                            const kiln::CommandLine &cl) {
  uint64_t needed = kiln::interpreterPeakBytes(graph);
  bool given = cl.has("--memory-limit");
  uint64_t limit = given ? cl.getUnsigned("--memory-limit", 0) : physicalMemoryBytes();
  if (needed <= limit)
    return;
  kiln::throwError(graph.loc().toString().empty() ? file : graph.loc().toString(),
                   "@" + graph.name() + " needs " + std::to_string(needed) +
                       " bytes of live values, more than " +
                       (given ? "--memory-limit " + std::to_string(limit)
                              : std::string("the physical memory (--memory-limit sets a limit)")));
}

} // namespace

int runCommand(const kiln::CommandLine &cl) {
  if (cl.positional().size() != 1)
    kiln::throwError("", "run expects one input file; see --help");
  std::string target = cl.get("--target", "interp");
  if (target != "cpu" && target != "cuda" && (cl.has("--profile") || cl.has("--trace")))
    kiln::throwError("", "--profile and --trace are options of --target=cpu|cuda");
  if (cl.has("--no-cuda-graph") && target != "cuda")
    kiln::throwError("", "--no-cuda-graph is an option of --target=cuda");
  if (target == "cpu")
    return runOnCpu(cl);
  if (target == "cuda")
    return runOnCuda(cl);
  if (target != "interp")
    kiln::throwError("", "unknown target '" + target + "' (this build has: interp" +
                             std::string(kiln::cpuBackendAvailable() ? ", cpu" : "") +
                             std::string(kiln::cudaBackendAvailable() ? ", cuda" : "") + ")");
  if (cl.has("--train"))
    kiln::throwError("", "--train is for --target=cpu|cuda; for the interpreter, build the step "
                         "with `kiln compile --train` and run that");
  std::string precisionName = cl.get("--precision", "native");
  if (precisionName != "native" && precisionName != "f64")
    kiln::throwError("", "--precision must be native or f64, got '" + precisionName + "'");
  kiln::InterpreterOptions options;
  options.precision = precisionName == "f64" ? kiln::Precision::F64 : kiln::Precision::Native;
  options.checkNumerics = cl.has("--check-numerics");
  uint64_t seed = cl.getUnsigned("--seed", 0);
  uint64_t steps = cl.getUnsigned("--steps", 1);
  if (steps == 0)
    kiln::throwError("", "--steps must be at least 1");

  const std::string file = cl.positional()[0];
  kiln::Module module = kiln::loadModuleFile(file);
  const kiln::Graph &graph = selectGraph(module, cl.get("--graph"), file);
  checkInterpreterMemory(graph, file, cl); // before any argument is allocated
  checkFeeds(graph, module.weights, file + " weights");
  TensorMap feeds;
  if (cl.has("--inputs"))
    feeds = loadFeeds(graph, cl.get("--inputs"));

  TensorMap arguments;
  for (const auto &arg : graph.arguments()) {
    if (feeds.count(arg->name))
      arguments[arg->name] = feeds.at(arg->name);
    else if (module.weights.count(arg->name))
      arguments[arg->name] = module.weights.at(arg->name);
    else
      arguments[arg->name] = kiln::defaultArgumentValue(*arg, seed);
  }

  kiln::InterpreterResult result;
  for (uint64_t step = 0; step < steps; ++step) {
    auto start = std::chrono::steady_clock::now();
    result = kiln::interpret(graph, arguments, options);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count();
    for (auto &[name, value] : result.updated) {
      // In f64 mode updates come back as f64; keep each argument's own dtype across steps.
      const kiln::TensorType &type = graph.findArgument(name)->value.type;
      arguments[name] = value.dtype() == type.dtype
                            ? value
                            : HostTensor::fromDoubles(type.dtype, type.shape, value.toDoubles());
    }
    if (steps > 1) {
      std::string line = "step " + std::to_string(step + 1) + "/" + std::to_string(steps);
      for (size_t i = 0; i < result.results.size(); ++i)
        if (result.results[i].numElements() == 1) {
          char buf[64];
          std::snprintf(buf, sizeof buf, " %s=%.6g", graph.resultName(i).c_str(),
                        result.results[i].getDouble(0));
          line += buf;
        }
      char timing[48];
      std::snprintf(timing, sizeof timing, " (%.1f ms)", ms);
      std::cout << line << timing << "\n";
    }
  }

  std::cout << "@" << graph.name() << " on interp (" << precisionName << "), seed " << seed
            << ", " << steps << " step" << (steps == 1 ? "" : "s") << ":\n";
  TensorMap outputs;
  for (size_t i = 0; i < result.results.size(); ++i) {
    std::cout << "  " << summarize(graph.resultName(i), result.results[i]) << "\n";
    outputs[graph.resultName(i)] = result.results[i];
  }
  if (!result.updated.empty())
    std::cout << "  updated " << result.updated.size() << " params/state\n";
  if (cl.has("--output")) {
    for (const auto &[name, value] : result.updated)
      outputs[name] = arguments.at(name);
    kiln::writeSafetensors(cl.get("--output"), outputs);
  }
  return 0;
}

} // namespace cli
} // namespace kiln
