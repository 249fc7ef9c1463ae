#include "passes/PassManager.h"

#include "ir/Graph.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/autodiff/Autodiff.h"
#include "passes/fusion/Fusion.h"
#include "passes/memory/MemoryChecker.h"
#include "passes/memory/PlanMemory.h"
#include "passes/simplify/Canonicalize.h"
#include "passes/simplify/CommonSubexpressions.h"
#include "passes/simplify/ConstantFold.h"
#include "passes/simplify/DeadCode.h"
#include "passes/simplify/Simplify.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace kiln {

namespace {

struct PassEntry {
  const char *name;
  std::unique_ptr<Pass> (*create)();
};

const std::vector<PassEntry> &passTable() {
  static const std::vector<PassEntry> table = {
#define KILN_PASS(Name, Factory) {Name, &Factory},
#include "passes/Passes.def"
  };
  return table;
}

/// What --verify-each checks after every pass.
void verifyAfterPass(const Graph &graph) {
  verifyGraph(graph);
  if (std::string problem = checkMemoryPlan(graph); !problem.empty()) // a planned graph
    throwError("@" + graph.name(), "invalid memory plan: " + problem);
}

bool contains(const std::vector<std::string> &names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string joinNames(const std::vector<std::string> &names) {
  std::string out;
  for (const std::string &name : names)
    out += (out.empty() ? "" : ", ") + name;
  return out;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

const std::string &defaultPipeline() {
  static const std::string pipeline = "simplify,fuse,plan-memory";
  return pipeline;
}

std::vector<std::unique_ptr<Pass>> parsePassPipeline(const std::string &list) {
  std::vector<std::unique_ptr<Pass>> passes;
  size_t pos = 0;
  while (pos < list.size()) {
    size_t comma = list.find(',', pos);
    std::string name = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? list.size() : comma + 1;
    const PassEntry *entry = nullptr;
    for (const PassEntry &e : passTable())
      if (name == e.name)
        entry = &e;
    if (!entry) {
      std::string known;
      for (const PassEntry &e : passTable())
        known += (known.empty() ? "" : ", ") + std::string(e.name);
      throwError("", "unknown pass '" + name + "' (passes: " + known + ")");
    }
    passes.push_back(entry->create());
  }
  return passes;
}

std::vector<std::pair<std::string, std::string>> registeredPasses() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const PassEntry &e : passTable())
    out.emplace_back(e.name, std::string(e.create()->description()));
  return out;
}

bool runPasses(Graph &graph, const std::vector<std::unique_ptr<Pass>> &passes,
               const PassManagerOptions &options) {
  bool changed = false;
  for (const auto &pass : passes) {
    changed = pass->run(graph) == PassResult::Changed || changed;
    if (options.verifyEach)
      verifyAfterPass(graph);
    if (options.afterPass)
      options.afterPass(pass->name(), graph);
  }
  return changed;
}

PassManager::PassManager(PassManagerOptions options, std::vector<std::string> stages)
    : options_(std::move(options)) {
  std::vector<std::string> known;
  for (const PassEntry &e : passTable())
    known.push_back(e.name);
  for (const std::string &stage : stages)
    if (!contains(known, stage))
      known.push_back(stage);
  auto checkKnown = [&](const char *flag, const std::string &name) {
    if (!contains(known, name))
      throwError("", "unknown pass '" + name + "' in " + flag + " (passes: " + joinNames(known) +
                         ")");
  };
  for (const std::string &name : options_.printAfter)
    checkKnown("--print-after", name);
  for (const std::string &name : options_.printBefore)
    checkKnown("--print-before", name);
  if (!options_.stopAfter.empty()) {
    checkKnown("--stop-after", options_.stopAfter);
    if (!contains(stages, options_.stopAfter))
      throwError("", "--stop-after=" + options_.stopAfter + " is not a stage of this pipeline (" +
                         (stages.empty() ? "it is empty" : "stages: " + joinNames(stages)) + ")");
  }
  for (std::string &stage : stages)
    timings_.push_back({std::move(stage), 0});
}

PassManager::~PassManager() = default;

std::ostream &PassManager::log() const { return options_.log ? *options_.log : std::cerr; }

void PassManager::begin(const Module &module) {
  stageIndex_ = 0;
  stopped_ = false;
  if (options_.dumpDir.empty())
    return;
  std::error_code error;
  std::filesystem::create_directories(options_.dumpDir, error);
  std::error_code statError;
  if (!std::filesystem::is_directory(options_.dumpDir, statError))
    throwError(options_.dumpDir, "cannot create the dump directory" +
                                     (error ? ": " + error.message() : std::string()));
  dump("input", module);
}

bool PassManager::runStage(std::string_view name, Module &module,
                           const std::function<bool(Module &)> &transform) {
  if (stopped_)
    return false;
  ++stageIndex_;
  assert(size_t(stageIndex_) <= timings_.size() && timings_[stageIndex_ - 1].stage == name &&
         "stages run in the order given to the constructor");
  if (contains(options_.printBefore, name))
    print("before", name, module);

  auto start = std::chrono::steady_clock::now();
  bool changed = transform(module);
  timings_[stageIndex_ - 1].seconds += secondsSince(start);
  timings_[stageIndex_ - 1].ran = true;
  if (options_.verifyEach) {
    start = std::chrono::steady_clock::now();
    for (const auto &graph : module.graphs)
      verifyAfterPass(*graph);
    verifySeconds_ += secondsSince(start);
  }

  bool named = options_.printAfterAll || contains(options_.printAfter, name);
  bool noneNamed = !options_.printAfterAll && options_.printAfter.empty();
  if (options_.printChanged ? changed && (named || noneNamed) : named)
    print("after", name, module);
  if (!options_.dumpDir.empty())
    dump(name, module);
  stopped_ = name == options_.stopAfter;
  return !stopped_;
}

bool PassManager::run(Module &module, const std::vector<std::unique_ptr<Pass>> &passes) {
  for (const auto &pass : passes) {
    bool goesOn = runStage(pass->name(), module, [&](Module &m) {
      bool changed = false;
      for (const auto &graph : m.graphs) {
        changed = pass->run(*graph) == PassResult::Changed || changed;
        if (options_.afterPass)
          options_.afterPass(pass->name(), *graph);
      }
      return changed;
    });
    if (!goesOn)
      return false;
  }
  return !stopped_;
}

void PassManager::print(const char *when, std::string_view stage, const Module &module) const {
  log() << "// -----// IR " << when << " " << stage << " //----- //\n"
        << printModule(module) << "\n";
  log().flush();
}

void PassManager::dump(std::string_view stage, const Module &module) const {
  char number[16];
  std::snprintf(number, sizeof number, "%02d-", stageIndex_);
  std::filesystem::path path =
      std::filesystem::path(options_.dumpDir) / (number + std::string(stage) + ".kir");
  writeFileAtomically(path.string(), printModule(module));
}

void PassManager::printTimings() const {
  if (!options_.timePasses)
    return;
  std::vector<Timing> rows;
  for (const Timing &row : timings_)
    if (row.ran)
      rows.push_back(row);
  if (options_.verifyEach)
    rows.push_back({"(verify)", verifySeconds_, true});
  double total = 0;
  size_t width = 5;
  for (const Timing &row : rows) {
    total += row.seconds;
    width = std::max(width, row.stage.size());
  }
  rows.push_back({"total", total, true});
  char line[256];
  std::snprintf(line, sizeof line, "  %-*s %12s %7s\n", int(width), "stage", "wall ms", "%");
  log() << "// -----// pass timing //----- //\n" << line;
  for (const Timing &row : rows) {
    double percent = total > 0 ? 100 * row.seconds / total : 0;
    std::snprintf(line, sizeof line, "  %-*s %12.3f %6.1f%%\n", int(width), row.stage.c_str(),
                  1e3 * row.seconds, percent);
    log() << line;
  }
  log().flush();
}

} // namespace kiln
