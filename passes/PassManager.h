// Running a list of passes over a graph.
#pragma once

#include "passes/Pass.h"

#include <functional>
#include <string>
#include <vector>

namespace kiln {

struct PassManagerOptions {
  /// Verify the graph after every pass (a pass that breaks the IR is a bug).
  bool verifyEach = false;
  /// Called after each pass with its name and the graph (for --print-after-all).
  std::function<void(std::string_view pass, const Graph &)> afterPass;
};

/// Builds the passes of a comma list such as `autodiff`. An unknown name is a
/// `kiln::Error` listing the passes that exist.
std::vector<std::unique_ptr<Pass>> parsePassPipeline(const std::string &list);

/// Every pass of passes/Passes.def: name and description.
std::vector<std::pair<std::string, std::string>> registeredPasses();

/// Runs `passes` in order; returns whether any changed the graph.
bool runPasses(Graph &graph, const std::vector<std::unique_ptr<Pass>> &passes,
               const PassManagerOptions &options = {});

} // namespace kiln
