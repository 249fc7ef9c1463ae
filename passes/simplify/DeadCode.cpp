#include "passes/simplify/DeadCode.h"

#include "ir/Graph.h"
#include "passes/Pass.h"

#include <unordered_map>
#include <unordered_set>

namespace kiln {

namespace {

/// The nodes whose value a result or an update needs.
std::unordered_set<const Node *> markLiveFromRoots(const Graph &graph) {
  std::unordered_set<const Node *> live;
  std::vector<const Node *> work;
  auto reach = [&](const Value *v) {
    if (v->node && live.insert(v->node).second)
      work.push_back(v->node);
  };
  for (const Value *r : graph.results())
    reach(r);
  for (const Update &u : graph.updates())
    reach(u.source);
  while (!work.empty()) {
    const Node *n = work.back();
    work.pop_back();
    for (const Value *v : n->operands())
      reach(v);
  }
  return live;
}

class DeadCode final : public Pass {
  std::string_view name() const override { return "dce"; }
  std::string_view description() const override {
    return "removes nodes whose value reaches no result or update";
  }
  PassResult run(Graph &graph) override {
    std::unordered_set<const Node *> live = markLiveFromRoots(graph);
    size_t removed = graph.eraseNodesIf([&](const Node &n) { return !live.count(&n); });
    return removed ? PassResult::Changed : PassResult::Unchanged;
  }
};

} // namespace

size_t eraseIfUnused(Graph &graph, const std::vector<const Node *> &candidates) {
  std::unordered_map<const Value *, size_t> uses;
  for (const auto &node : graph.nodes())
    for (const Value *v : node->operands())
      ++uses[v];
  for (const Value *r : graph.results())
    ++uses[r];
  for (const Update &u : graph.updates())
    ++uses[u.source];

  std::unordered_set<const Node *> erased;
  std::vector<const Node *> work(candidates.begin(), candidates.end());
  while (!work.empty()) {
    const Node *n = work.back();
    work.pop_back();
    bool used = false; // a multi-output node is dead only when no result is used
    for (size_t r = 0; r < n->numResults(); ++r)
      used = used || uses[n->result(r)] > 0;
    if (erased.count(n) || used)
      continue;
    erased.insert(n);
    for (const Value *v : n->operands())
      if (--uses[v] == 0 && v->node)
        work.push_back(v->node);
  }
  if (erased.empty())
    return 0;
  return graph.eraseNodesIf([&](const Node &n) { return erased.count(&n) > 0; });
}

std::unique_ptr<Pass> createDeadCodePass() { return std::make_unique<DeadCode>(); }

} // namespace kiln
