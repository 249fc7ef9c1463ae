#include "examples/mlp_digits/DigitsMain.h"

#include "examples/common/ExampleMain.h"
#include "examples/common/Progress.h"
#include "ir/Graph.h"
#include "ir/Printer.h"
#include "runtime/Safetensors.h"

#include <cstdio>
#include <filesystem>
#include <iostream>

namespace kiln::examples {

namespace {

constexpr int64_t kTestRows = 360;
constexpr uint64_t kSplitSeed = 0; // the same held-out images whatever --seed is

} // namespace

int runDigitsExample(const DigitsExample &example, int argc, char **argv) {
  CommandLine cl(
      {"--steps", "--batch", "--lr", "--optimizer", "--seed", "--data", "--target", "--threads",
       "--save"},
      {"--help", "-h"});
  cl.parse(argc, argv, 1);
  if (cl.has("--help") || cl.has("-h")) {
    std::cout << example.usage;
    return 0;
  }
  if (!cl.positional().empty())
    throwError("", "unexpected argument '" + cl.positional()[0] + "' (see --help)");

  DigitsTrainingOptions options;
  options.steps = int64_t(cl.getUnsigned("--steps", uint64_t(example.defaultSteps)));
  options.batch = int64_t(cl.getUnsigned("--batch", uint64_t(options.batch)));
  options.seed = cl.getUnsigned("--seed", options.seed);
  options.threads = int(cl.getUnsigned("--threads", 0));
  std::string target = cl.get("--target", options.compiled ? "cpu" : "interp");
  if (target != "cpu" && target != "interp")
    throwError("", "--target must be cpu or interp, got '" + target + "'");
  if (target == "cpu" && !cpuBackendAvailable())
    throwError("", "this build has no CPU backend (configure with -DKILN_ENABLE_CPU_BACKEND=ON)");
  options.compiled = target == "cpu";
  options.liveProgress = stdoutIsTerminal();
  if (options.steps < 1)
    throwError("", "--steps must be at least 1");
  std::string optimizerName = cl.get("--optimizer", "adam");
  std::optional<OptimizerKind> kind = parseOptimizerKind(optimizerName);
  if (!kind)
    throwError("", "unknown optimizer '" + optimizerName +
                       "' (expected sgd, momentum, nesterov, adam or adamw)");
  options.optimizer = *kind;
  options.learningRate = numberOption(cl, "--lr", defaultDigitsLearningRate(*kind));
  std::string path = cl.get("--data", defaultDigitsPath());

  DigitsDataset all = loadDigits(path);
  if (all.size() <= kTestRows)
    throwError(path, "has " + std::to_string(all.size()) + " images, but " +
                         std::to_string(kTestRows) + " are held out and some must be left");
  DigitsSplit data = splitDigits(all, kTestRows, kSplitSeed);
  std::string saveDir = cl.get("--save");
  if (cl.has("--save") && saveDir.empty())
    throwError("", "option '--save' needs a directory");
  DigitsModel model = example.model(options);
  DigitsTrainingResult result = trainDigits(model, data, options, &std::cout);
  double samplesPerSecond = double(options.steps * options.batch) / result.trainSeconds;
  bool met = result.testAccuracy >= example.accuracyBound;
  std::printf("trained %lld steps in %.2f s (%.0f samples/s, %s)\n", (long long)options.steps,
              result.trainSeconds, samplesPerSecond,
              options.compiled ? "compiled for the CPU" : "on the interpreter");
  std::printf("held-out accuracy %.4f (%lld/%lld), loss %.4f; bound %.2f %s\n", result.testAccuracy,
              (long long)(result.testAccuracy * double(data.test.size()) + 0.5),
              (long long)data.test.size(), result.testLoss, example.accuracyBound,
              met ? "met" : "MISSED");
  if (!saveDir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(saveDir, error);
    if (error)
      throwError(saveDir, "cannot create the directory: " + error.message());
    std::vector<int64_t> rows(size_t(data.test.size()));
    for (int64_t i = 0; i < data.test.size(); ++i)
      rows[size_t(i)] = i;
    writeFileAtomically(saveDir + "/model.kir", printGraph(*model.build(data.test.size())));
    writeSafetensors(saveDir + "/params.safetensors", result.params);
    writeSafetensors(saveDir + "/heldout.safetensors",
                     model.feeds(data.test, rows.data(), data.test.size()));
    std::printf("wrote %s/model.kir, params.safetensors, heldout.safetensors\n", saveDir.c_str());
  }
  return met ? 0 : 1;
}

} // namespace kiln::examples
