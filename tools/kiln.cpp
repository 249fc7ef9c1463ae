// kiln: the command-line compiler: print, compile (IR, CPU code and
// executables, CUDA C++ and PTX), check-grad, run (on the reference
// interpreter, the CPU or a GPU).
#include "CommandLine.h"
#include "PipelineFlags.h"
#include "compiler/CpuBackend.h"
#include "compiler/CudaBackend.h"
#include "compiler/GradCheck.h"
#include "compiler/TrainingStep.h"
#include "ir/ArgumentValues.h"
#include "ir/Dot.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Json.h"
#include "ir/ModuleFile.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "runtime/Feeds.h"
#include "runtime/Npy.h"
#include "runtime/Numerics.h"
#include "runtime/Safetensors.h"
#ifdef KILN_HAVE_CPU_BACKEND
#include "AotLink.h"
#include "runtime/cpu/AotHeader.h"
#include "runtime/cpu/Executable.h"
#include "runtime/cpu/Threads.h"
#endif

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <unistd.h>

namespace {

const char *kUsage = R"(usage: kiln <command> [options]

commands:
  print FILE [--json] [-o OUT]
      Reads a .kir or .json graph file (- for .kir on stdin), verifies it and
      prints it as .kir text (or as JSON with --json; with -o OUT.json the
      weights, if any, go to OUT.weights.safetensors).

