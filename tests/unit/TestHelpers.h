// Small helpers shared by the unit tests.
#pragma once

#include "compiler/TrainingStep.h"
#include "examples/models/Models.h"
#include "ir/Graph.h"
#include "passes/PassManager.h"

#include <memory>
#include <string>

namespace kiln {

/// Pass-manager options that verify the IR (and any memory plan) after each pass.
inline PassManagerOptions verifyEachOptions() {
  PassManagerOptions options;
  options.verifyEach = true;
  return options;
}

/// The training step of a small configuration of example model `model`
/// (mlp, cnn or gpt): quick enough for the interpreter and for gradient checks.
inline std::unique_ptr<Graph> smallTrainingStep(const std::string &model, OptimizerKind kind) {
  OptimizerOptions o;
  o.kind = kind;
  if (model == "mlp") {
    examples::MlpConfig c;
    c.batch = 8;
    c.inputs = 20;
    c.hidden = 16;
    return buildTrainingStep(*examples::buildMlp(c), o);
  }
  if (model == "cnn") {
    examples::CnnConfig c;
    c.batch = 2;
    c.size = 8;
    return buildTrainingStep(*examples::buildCnn(c), o);
  }
  examples::GptConfig c;
  c.batch = 2;
  c.seqLen = 8;
  c.vocab = 16;
  c.dModel = 16;
  c.heads = 2;
  c.blockSize = 8;
  return buildTrainingStep(*examples::buildGpt(c), o);
}

} // namespace kiln
