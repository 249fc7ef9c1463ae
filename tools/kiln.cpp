// kiln: the command-line compiler. `kiln print` and `kiln run` for now;
// `kiln compile` arrives with the backends.
#include "CommandLine.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Json.h"
#include "ir/ModuleFile.h"
#include "ir/Printer.h"
#include "runtime/Safetensors.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace {

const char *kUsage = R"(usage: kiln <command> [options]

commands:
  print FILE [--json] [-o OUT]
      Reads a .kir or .json graph file (- for .kir on stdin), verifies it and
      prints it as .kir text (or as JSON with --json; with -o OUT.json the
      weights, if any, go to OUT.weights.safetensors).

  run FILE [--target=interp] [--graph=NAME] [--inputs=FEEDS.safetensors]
           [--seed=N] [--steps=N] [--precision=native|f64]
           [--output=OUT.safetensors]
      Runs a graph and prints a summary of its results. --inputs may hold any
      graph argument by name (inputs, params, state); the others get seeded
      random values (params and state from their initializer, or the weights
      of a .json file). With --steps=N the graph runs N times and updated
      params/state carry over. --output writes the results (named out0, ...
      unless the graph names them) and the updated params and state.
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

int runCommand(const kiln::CommandLine &cl) {
  if (cl.positional().size() != 1)
    kiln::throwError("", "run expects one input file; see --help");
  std::string target = cl.get("--target", "interp");
  if (target != "interp")
    kiln::throwError("", "unknown target '" + target + "' (this build has: interp)");
  std::string precisionName = cl.get("--precision", "native");
  if (precisionName != "native" && precisionName != "f64")
    kiln::throwError("", "--precision must be native or f64, got '" + precisionName + "'");
  kiln::Precision precision =
      precisionName == "f64" ? kiln::Precision::F64 : kiln::Precision::Native;
  uint64_t seed = cl.getUnsigned("--seed", 0);
  uint64_t steps = cl.getUnsigned("--steps", 1);
  if (steps == 0)
    kiln::throwError("", "--steps must be at least 1");

  const std::string file = cl.positional()[0];
  kiln::Module module = kiln::loadModuleFile(file);
  const kiln::Graph &graph = selectGraph(module, cl.get("--graph"), file);
  checkFeeds(graph, module.weights, file + " weights");
  TensorMap feeds;
  if (cl.has("--inputs")) {
    feeds = kiln::readSafetensors(cl.get("--inputs"));
    checkFeeds(graph, feeds, cl.get("--inputs"));
  }

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
    result = kiln::interpret(graph, arguments, precision);
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

int run(int argc, char **argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
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
                          "--output"},
                         {});
    cl.parse(argc, argv, 2);
    return runCommand(cl);
  }
  kiln::throwError("", "unknown command '" + command + "' (expected print or run; see --help)");
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
