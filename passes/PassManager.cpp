#include "passes/PassManager.h"

#include "ir/Graph.h"
#include "ir/Verifier.h"
#include "passes/autodiff/Autodiff.h"
#include "runtime/Error.h"

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

} // namespace

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
      verifyGraph(graph);
    if (options.afterPass)
      options.afterPass(pass->name(), graph);
  }
  return changed;
}

} // namespace kiln
