// Training an MLP on the digits data set through the C++ API (<kiln/kiln.h>).
//
// The model graph (loss and accuracy of one batch) becomes a compiled
// training step (kiln::compileTrainingStep) that runs batch after batch,
// keeping its params and optimizer state between steps. A second graph of the
// same model, batched over the whole held-out set and compiled for inference,
// shares the param names and scores the trained params.
#pragma once

#include "examples/mlp_digits/Digits.h"
#include "compiler/CpuBackend.h"
#include "kiln/kiln.h"

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace kiln {

class Graph;

namespace examples {

/// 64-hidden-10, ReLU. PyTorch: fc1 = nn.Linear(64, hidden), fc2 = nn.Linear(hidden, 10).
class DigitsMlp : public nn::Module {
public:
  explicit DigitsMlp(int64_t hidden);
  Tensor forward(Tensor x) override;

  std::shared_ptr<nn::Linear> fc1, fc2;
};

/// Inputs `x` f32[batch, 64] and `labels` i32[batch]; results `loss` (mean
/// cross-entropy) and `accuracy` (fraction of rows whose argmax is the label).
std::unique_ptr<Graph> buildDigitsMlp(int64_t batch, int64_t hidden);

/// The learning rate that trains the digits MLP well with `kind` at batch 64.
double defaultDigitsLearningRate(OptimizerKind kind);

struct DigitsTrainingOptions {
  int64_t steps = 1000;
  int64_t batch = 64;
  int64_t hidden = 128;
  OptimizerKind optimizer = OptimizerKind::Adam;
  double learningRate = defaultDigitsLearningRate(OptimizerKind::Adam);
  uint64_t seed = 0;     // initial params and batch order
  int threads = 0;       // CompileOptions::threads
  int64_t logEvery = 100; // a progress line every this many steps; 0: none
  /// With a log: also a progress bar redrawn in place after every step (for a
  /// terminal; examples/common/Progress.h).
  bool liveProgress = false;
  /// Run the training step compiled for the CPU (the default when this build
  /// has the CPU backend) or on the reference interpreter.
  bool compiled = cpuBackendAvailable();
};

struct DigitsTrainingResult {
  std::vector<double> losses; // the loss of each step, on the batch it trained on
  double testLoss = 0;
  double testAccuracy = 0;
  double trainSeconds = 0; // the training steps alone, without evaluation
  NamedTensors params;     // the trained params, by name
};

/// A model of the digits data: its graph for a batch size (results `loss` and
/// `accuracy`), and the feeds of that graph for some rows of the data. The
/// graphs of two batch sizes must name their params alike.
struct DigitsModel {
  std::string description; // for the log, e.g. "mlp 64-128-10"
  std::function<std::unique_ptr<Graph>(int64_t batch)> build;
  std::function<NamedTensors(const DigitsDataset &data, const int64_t *rows, int64_t count)> feeds;
};

/// The DigitsMlp with `hidden` units, fed `x` and `labels`.
DigitsModel digitsMlpModel(int64_t hidden);

/// Trains a fresh `model` on `data.train` as trainDigitsMlp does (the
/// `hidden` option aside) and scores it on `data.test`.
DigitsTrainingResult trainDigits(const DigitsModel &model, const DigitsSplit &data,
                                 const DigitsTrainingOptions &options, std::ostream *log = nullptr);

/// Trains a fresh DigitsMlp on `data.train` for `options.steps` steps of
/// `options.batch` rows (each epoch a new seeded permutation; a last partial
/// batch is skipped) and scores it on `data.test`. With `log`, writes a
/// progress line every `logEvery` steps (the mean training loss since the
/// last line, the held-out loss and accuracy, samples per second) and, with
/// `liveProgress`, a bar in between. The numbers depend only on the data
/// and the options.
DigitsTrainingResult trainDigitsMlp(const DigitsSplit &data, const DigitsTrainingOptions &options,
                                    std::ostream *log = nullptr);

} // namespace examples
} // namespace kiln
