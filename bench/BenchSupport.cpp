#include "bench/BenchSupport.h"

#include "compiler/FlopCount.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "passes/PassManager.h"
#include "passes/memory/MemoryReport.h"
#include "runtime/Error.h"
#include "runtime/Program.h"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
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
