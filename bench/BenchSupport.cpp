#include "bench/BenchSupport.h"

#include "compiler/FlopCount.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "passes/PassManager.h"
#include "passes/memory/MemoryReport.h"
#include "runtime/CommandLine.h"
#include "runtime/Error.h"
#include "runtime/Program.h"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <unistd.h>

namespace kiln {
namespace bench {

std::vector<std::string> splitList(const std::string &list) {
  std::vector<std::string> items;
  size_t begin = 0;
  while (begin <= list.size()) {
    size_t comma = std::min(list.find(',', begin), list.size());
    items.push_back(list.substr(begin, comma - begin));
    begin = comma + 1;
  }
  return items;
}

double secondsSince(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string utcDate() {
  std::time_t now = std::time(nullptr);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  return text;
}

double median(std::vector<double> values) {
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

OptimizerOptions optimizerFor(const std::string &model) {
  OptimizerOptions o; // shared/BENCHMARKS.md; bench/peers/common.py OPTIMIZERS
  if (model == "gpt") {
    o.kind = OptimizerKind::AdamW;
    o.learningRate = 3e-4;
    o.weightDecay = 0.01;
  } else {
    o.kind = OptimizerKind::Momentum;
    o.learningRate = 0.01;
    o.momentum = 0.9;
  }
  return o;
}

std::unique_ptr<Graph> buildBenchmarkStep(const Graph &model, const std::string &modelName, bool train) {
  std::unique_ptr<Graph> graph =
      train ? buildTrainingStep(model, optimizerFor(modelName), "loss") : cloneGraph(model);
  runPasses(*graph, parsePassPipeline(defaultPipeline()));
  return graph;
}

TensorMap setArgumentValues(const Graph &graph, uint64_t seed, const std::string &workload,
                            const std::function<void(const std::string &, const HostTensor &)> &set) {
  TensorMap exported;
  for (const auto &arg : graph.arguments()) {
    HostTensor value = defaultArgumentValue(*arg, seed);
    bool feed = arg->role == ArgRole::Input && arg->name != "lr";
    if (feed) {
      bool anyNonZero = false;
      for (int64_t i = 0; i < value.numElements() && !anyNonZero; ++i)
        anyNonZero = value.getDouble(i) != 0;
      if (!anyNonZero)
        throwError(workload, "input '" + arg->name + "' came out all zeros");
    }
    if (arg->role == ArgRole::Param || feed)
      exported[arg->name] = value;
    set(arg->name, value);
  }
  return exported;
}

size_t resultIndex(const Program &program, const std::string &name) {
  for (size_t i = 0; i < program.results.size(); ++i)
    if (program.results[i].name == name)
      return i;
  throwError(program.name, "has no result '" + name + "'");
}

nlohmann::json graphFigures(const Graph &planned) {
  nlohmann::json memory = nlohmann::json::parse(memoryReport(planned, /*json=*/true));
  FlopCount flops = countFlops(planned);
  return {{"flops", flops.contraction},
          {"elementwise_flops", flops.elementwise},
          {"arena_bytes", memory.at("arena_bytes")},
          {"max_live_bytes", memory.at("max_live_bytes")}};
}

double addEfficiency(nlohmann::json &workload, double peakFlopsPerSecond) {
  double flops = double(workload["flops"].get<int64_t>()), median = workload["median_ms"];
  workload["limit_ms"] = flops / peakFlopsPerSecond * 1e3;
  workload["efficiency"] = flops / peakFlopsPerSecond * 1e3 / median;
  return flops / (median * 1e-3);
}

bool parseCommandLine(CommandLine &cl, int argc, char **argv, const char *usage) {
  cl.parse(argc, argv, 1);
  if (cl.has("--help") || cl.has("-h")) {
    std::cout << usage;
    return false;
  }
  if (!cl.positional().empty())
    throwError("", "unexpected argument '" + cl.positional()[0] + "' (see --help)");
  return true;
}

RunOptions readRunOptions(const CommandLine &cl, int sgemmSize, int sgemmReps, int maxSgemmSize) {
  RunOptions o;
  o.steps = cl.getUnsigned("--steps", 50);
  o.warmup = cl.getUnsigned("--warmup", 5);
  o.seed = cl.getUnsigned("--seed", 0);
  o.exportDir = cl.get("--export-dir");
  o.sgemmSize = int(std::min<uint64_t>(cl.getUnsigned("--sgemm-size", uint64_t(sgemmSize)), 1u << 30));
  o.sgemmReps = int(std::min<uint64_t>(cl.getUnsigned("--sgemm-reps", uint64_t(sgemmReps)), 1u << 30));
  if (o.steps < 1 || o.steps > 1000000)
    throwError("", "--steps must be 1 to 1000000");
  if (o.warmup < 2)
    throwError("", "--warmup must be at least 2 (the first two steps give the losses)");
  if (o.sgemmSize < 64 || o.sgemmSize > maxSgemmSize || o.sgemmReps < 1)
    throwError("", "--sgemm-size must be 64 to " + std::to_string(maxSgemmSize) + " and --sgemm-reps at least 1");
  return o;
}

void printReport(const nlohmann::json &report, bool asJson, void (*table)(const nlohmann::json &)) {
  if (asJson)
    std::cout << report.dump(1) << "\n";
  else
    table(report);
}

FreshKernelCache::FreshKernelCache(const std::string &tag) {
  if (const char *saved = std::getenv("KILN_CACHE_DIR")) {
    saved_ = saved;
    hadSaved_ = true;
  }
  dir_ = (std::filesystem::temp_directory_path() / (tag + "-cache-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir_);
  ::setenv("KILN_CACHE_DIR", dir_.c_str(), 1);
}

FreshKernelCache::~FreshKernelCache() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
  if (hadSaved_)
    ::setenv("KILN_CACHE_DIR", saved_.c_str(), 1);
  else
    ::unsetenv("KILN_CACHE_DIR");
}

} // namespace bench
} // namespace kiln