  compile FILE [--train --optimizer=sgd|momentum|nesterov|adam|adamw [--lr=X]
               [--momentum=X] [--weight-decay=X] [--clip-norm=X] [--loss=NAME]]
               [--graph=NAME] [--emit=kir|json|dot|mlir|llvm|asm|obj|cuda|ptx]
               [--target=cpu] [--cpu=NAME] [--arch=sm_90] [-o OUT] [pipeline flags]
      Compiles a graph. With --train the result is the whole training step:
      forward, loss, gradients of every param and the optimizer update, as
      one graph with `update`s (the learning rate is its input `lr`, with
      --lr as default); that is the stage `train`. Then the pipeline runs:
      --passes, else the default pipeline. --emit=kir (default) or json
      writes the graph, dot a Graphviz digraph of it (fusions as clusters);
      mlir, llvm (after O3) or asm the CPU backend's kernels (with
      --dump-dir also DIR/kernels/, one file per kernel); obj an object
      file OUT.o plus its C header OUT.h. --target=cpu -o NAME links a
      standalone executable (NAME --help). --cpu (or -mcpu) names
      the CPU to generate code for (LLVM's names; default: the host).
      --emit=cuda writes the CUDA C++ of the GPU kernels, --emit=ptx their
      PTX from NVRTC for --arch (with --dump-dir also one .cu per kernel).

  check-grad FILE [--inputs=FEEDS] [--tol=1e-6] [--seed=N]
                  [--elements=N] [--loss=NAME] [--graph=NAME]
      For a graph with a scalar loss: every param's gradient from autodiff
      versus central finite differences, in f64 through the interpreter.
      Checks all elements of small params, else the N largest gradients and
      N random elements (default 4). Prints the worst relative error per
      param; exits 1 above the tolerance.

  run FILE [--target=interp|cpu|cuda] [--train --optimizer=NAME [--lr=X] ...] [--graph=NAME]
           [--inputs=FEEDS] [--seed=N] [--steps=N] [--precision=native|f64]
           [--output=OUT.safetensors] [--check-numerics] [--memory-limit=BYTES]
           [--profile] [--trace=FILE.json] [--no-cuda-graph]
      Runs a graph and prints a summary of its results. --inputs is a comma
      list of FILE.safetensors and NAME=FILE.npy entries and may give any
      graph argument by name (inputs, params, state); the others get seeded
      random values (params and state from their initializer, or the weights
      of a .json file). With --steps=N the graph runs N times and updated
      params/state carry over. --output writes the results (named out0, ...
      unless the graph names them) and the updated params and state.
      --check-numerics stops at the first argument or node (on the CPU and
      the GPU: kernel or library call) holding a NaN or infinity; a graph whose live
      values in the interpreter (on the CPU: arena and argument buffers) would
      exceed --memory-limit (default: the physical memory) is refused before
      it runs (--target=cuda: more than the GPU's memory).
      --target=cuda compiles the kernels with NVRTC for the first GPU and
      runs the step there, captured as a CUDA graph from the second run on
      (--no-cuda-graph: kernel by kernel every run).
      --profile (--target=cpu|cuda) prints the time of every step entry (kernel
      or library call) per run, slowest first, over the runs after the first
      (all of them with --steps=1; on the GPU: CUDA-event time of the runs
      after the first, launched step by step instead of as the graph);
      --trace=FILE.json writes the last run's entries as a Chrome trace
      (Perfetto, chrome://tracing).
)";

using kiln::HostTensor;
using kiln::TensorMap;

/// `loss: f32[] = 2.302585`, or min/mean/max for larger tensors.
std::string summarize(const std::string &name, const HostTensor &t) {
  char buf[256];
  if (t.numElements() == 1) {
    std::snprintf(buf, sizeof buf, "%s: %s = %.9g", name.c_str(), t.typeString().c_str(),
                  t.getDouble(0));
    return buf;
  }
  if (t.numElements() == 0)
    return name + ": " + t.typeString() + " (empty)";
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  int64_t nonFinite = 0;
  for (int64_t i = 0; i < t.numElements(); ++i) {
    double v = t.getDouble(i);
    if (!std::isfinite(v)) {
      ++nonFinite;
      continue;
    }
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  std::snprintf(buf, sizeof buf, "%s: %s min %.6g mean %.6g max %.6g", name.c_str(),
                t.typeString().c_str(), lo, sum / double(t.numElements() - nonFinite), hi);
  std::string s = buf;
  if (nonFinite)
    s += " (" + std::to_string(nonFinite) + " non-finite)";
  return s;
}

const kiln::Graph &selectGraph(const kiln::Module &module, const std::string &name,
                               const std::string &file) {
  if (name.empty()) {
    if (module.graphs.size() > 1)
      kiln::throwError(file, "holds " + std::to_string(module.graphs.size()) +
                                 " graphs; choose one with --graph=NAME");
    return *module.graphs[0];
  }
  for (const auto &g : module.graphs)
    if (g->name() == name)
      return *g;
  kiln::throwError(file, "has no graph @" + name);
}

/// Checks that every tensor of `source` names an argument of `graph` and has its type.
void checkFeeds(const kiln::Graph &graph, const TensorMap &tensors, const std::string &source) {
  for (const auto &[name, t] : tensors) {
    const kiln::Argument *arg = graph.findArgument(name);
    if (!arg) {
      std::string names;
      for (const auto &a : graph.arguments())
        names += (names.empty() ? "" : ", ") + a->name;
      kiln::throwError(source, "tensor '" + name + "' is not an argument of @" + graph.name() +
                                   " (its arguments: " + names + ")");
    }
    if (t.dtype() != arg->value.type.dtype || t.shape() != arg->value.type.shape)
      kiln::throwError(source, "tensor '" + name + "' has type " + t.typeString() + " but @" +
                                   graph.name() + " expects " + arg->value.type.toString());
  }
}

/// The tensors named by `--inputs`: a comma list of entries, each a
/// safetensors file or `NAME=FILE.npy` (an entry ending in `.npy` is the
/// latter). Each is checked against `graph` where it was read; a name given
/// twice is an error.
TensorMap loadFeeds(const kiln::Graph &graph, const std::string &spec) {
  return kiln::readFeedList(spec, [&](const TensorMap &tensors, const std::string &source) {
    checkFeeds(graph, tensors, source);
  });
}

int printCommand(const kiln::CommandLine &cl) {
  if (cl.positional().size() != 1)
    kiln::throwError("", "print expects one input file; see --help");
  kiln::Module module = kiln::loadModuleFile(cl.positional()[0]);
  if (cl.has("--json") && cl.has("-o")) {
    kiln::writeJsonModule(cl.get("-o"), module);
    return 0;
  }
  std::string text = cl.has("--json") ? kiln::printJsonModule(module) : kiln::printModule(module);
  if (cl.has("-o"))
    kiln::writeFileAtomically(cl.get("-o"), text);
  else
    std::cout << text;
  return 0;
}

kiln::OptimizerOptions optimizerOptions(const kiln::CommandLine &cl);
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

double getDouble(const kiln::CommandLine &cl, const std::string &name, double fallback) {
  if (!cl.has(name))
    return fallback;
  std::string text = cl.get(name);
  char *end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end || !std::isfinite(v))
    kiln::throwError("", "option '" + name + "' expects a number, got '" + text + "'");
  return v;
}

/// The optimizer of `kiln compile --train`.
kiln::OptimizerOptions optimizerOptions(const kiln::CommandLine &cl) {
  std::string name = cl.get("--optimizer", "sgd");
  std::optional<kiln::OptimizerKind> kind = kiln::parseOptimizerKind(name);
  if (!kind)
    kiln::throwError("", "unknown optimizer '" + name +
                             "' (expected sgd, momentum, nesterov, adam or adamw)");
  kiln::OptimizerOptions options;
  options.kind = *kind;
  options.learningRate = getDouble(cl, "--lr", options.learningRate);
  options.momentum = getDouble(cl, "--momentum", options.momentum);
  if (cl.has("--weight-decay"))
    options.weightDecay = getDouble(cl, "--weight-decay", 0);
  options.clipNorm = getDouble(cl, "--clip-norm", 0);
  if (options.clipNorm < 0)
    kiln::throwError("", "--clip-norm must be >= 0");
  return options;
}

/// `kiln compile --emit=cuda|ptx`: the GPU kernels of every graph, compiled by
/// NVRTC for --arch; --dump-dir also gets each kernel's source.
int emitCuda(const kiln::Module &out, const kiln::CommandLine &cl, const std::string &emit) {
  std::string text;
  for (const auto &g : out.graphs) {
    kiln::CudaCompiled compiled = kiln::compileForCuda(*g, cl.get("--arch", "sm_90"));
    text += kiln::cudaText(compiled, emit);
    if (cl.has("--dump-dir"))
      kiln::dumpCudaKernels(compiled, cl.get("--dump-dir"));
  }
  if (cl.has("-o"))
    kiln::writeFileAtomically(cl.get("-o"), text);
  else
    std::cout << text;
  return 0;
}

/// Checks the output options of `kiln compile`: --emit, --target, --cpu, -o.
void checkCompileOutput(const kiln::CommandLine &cl, const std::string &emit) {
  static const std::set<std::string> emits = {"kir",  "json", "dot", "mlir",
                                              "llvm", "asm",  "obj", "exe", "cuda", "ptx"};
  if (!emits.count(emit))
    kiln::throwError("", "--emit must be kir, json, dot, mlir, llvm, asm, obj, cuda or ptx, got '" + emit + "'");
  bool cudaOutput = emit == "cuda" || emit == "ptx";
  if (cl.has("--arch") && !cudaOutput)
    kiln::throwError("", "--arch is an option of --emit=cuda|ptx");
  std::string target = cl.get("--target", "cpu");
  if (target != "cpu")
    kiln::throwError("", "unknown target '" + target + "' for compile (this build has: cpu)");
  bool cpuOutput = emit != "kir" && emit != "json" && emit != "dot" && !cudaOutput;
  if (cl.has("--target") && !cpuOutput)
    kiln::throwError("", "--target=cpu writes an executable or --emit=mlir|llvm|asm|obj, not --emit=" + emit);
  if ((cl.has("--cpu") || cl.has("-mcpu")) && !cpuOutput)
    kiln::throwError("", "--cpu is for --target=cpu and --emit=llvm|asm|obj");
  if ((emit == "exe" || emit == "obj") && !cl.has("-o"))
    kiln::throwError("", std::string(emit == "exe" ? "--target=cpu" : "--emit=obj") +
                             " needs -o NAME (the file to write)");
}

#ifdef KILN_HAVE_CPU_BACKEND
/// Fails early, with the path, when `path` cannot be written (before compiling).
void checkWritable(const std::string &path) {
  std::filesystem::path p(path);
  std::filesystem::path dir = p.parent_path().empty() ? "." : p.parent_path();
  if (std::filesystem::is_directory(p))
    kiln::throwError(path, "is a directory, not an output file");
  if (::access(dir.c_str(), W_OK) != 0)
    kiln::throwError(path, std::string("cannot write here: ") + std::strerror(errno));
}

/// A C identifier from an output file name: `out/my-mlp.o` -> `my_mlp`.
std::string apiName(const std::string &path) {
  std::string stem = std::filesystem::path(path).stem().string(), name;
  for (char c : stem)
    name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0])))
    name = "_" + name;
  return name;
}

