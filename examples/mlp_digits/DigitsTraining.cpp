#include "examples/mlp_digits/DigitsTraining.h"

#include "examples/common/Progress.h"
#include "frontend/nn/Functional.h"
#include "ir/Graph.h"
#include "runtime/Error.h"

#include <chrono>
#include <cstdio>
#include <optional>
#include <ostream>

namespace kiln::examples {

DigitsMlp::DigitsMlp(int64_t hidden) : nn::Module("DigitsMlp") {
  fc1 = registerModule("fc1", std::make_shared<nn::Linear>(DigitsDataset::kPixels, hidden));
  fc2 = registerModule("fc2", std::make_shared<nn::Linear>(hidden, DigitsDataset::kClasses));
}

Tensor DigitsMlp::forward(Tensor x) { return fc2->forward(nn::relu(fc1->forward(x))); }

std::unique_ptr<Graph> buildDigitsMlp(int64_t batch, int64_t hidden) {
  GraphBuilder b("mlp_digits");
  Tensor x = b.input("x", DType::F32, {batch, DigitsDataset::kPixels}, FeedRange{0, 1});
  Tensor labels =
      b.input("labels", DType::I32, {batch}, FeedRange{0, double(DigitsDataset::kClasses)});
  DigitsMlp model(hidden);
  model.bind(b);
  Tensor logits = model.forward(x);
  b.output(nn::crossEntropy(logits, labels), "loss");
  b.output(nn::accuracy(logits, labels), "accuracy");
  return b.finish();
}

double defaultDigitsLearningRate(OptimizerKind kind) {
  switch (kind) {
  case OptimizerKind::Sgd:
    return 0.3;
  case OptimizerKind::Momentum:
  case OptimizerKind::Nesterov:
    return 0.05;
  case OptimizerKind::Adam:
  case OptimizerKind::AdamW:
    return 0.003;
  }
  KILN_UNREACHABLE("unknown optimizer kind");
}

namespace {

struct Score {
  double loss;
  double accuracy;
};

/// Loss and accuracy of `eval`'s params on all of `test` in one run.
Score evaluate(CompiledGraph &eval, const DigitsModel &model, const DigitsDataset &test) {
  std::vector<int64_t> rows(size_t(test.size()));
  for (int64_t i = 0; i < test.size(); ++i)
    rows[size_t(i)] = i;
  NamedTensors out = eval.run(model.feeds(test, rows.data(), test.size()));
  return {out.at("loss").getDouble(0), out.at("accuracy").getDouble(0)};
}

} // namespace

DigitsModel digitsMlpModel(int64_t hidden) {
  if (hidden < 1)
    throwError("", "the hidden layer needs at least one unit");
  DigitsModel model;
  model.description = "mlp 64-" + std::to_string(hidden) + "-10";
  model.build = [hidden](int64_t batch) { return buildDigitsMlp(batch, hidden); };
  model.feeds = [](const DigitsDataset &data, const int64_t *rows, int64_t count) {
    return NamedTensors{{"x", gatherImages(data, rows, count)},
                        {"labels", gatherLabels(data, rows, count)}};
  };
  return model;
}

DigitsTrainingResult trainDigitsMlp(const DigitsSplit &data, const DigitsTrainingOptions &options,
                                    std::ostream *log) {
  return trainDigits(digitsMlpModel(options.hidden), data, options, log);
}

DigitsTrainingResult trainDigits(const DigitsModel &model, const DigitsSplit &data,
                                 const DigitsTrainingOptions &options, std::ostream *log) {
  const int64_t trainRows = data.train.size();
  if (options.batch < 1 || options.batch > trainRows)
    throwError("", "the batch must have 1 to " + std::to_string(trainRows) + " rows, got " +
                       std::to_string(options.batch));

  // The training step and, sharing its param names, the model batched over
  // the whole held-out set. Params and optimizer state live in the step.
  OptimizerOptions optimizer;
  optimizer.kind = options.optimizer;
  optimizer.learningRate = options.learningRate;
  CompileOptions compileOptions;
  compileOptions.target = options.compiled ? "cpu" : "interp";
  compileOptions.seed = options.seed;
  compileOptions.threads = options.threads;
  CompiledTrainingStep step =
      compileTrainingStep(*model.build(options.batch), "loss", optimizer, compileOptions);
  CompiledGraph eval = compile(*model.build(data.test.size()), compileOptions);

  if (log) {
    char line[200];
    std::snprintf(line, sizeof line,
                  "digits: %lld train, %lld held-out images; %s, %s lr %g, batch "
                  "%lld, %lld steps, seed %llu\n",
                  (long long)trainRows, (long long)data.test.size(), model.description.c_str(),
                  optimizerName(options.optimizer), options.learningRate,
                  (long long)options.batch, (long long)options.steps,
                  (unsigned long long)options.seed);
    *log << line << std::flush;
  }

  DigitsTrainingResult result;
  result.losses.reserve(size_t(options.steps));
  const int64_t batchesPerEpoch = trainRows / options.batch;
  std::vector<int64_t> order;
  std::optional<TrainingProgress> progress;
  if (log)
    progress.emplace(*log, options.steps, options.batch, "samples", options.liveProgress);
  for (int64_t i = 0; i < options.steps; ++i) {
    int64_t epoch = i / batchesPerEpoch, batchInEpoch = i % batchesPerEpoch;
    if (batchInEpoch == 0)
      order = shuffledIndices(trainRows, digitsKey(options.seed, "epoch " + std::to_string(epoch)));
    const int64_t *rows = order.data() + batchInEpoch * options.batch;
    NamedTensors feeds = model.feeds(data.train, rows, options.batch);

    auto start = std::chrono::steady_clock::now();
    double loss = step.step(feeds).at("loss").getDouble(0);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.trainSeconds += seconds;
    result.losses.push_back(loss);
    if (!progress)
      continue;
    progress->step(i + 1, loss, seconds);

    bool report = options.logEvery > 0 &&
                  ((i + 1) % options.logEvery == 0 || i + 1 == options.steps);
    if (!report)
      continue;
    eval.setParams(step.params());
    Score held = evaluate(eval, model, data.test);
    char line[160];
    std::snprintf(line, sizeof line,
                  "step %5lld/%lld  epoch %5.1f  loss %.4f  held-out loss %.4f acc %.4f  %.0f "
                  "samples/s",
                  (long long)(i + 1), (long long)options.steps,
                  double(i + 1) / double(batchesPerEpoch), progress->intervalLoss(), held.loss,
                  held.accuracy, progress->intervalSamplesPerSecond());
    progress->line(line);
  }
  if (progress)
    progress->finish();

  result.params = step.params();
  eval.setParams(result.params);
  Score final = evaluate(eval, model, data.test);
  result.testLoss = final.loss;
  result.testAccuracy = final.accuracy;
  return result;
}

} // namespace kiln::examples
