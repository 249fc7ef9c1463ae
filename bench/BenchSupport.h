// What kiln-bench (CPU) and kiln-bench-gpu share: the optimizers of
// shared/BENCHMARKS.md, the training step through the default pipeline, the
// seeded argument values (and their export for bench/peers), the graph's FLOP
// and memory figures, a fresh kernel cache for cold compiles, timing helpers.
// No backend: kiln-bench-gpu links it without the CPU backend.
#pragma once

#include "compiler/TrainingStep.h"
#include "runtime/Safetensors.h"
#include "runtime/Tensor.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kiln {

class CommandLine;
class Graph;
struct Program;

namespace bench {

using Clock = std::chrono::steady_clock;

/// "a,b,c" -> {"a", "b", "c"}.
std::vector<std::string> splitList(const std::string &list);
double secondsSince(Clock::time_point since);
/// "2026-11-26 14:20 UTC".
std::string utcDate();
/// The median of `values` (the mean of the middle two for an even count); 0 for none.
double median(std::vector<double> values);

/// The optimizer of each model ("mlp", "cnn": SGD lr 0.01 momentum 0.9;
/// "gpt": AdamW lr 3e-4 weight decay 0.01): bench/peers/common.py's OPTIMIZERS.
OptimizerOptions optimizerFor(const std::string &model);

/// The training step of `model` (buildTrainingStep with optimizerFor(modelName))
/// or, when !train, a copy of the forward pass, after the default pipeline.
std::unique_ptr<Graph> buildBenchmarkStep(const Graph &model, const std::string &modelName, bool train);

/// Seeded values of every argument of `graph` (defaultArgumentValue): params
/// from their initializers, inputs uniform in their feed ranges, optimizer
/// state zeros, `lr` its default. `set` receives each. Checks that no input
/// (but `lr`) came out all zeros (a kiln::Error located at `workload`).
/// Returns the params and inputs but `lr`: what bench/peers load.
TensorMap setArgumentValues(const Graph &graph, uint64_t seed, const std::string &workload,
                            const std::function<void(const std::string &, const HostTensor &)> &set);

/// The index of the result named `name` of `program`; a kiln::Error otherwise.
size_t resultIndex(const Program &program, const std::string &name);

/// FLOPs (countFlops: `flops` the contractions, `elementwise_flops`) and the
/// memory plan's `arena_bytes` and `max_live_bytes` of a planned graph.
nlohmann::json graphFigures(const Graph &planned);

/// Sets `limit_ms` (FLOPs / peak) and `efficiency` (limit_ms / median_ms)
/// of a workload's report from its `flops` and `median_ms`; returns its
/// FLOP/s (flops / median).
double addEfficiency(nlohmann::json &workload, double peakFlopsPerSecond);

/// Parses argv[1..] into `cl`; false (after printing `usage`) for --help or
/// -h; a kiln::Error for a positional argument.
bool parseCommandLine(CommandLine &cl, int argc, char **argv, const char *usage);

/// The options kiln-bench and kiln-bench-gpu share.
struct RunOptions {
  uint64_t steps = 50, warmup = 5, seed = 0;
  std::string exportDir;
  int sgemmSize = 0, sgemmReps = 0;
};

/// Reads --steps (default 50; 1 to 1000000), --warmup (5; at least 2),
/// --seed (0), --export-dir, --sgemm-size (`sgemmSize`; 64 to `maxSgemmSize`)
/// and --sgemm-reps (`sgemmReps`; at least 1); a kiln::Error for a value out
/// of range.
RunOptions readRunOptions(const CommandLine &cl, int sgemmSize, int sgemmReps, int maxSgemmSize);

/// Prints `report`: as one JSON object (`asJson`) or by `table`.
void printReport(const nlohmann::json &report, bool asJson, void (*table)(const nlohmann::json &));

/// While alive: $KILN_CACHE_DIR is a new, empty temporary folder (so the next
/// compile is cold); the folder is removed and the variable restored after.
class FreshKernelCache {
public:
  explicit FreshKernelCache(const std::string &tag);
  ~FreshKernelCache();
  FreshKernelCache(const FreshKernelCache &) = delete;
  FreshKernelCache &operator=(const FreshKernelCache &) = delete;

private:
  std::string dir_, saved_;
  bool hadSaved_ = false;
};

} // namespace bench
} // namespace kiln