/// The per-kernel files of --dump-dir: DIR/kernels/NAME.mlir, .ll and .s, each
/// starting with a comment naming its step, and DIR/kernels/index.txt.
void writeKernelDumps(const std::string &dir, const kiln::Graph &graph,
                      const kiln::CpuAotCompiled &compiled) {
  std::filesystem::path folder = std::filesystem::path(dir) / "kernels";
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (error)
    kiln::throwError(folder.string(), "cannot create the folder: " + error.message());
  std::string index;
  for (size_t i = 0; i < compiled.code.kernels.size(); ++i) {
    const kiln::KernelCode &k = compiled.code.kernels[i];
    std::string what = k.name + ": step " + compiled.kernelSteps[i] + " of @" + graph.name() + "\n";
    index += k.name + "\t" + compiled.kernelSteps[i] + "\n";
    std::string base = (folder / k.name).string();
    kiln::writeFileAtomically(base + ".mlir", "// " + what + k.mlir + "\n");
    kiln::writeFileAtomically(base + ".ll", "; " + what + k.llvm + "\n");
    kiln::writeFileAtomically(base + ".s", "# " + what + k.assembly);
  }
  kiln::writeFileAtomically((folder / "index.txt").string(), index);
}

/// `c++` links `object` with the runtime into the executable `output`.
void linkExecutable(const std::string &object, const std::string &output) {
  std::string command = kiln::aotLinkCommand(object, output);
  std::FILE *pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe)
    kiln::throwError(output, "cannot run the linker: " + std::string(std::strerror(errno)));
  std::string log;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe))
    log.append(buf, n);
  int status = ::pclose(pipe);
  if (status != 0) {
    std::string first = log.substr(0, log.find('\n'));
    kiln::throwError(output, "linking failed (" + command + "): " + first);
  }
}

