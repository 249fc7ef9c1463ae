#include "compiler/TrainingStep.h"

#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Verifier.h"
#include "runtime/Error.h"

#include <unordered_map>

namespace kiln {

Value *findLoss(const Graph &graph, const std::string &lossName) {
  if (graph.results().empty())
    throwError("@" + graph.name(), "has no result to use as the loss");
  size_t index = 0;
  if (!lossName.empty()) {
    while (index < graph.results().size() && graph.resultName(index) != lossName)
      ++index;
    if (index == graph.results().size())
      throwError("@" + graph.name(), "has no result named '" + lossName + "'");
  }
  Value *loss = graph.results()[index];
  if (!isFloat(loss->type.dtype) || loss->type.shape.rank() != 0)
    throwError("@" + graph.name(), "the loss '" + graph.resultName(index) +
                                       "' must be a float scalar, got " + loss->type.toString());
  return loss;
}

std::unique_ptr<Graph> buildTrainingStep(const Graph &model, const OptimizerOptions &options,
                                         const std::string &lossName) {
  Value *loss = findLoss(model, lossName);
  std::unordered_map<const Value *, Value *> mapping;
  std::unique_ptr<Graph> step = cloneGraph(model, &mapping);
  appendOptimizerStep(*step, mapping.at(loss), options);
  verifyGraph(*step);
  return step;
}

} // namespace kiln
