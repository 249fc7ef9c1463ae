#include "passes/simplify/Simplify.h"

#include "ir/Graph.h"
#include "passes/Pass.h"
#include "passes/simplify/Canonicalize.h"
#include "passes/simplify/CommonSubexpressions.h"
#include "passes/simplify/ConstantFold.h"
#include "passes/simplify/DeadCode.h"

#include <cassert>
#include <vector>

namespace kiln {

namespace {

/// More rounds than this means two rewrites undo each other: a bug.
constexpr int kMaxRounds = 64;

class Simplify final : public Pass {
public:
  Simplify() {
    passes_.push_back(createCanonicalizePass());
    passes_.push_back(createConstantFoldPass());
    passes_.push_back(createCommonSubexpressionsPass());
    passes_.push_back(createDeadCodePass());
  }

private:
  std::string_view name() const override { return "simplify"; }
  std::string_view description() const override {
    return "canonicalize, constant-fold, cse and dce to a fixed point";
  }
  PassResult run(Graph &graph) override {
    bool changed = false;
    for (int round = 0; round < kMaxRounds; ++round) {
      bool roundChanged = false;
      for (const auto &pass : passes_)
        roundChanged = pass->run(graph) == PassResult::Changed || roundChanged;
      if (!roundChanged)
        return changed ? PassResult::Changed : PassResult::Unchanged;
      changed = true;
    }
    assert(false && "simplify did not reach a fixed point");
    return PassResult::Changed;
  }

  std::vector<std::unique_ptr<Pass>> passes_;
};

} // namespace

std::unique_ptr<Pass> createSimplifyPass() { return std::make_unique<Simplify>(); }

} // namespace kiln