#endif

/// `kiln compile` for the CPU: --emit=mlir|llvm|asm (the whole program's
/// kernels; with --dump-dir also per kernel), --emit=obj (object + C header),
/// or a standalone executable (--target=cpu -o NAME).
int writeCpuOutput(const kiln::CommandLine &cl, const kiln::Graph &graph, const std::string &emit) {
#ifndef KILN_HAVE_CPU_BACKEND
  kiln::throwError("", "this build has no CPU backend (configure with -DKILN_ENABLE_CPU_BACKEND=ON)");
#else
  std::string output = cl.get("-o");
  if (!output.empty())
    checkWritable(output);
  // NAME.o comes with NAME.h.
  std::string header = output.size() > 2 && output.compare(output.size() - 2, 2, ".o") == 0
                           ? output.substr(0, output.size() - 2) + ".h" : output + ".h";
  if (emit == "obj")
    checkWritable(header);
  kiln::CpuCodeOptions options;
  options.cpu = cl.get("--cpu", cl.get("-mcpu"));
  if ((cl.has("--cpu") || cl.has("-mcpu")) && options.cpu.empty())
    kiln::throwError("", "--cpu needs a CPU name (e.g. x86-64-v3; default: the host)");
  bool dump = cl.has("--dump-dir");
  options.perKernel = dump;
  options.llvm = emit == "llvm" || dump;
  options.assembly = emit == "asm" || dump;
  options.object = emit == "obj" || emit == "exe";
  std::string api = emit == "obj" ? apiName(output) : "aot";
  if (options.object)
    options.symbolPrefix = kiln::cpu::aotSymbolPrefix(api);
  kiln::CpuAotCompiled compiled = kiln::compileForCpuAot(graph, options);
  if (dump)
    writeKernelDumps(cl.get("--dump-dir"), graph, compiled);
  if (emit == "mlir" || emit == "llvm" || emit == "asm") {
    const std::string &text = emit == "mlir" ? compiled.code.mlir
                              : emit == "llvm" ? compiled.code.llvm : compiled.code.assembly;
    if (output.empty())
      std::cout << text;
    else
      kiln::writeFileAtomically(output, text);
    return 0;
  }
  if (emit == "obj") {
    kiln::writeFileAtomically(output, compiled.code.object);
    kiln::writeFileAtomically(header, kiln::cpu::aotHeader(api, compiled.program));
    return 0;
  }
  char objectPath[] = "/tmp/kiln-aot-XXXXXX.o";
  int fd = ::mkstemps(objectPath, 2);
  if (fd < 0)
    kiln::throwError("/tmp", "cannot create a temporary object file: " + std::string(std::strerror(errno)));
  ::close(fd);
  struct Remove {
    const char *path;
    ~Remove() { std::remove(path); }
  } removeObject{objectPath};
  kiln::writeFileAtomically(objectPath, compiled.code.object);
  linkExecutable(objectPath, output);
  return 0;
#endif
}

