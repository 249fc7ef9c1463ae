// Running a list of passes over a graph, and the instrumentation that the
// tools put around every stage of a compilation: verify, print, dump, time.
#pragma once

#include "passes/Pass.h"

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace kiln {

struct Module;

struct PassManagerOptions {
  /// Verify the graph after every pass (a pass that breaks the IR is a bug).
  bool verifyEach = false;
  /// Called after each pass with its name and the graph.
  std::function<void(std::string_view pass, const Graph &)> afterPass;

  // The rest is `PassManager`'s instrumentation (the flags of kiln-opt and
  // kiln compile, docs/cli.md); `runPasses` ignores it.
  /// Print the module after every stage (--print-after-all), after the named
  /// ones (--print-after=a,b), before the named ones (--print-before=a,b).
  bool printAfterAll = false;
  std::vector<std::string> printAfter, printBefore;
  /// Print after a stage only if it changed the IR (--print-changed): after
  /// every such stage, or, with the two above, only after those they name.
  bool printChanged = false;
  /// The stage after which the pipeline ends (--stop-after=NAME).
  std::string stopAfter;
  /// Write the module after every stage to DIR/NN-NAME.kir, 00-input.kir
  /// first (--dump-dir=DIR; created if missing).
  std::string dumpDir;
  /// Time every stage; `PassManager::printTimings` prints the table.
  bool timePasses = false;
  /// Where printing and the --time-passes table go; null is std::cerr.
  std::ostream *log = nullptr;
};

/// What `kiln compile` runs after the (optional) training step.
const std::string &defaultPipeline();

/// Builds the passes of a comma list such as `autodiff`. An unknown name is a
/// `kiln::Error` listing the passes that exist.
std::vector<std::unique_ptr<Pass>> parsePassPipeline(const std::string &list);

/// Every pass of passes/Passes.def: name and description.
std::vector<std::pair<std::string, std::string>> registeredPasses();

/// Runs `passes` in order; returns whether any changed the graph.
bool runPasses(Graph &graph, const std::vector<std::unique_ptr<Pass>> &passes,
               const PassManagerOptions &options = {});

/// Runs the stages of a compilation over a module, with the instrumentation
/// of its options around each one. A stage is a pass of the pipeline, run
/// over every graph of the module before the next pass starts, or a step of
/// the tool (`train` in `kiln compile --train`). The module as given is stage
/// 0, `input`. Printing goes to `options.log`, never to stdout.
class PassManager {
public:
  /// `stages` names what will run after the input, in order. A name in
  /// --print-after, --print-before or --stop-after must be a registered pass
  /// or one of `stages`, and --stop-after's must be one of `stages`; else a
  /// `kiln::Error` lists them.
  PassManager(PassManagerOptions options, std::vector<std::string> stages);
  ~PassManager();

  /// Starts on `module` as stage 0 (dumped as 00-input.kir). Call once per
  /// module; the timings add up over modules.
  void begin(const Module &module);
  /// Runs stage `name`: `transform` changes the module and says whether it
  /// did. Does nothing once --stop-after's stage has run. Returns whether
  /// the pipeline goes on after it.
  bool runStage(std::string_view name, Module &module,
                const std::function<bool(Module &)> &transform);
  /// `runStage` for each pass in turn; returns whether the pipeline goes on.
  bool run(Module &module, const std::vector<std::unique_ptr<Pass>> &passes);
  /// The --time-passes table: wall time per stage (and of verification),
  /// then the total. Prints nothing without --time-passes.
  void printTimings() const;

private:
  struct Timing {
    std::string stage;
    double seconds = 0;
    bool ran = false;
  };
  std::ostream &log() const;
  void print(const char *when, std::string_view stage, const Module &module) const;
  void dump(std::string_view stage, const Module &module) const;

  PassManagerOptions options_;
  int stageIndex_ = 0;
  bool stopped_ = false;
  std::vector<Timing> timings_;
  double verifySeconds_ = 0;
};

} // namespace kiln
