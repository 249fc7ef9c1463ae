// Building whole training steps from a model graph.
#pragma once

#include "passes/optim/Optimizer.h"

#include <memory>
#include <string>

namespace kiln {

class Graph;

/// The training step of `model`: a copy whose gradients (autodiff) and
/// optimizer update (passes/optim) are part of the graph, as `update`
/// statements of every float param and of the optimizer's state. `lossName`
/// names the scalar result to minimize; empty means the first result.
/// The step keeps the model's results (so it returns the loss of the batch it
/// trained on). Throws `kiln::Error` for a missing or non-scalar loss.
std::unique_ptr<Graph> buildTrainingStep(const Graph &model, const OptimizerOptions &options,
                                         const std::string &lossName = "");

/// The result of `graph` named `lossName` (empty: the first), checked to be a
/// float scalar.
struct Value *findLoss(const Graph &graph, const std::string &lossName);

} // namespace kiln