int compileCommand(const kiln::CommandLine &cl) {
  if (cl.positional().size() != 1)
    kiln::throwError("", "compile expects one input file; see --help");
  const std::string file = cl.positional()[0];
  std::string emit = cl.get("--emit", cl.has("--target") ? "exe" : "kir");
  checkCompileOutput(cl, emit);
  for (const char *trainOnly : {"--optimizer", "--lr", "--momentum", "--weight-decay",
                                "--clip-norm", "--loss"})
    if (cl.has(trainOnly) && !cl.has("--train"))
      kiln::throwError("", std::string("option '") + trainOnly + "' needs --train");
  bool train = cl.has("--train");
  kiln::OptimizerOptions optimizer = train ? optimizerOptions(cl) : kiln::OptimizerOptions();
  std::vector<std::unique_ptr<kiln::Pass>> passes =
      kiln::parsePassPipeline(cl.has("--passes") ? cl.get("--passes") : kiln::defaultPipeline());
  std::vector<std::string> stages = kiln::passNames(passes);
  if (train)
    stages.insert(stages.begin(), "train");
  kiln::PassManager passManager(kiln::pipelineOptions(cl), stages);
  std::vector<std::string> reports = kiln::requestedReports(cl);

  kiln::Module module = kiln::loadModuleFile(file);
  kiln::Module out;
  out.weights = module.weights;
  out.graphs.push_back(kiln::cloneGraph(selectGraph(module, cl.get("--graph"), file)));
  passManager.begin(out);
  if (train)
    passManager.runStage("train", out, [&](kiln::Module &m) {
      m.graphs[0] = kiln::buildTrainingStep(*m.graphs[0], optimizer, cl.get("--loss"));
      return true;
    });
  passManager.run(out, passes);
  passManager.printTimings();
  if (!reports.empty())
    std::cout << kiln::reportText(out, reports, cl.get("--report-format", "text"));
  if (emit == "cuda" || emit == "ptx")
    return emitCuda(out, cl, emit);
  if (emit != "kir" && emit != "json" && emit != "dot")
    return writeCpuOutput(cl, *out.graphs[0], emit);
  if (emit == "json" && cl.has("-o")) {
    kiln::writeJsonModule(cl.get("-o"), out);
    return 0;
  }
  std::string text = emit == "json"  ? kiln::printJsonModule(out)
                     : emit == "dot" ? kiln::printDotModule(out) // Graphviz, fusions as clusters
                                     : kiln::printModule(out);
  if (cl.has("-o"))
    kiln::writeFileAtomically(cl.get("-o"), text);
  else if (reports.empty())
    std::cout << text;
  return 0;
}

