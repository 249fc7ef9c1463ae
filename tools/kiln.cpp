// kiln: the command-line compiler: print, compile (IR, CPU code and
// executables, CUDA C++ and PTX), check-grad, run (on the reference
// interpreter, the CPU or a GPU: tools/RunCommand.cpp).
#include "CommandLine.h"
#include "PipelineFlags.h"
#include "ToolSupport.h"
#include "compiler/CpuBackend.h"
#include "compiler/CudaBackend.h"
#include "compiler/GradCheck.h"
#include "compiler/TrainingStep.h"
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
#include "runtime/Safetensors.h"
#ifdef KILN_HAVE_CPU_BACKEND
#include "AotLink.h"
#include "runtime/cpu/AotHeader.h"
#endif

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
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
using kiln::cli::checkFeeds;
using kiln::cli::getDouble;
using kiln::cli::loadFeeds;
using kiln::cli::optimizerOptions;
using kiln::cli::runCommand;
using kiln::cli::selectGraph;

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
