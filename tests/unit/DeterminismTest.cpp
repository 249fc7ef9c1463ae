// Determinism: the same training step, built twice and run twice for several
// steps from the same seed, gives bitwise-identical params, optimizer state
// and losses. Runs on the reference interpreter, the only executor today: the
// CPU backend does not exist yet; when it lands, its run of the same steps
// belongs here too, with the same byte-for-byte comparison.
#include "compiler/TrainingStep.h"
#include "examples/models/Models.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Printer.h"
#include "passes/PassManager.h"
#include "passes/optim/Optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace kiln {
namespace {

constexpr int kSteps = 3;

/// A small configuration of the example model `name` with AdamW, whose
/// update reads every kind of state (moments, step counter); `optimized`
/// runs the default pipeline (simplify, fuse, plan-memory) after it.
std::unique_ptr<Graph> smallStep(const std::string &name, bool optimized) {
  std::unique_ptr<Graph> model;
  if (name == "mlp") {
    examples::MlpConfig c;
    c.batch = 4; c.inputs = 12; c.hidden = 8;
    model = examples::buildMlp(c);
  } else {
    examples::GptConfig c;
    c.batch = 2; c.seqLen = 8; c.vocab = 16; c.dModel = 16; c.heads = 2; c.blockSize = 8;
    model = examples::buildGpt(c);
  }
  OptimizerOptions optimizer;
  optimizer.kind = OptimizerKind::AdamW;
  optimizer.learningRate = 0.05;
  std::unique_ptr<Graph> step = buildTrainingStep(*model, optimizer);
  if (optimized)
    runPasses(*step, parsePassPipeline(defaultPipeline()));
  return step;
}

struct TrainingRun {
  std::vector<TensorMap> arguments; // after each step: params, state, inputs
  std::vector<double> losses;
};

/// Runs `step` kSteps times from the arguments of seed 3, the updates
/// carrying over as `kiln run --steps` carries them.
TrainingRun train(const Graph &step) {
  TensorMap arguments;
  for (const auto &arg : step.arguments())
    arguments[arg->name] = defaultArgumentValue(*arg, 3);
  TrainingRun run;
  for (int i = 0; i < kSteps; ++i) {
    InterpreterResult r = interpret(step, arguments);
    for (auto &[name, value] : r.updated)
      arguments[name] = value;
    run.arguments.push_back(arguments);
    run.losses.push_back(r.results.at(0).getDouble(0));
  }
  return run;
}

bool sameBytes(const HostTensor &a, const HostTensor &b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.byteSize() == b.byteSize() &&
         std::memcmp(a.data(), b.data(), a.byteSize()) == 0;
}

class Determinism : public testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(Determinism, TwoRunsOfTheTrainingStepAreBitwiseIdentical) {
  auto [model, optimized] = GetParam();
  std::unique_ptr<Graph> first = smallStep(model, optimized);
  std::unique_ptr<Graph> second = smallStep(model, optimized);
  ASSERT_EQ(printGraph(*first), printGraph(*second)) << "building the step is deterministic";

  TrainingRun a = train(*first), b = train(*second);
  for (int i = 0; i < kSteps; ++i) {
    // Bitwise: memcmp of the doubles, so no tolerance and NaN == NaN.
    EXPECT_EQ(std::memcmp(&a.losses[i], &b.losses[i], sizeof(double)), 0)
        << "loss of step " << i + 1 << ": " << a.losses[i] << " vs " << b.losses[i];
    ASSERT_EQ(a.arguments[i].size(), b.arguments[i].size());
    for (const auto &[name, value] : a.arguments[i])
      EXPECT_TRUE(sameBytes(value, b.arguments[i].at(name)))
          << "'" << name << "' after step " << i + 1;
  }

  // The comparison can fail: the steps do change the params, and train.
  EXPECT_TRUE(std::isfinite(a.losses[0]));
  EXPECT_LT(a.losses[kSteps - 1], a.losses[0]);
  TensorMap initial;
  for (const auto &arg : first->arguments())
    initial[arg->name] = defaultArgumentValue(*arg, 3);
  for (const auto &arg : first->arguments()) {
    if (arg->role != ArgRole::Param)
      continue;
    EXPECT_FALSE(sameBytes(initial.at(arg->name), a.arguments.back().at(arg->name)))
        << "param '" << arg->name << "' never moved";
  }
}

INSTANTIATE_TEST_SUITE_P(Examples, Determinism,
                         testing::Combine(testing::Values("mlp", "gpt"), testing::Bool()),
                         [](const auto &info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) ? "_optimized" : "_unoptimized");
                         });

} // namespace
} // namespace kiln