int checkGradCommand(const kiln::CommandLine &cl) {
  if (cl.positional().size() != 1)
    kiln::throwError("", "check-grad expects one input file; see --help");
  const std::string file = cl.positional()[0];
  double tolerance = getDouble(cl, "--tol", 1e-6);
  kiln::GradCheckOptions options;
  options.seed = cl.getUnsigned("--seed", 0);
  options.elements = int64_t(cl.getUnsigned("--elements", 4));
  options.lossName = cl.get("--loss");
  options.tolerance = tolerance;
  kiln::Module module = kiln::loadModuleFile(file);
  const kiln::Graph &graph = selectGraph(module, cl.get("--graph"), file);
  checkFeeds(graph, module.weights, file + " weights");
  options.arguments = module.weights;
  if (cl.has("--inputs"))
    for (auto &[name, t] : loadFeeds(graph, cl.get("--inputs")))
      options.arguments[name] = t;
  std::printf("check-grad @%s: autodiff vs central differences in f64, seed %llu, tolerance %g\n",
              graph.name().c_str(), (unsigned long long)options.seed, tolerance);
  std::printf("  %-32s %17s %12s %15s %15s\n", "param", "elements checked", "worst rel", "analytic",
              "numeric");
  options.onParam = [](const kiln::ParamGradCheck &c) {
    std::printf("  %-32s %8lld/%-8lld %12.3g %15.8g %15.8g", c.name.c_str(),
                (long long)c.checkedElements, (long long)c.totalElements, c.worstRelativeError,
                c.analytic, c.numeric);
    if (c.skippedElements)
      std::printf("  (%lld on a kink, replaced)", (long long)c.skippedElements);
    std::printf("\n");
    std::fflush(stdout);
  };
  std::vector<kiln::ParamGradCheck> report = kiln::checkGradients(graph, options);
  if (report.empty())
    kiln::throwError(file, "@" + graph.name() + " has no float param to check");
  const kiln::ParamGradCheck *worst = &report[0];
  for (const auto &c : report)
    if (c.worstRelativeError > worst->worstRelativeError)
      worst = &c;
  for (const auto &c : report)
    if (c.checkedElements == 0) {
      std::printf("FAILED: no element of '%s' could be checked (all on kinks)\n", c.name.c_str());
      return 1;
    }
  if (!(worst->worstRelativeError <= tolerance)) {
    std::printf("FAILED: '%s' has relative error %.3g > %g\n", worst->name.c_str(),
                worst->worstRelativeError, tolerance);
    return 1;
  }
  std::printf("ok: worst relative error %.3g ('%s') <= %g\n", worst->worstRelativeError,
              worst->name.c_str(), tolerance);
  return 0;
}

int run(int argc, char **argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage << "\n" << kiln::kPipelineFlagsUsage;
    return argc < 2 ? 1 : 0;
  }
  std::string command = argv[1];
  if (command == "print") {
    kiln::CommandLine cl({"-o"}, {"--json"});
    cl.parse(argc, argv, 2);
    return printCommand(cl);
  }
  if (command == "run") {
    kiln::CommandLine cl({"--target", "--graph", "--inputs", "--seed", "--steps", "--precision",
                          "--optimizer", "--lr", "--momentum", "--weight-decay", "--clip-norm", "--loss",
                          "--output", "--memory-limit", "--trace"},
                         {"--train", "--check-numerics", "--profile", "--no-cuda-graph"});
    cl.parse(argc, argv, 2);
    return runCommand(cl);
  }
  if (command == "compile") {
    kiln::CommandLine cl(kiln::withPipelineValueOptions({"--optimizer", "--lr", "--momentum",
                                                         "--weight-decay", "--clip-norm", "--loss",
                                                         "--graph", "--emit", "-o", "--target",
                                                         "--cpu", "-mcpu", "--arch"}),
                         kiln::withPipelineFlags({"--train"}));
    cl.parse(argc, argv, 2);
    return compileCommand(cl);
  }
  if (command == "check-grad") {
    kiln::CommandLine cl({"--inputs", "--tol", "--seed", "--elements", "--loss", "--graph"}, {});
    cl.parse(argc, argv, 2);
    return checkGradCommand(cl);
  }
  kiln::throwError("", "unknown command '" + command +
                           "' (expected print, compile, check-grad or run; see --help)");
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const kiln::Error &e) {
    std::cerr << kiln::toolMessage("kiln", e) << "\n";
  } catch (const std::bad_alloc &) {
    std::cerr << "kiln: error: out of memory\n";
  } catch (const std::exception &e) {
    std::cerr << "kiln: internal error: " << e.what() << "\n";
  }
  return 1;
}
