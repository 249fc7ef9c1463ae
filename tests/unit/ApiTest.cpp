// The public API (include/kiln/kiln.h) against the reference interpreter run
// by hand: inference results, training-step losses, errors, save/load.
#include "kiln/kiln.h"

#include "compiler/CpuBackend.h"
#include "compiler/TrainingStep.h"
#include "ir/ArgumentValues.h"
#include "ir/Interpreter.h"
#include "runtime/Random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <unistd.h>

namespace kiln {
namespace {

constexpr int64_t kBatch = 16, kIn = 6, kHidden = 12, kClasses = 4;

/// A two-layer classifier: inputs `x` f32[16,6] and `labels` i32[16];
/// results `loss` (cross-entropy) and `logits`.
std::unique_ptr<Graph> buildClassifier(Tensor *lossOut = nullptr, bool outputLoss = true) {
  GraphBuilder b("classifier");
  Tensor x = b.input("x", DType::F32, {kBatch, kIn});
  Tensor labels = b.input("labels", DType::I32, {kBatch}, FeedRange{0, double(kClasses)});
  nn::Linear fc1(kIn, kHidden), fc2(kHidden, kClasses);
  fc1.bind(b, "fc1.");
  fc2.bind(b, "fc2.");
  Tensor logits = fc2.forward(nn::gelu(fc1.forward(x)));
  Tensor loss = nn::crossEntropy(logits, labels);
  if (outputLoss)
    b.output(loss, "loss");
  b.output(logits, "logits");
  if (lossOut)
    *lossOut = loss;
  return b.finish();
}

/// Random feeds (never zeros): x normal, labels uniform in [0, classes).
TensorMap randomFeeds(uint64_t seed) {
  HostTensor x(DType::F32, Shape({kBatch, kIn}));
  HostTensor labels(DType::I32, Shape({kBatch}));
  for (int64_t i = 0; i < x.numElements(); ++i)
    x.setDouble(i, normalAt(seed, uint64_t(i)));
  for (int64_t i = 0; i < labels.numElements(); ++i)
    labels.setInt(i, int64_t(uniformAt(seed + 1000, uint64_t(i)) * kClasses));
  return {{"x", x}, {"labels", labels}};
}

void expectClose(const HostTensor &got, const HostTensor &want, double rel, const std::string &what) {
  ASSERT_EQ(got.typeString(), want.typeString()) << what;
  for (int64_t i = 0; i < want.numElements(); ++i) {
    double a = got.getDouble(i), b = want.getDouble(i);
    ASSERT_LE(std::fabs(a - b), rel * std::max(1.0, std::fabs(b)))
        << what << "[" << i << "]: got " << a << ", interpreter " << b;
  }
}

bool sameBits(const HostTensor &a, const HostTensor &b) {
  return a.typeString() == b.typeString() &&
         std::equal((const uint8_t *)a.data(), (const uint8_t *)a.data() + a.byteSize(),
                    (const uint8_t *)b.data());
}

/// The message of the kiln::Error `f` throws (empty if it throws none).
template <typename F> std::string errorOf(F &&f) {
  try {
    f();
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> targets() { return availableTargets(); }

class ApiTargets : public testing::TestWithParam<std::string> {};

TEST_P(ApiTargets, InferenceMatchesTheInterpreter) {
  std::unique_ptr<Graph> graph = buildClassifier();
  CompileOptions options;
  options.target = GetParam();
  options.seed = 7;
  options.verifyEach = true;
  CompiledGraph model = compile(*graph, options);
  EXPECT_EQ(model.target(), GetParam());
  EXPECT_EQ(model.inputNames(), (std::vector<std::string>{"x", "labels"}));
  EXPECT_EQ(model.paramNames(),
            (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  EXPECT_EQ(model.resultNames(), (std::vector<std::string>{"loss", "logits"}));

  // The reference: the interpreter on the graph as built, params from the seed.
  TensorMap arguments;
  for (const auto &arg : graph->arguments())
    if (arg->role == ArgRole::Param)
      arguments[arg->name] = defaultArgumentValue(*arg, 7);
  for (const auto &[name, value] : model.params())
    EXPECT_TRUE(sameBits(value, arguments.at(name))) << name;
  for (uint64_t seed : {1, 2, 3}) {
    TensorMap feeds = randomFeeds(seed);
    for (const auto &[name, value] : feeds)
      arguments[name] = value;
    InterpreterResult want = interpret(*graph, arguments);
    NamedTensors got = model.run(feeds);
    ASSERT_EQ(got.size(), 2u);
    expectClose(got.at("loss"), want.results[0], 1e-5, "loss");
    expectClose(got.at("logits"), want.results[1], 1e-5, "logits");
  }
}

TEST_P(ApiTargets, TrainingLossesMatchTheInterpreter) {
  std::unique_ptr<Graph> graph = buildClassifier();
  OptimizerOptions adam = optim::adam(0.05);
  CompileOptions options;
  options.target = GetParam();
  options.seed = 3;
  CompiledTrainingStep step = compileTrainingStep(*graph, "loss", adam, options);
  EXPECT_EQ(step.lossName(), "loss");
  EXPECT_EQ(step.learningRate(), 0.05f); // the f32 input `lr`
  EXPECT_FALSE(step.stateNames().empty()); // exp_avg, exp_avg_sq, optimizer.step

  // The reference: the training step run by hand on the interpreter.
  std::unique_ptr<Graph> reference = buildTrainingStep(*graph, adam, "loss");
  TensorMap arguments;
  for (const auto &arg : reference->arguments())
    if (arg->role != ArgRole::Input || arg->name == "lr")
      arguments[arg->name] = defaultArgumentValue(*arg, 3);
  TensorMap feeds = randomFeeds(11); // one batch, so the loss must fall
  std::vector<double> losses;
  for (int i = 0; i < 15; ++i) {
    for (const auto &[name, value] : feeds)
      arguments[name] = value;
    InterpreterResult want = interpret(*reference, arguments);
    for (auto &[name, value] : want.updated)
      arguments[name] = value;
    NamedTensors got = step.step(feeds);
    expectClose(got.at("loss"), want.results[0], 1e-4, "loss of step " + std::to_string(i));
    losses.push_back(got.at("loss").getDouble(0));
  }
  EXPECT_LT(losses.back(), 0.5 * losses.front()) << losses.front() << " -> " << losses.back();
  for (const auto &[name, value] : step.stateDict())
    expectClose(value, arguments.at(name), 1e-4, name);

  // The trained params in an inference graph.
  CompiledGraph model = compile(*graph, options);
  model.setParams(step.params());
  TensorMap inference = step.params();
  TensorMap evalFeeds = randomFeeds(12);
  for (const auto &[name, value] : evalFeeds)
    inference[name] = value;
  InterpreterResult want = interpret(*graph, inference);
  expectClose(model.run(evalFeeds).at("logits"), want.results[1], 1e-5, "logits");
}

TEST_P(ApiTargets, SaveAndLoadRoundTrip) {
  std::unique_ptr<Graph> graph = buildClassifier();
  CompileOptions options;
  options.target = GetParam();
  CompiledTrainingStep a = compileTrainingStep(*graph, "loss", optim::adam(0.01), options);
  a.step(randomFeeds(1));
  a.step(randomFeeds(2));
  std::string path = testing::TempDir() + "/api_roundtrip_" + GetParam() + "_" +
                     std::to_string(::getpid()) + ".safetensors";
  a.save(path);

  options.seed = 99; // different initial params: the load must replace them all
  CompiledTrainingStep b = compileTrainingStep(*graph, "loss", optim::adam(0.01), options);
  EXPECT_FALSE(sameBits(a.param("fc1.weight"), b.param("fc1.weight")));
  EXPECT_EQ(b.load(path), a.stateDict().size());
  EXPECT_EQ(a.stateDict().size(), a.params().size() + a.state().size());
  for (const auto &[name, value] : a.stateDict())
    EXPECT_TRUE(sameBits(b.param(name), value)) << name;
  // Params and optimizer state restored: the next step is the same step.
  TensorMap feeds = randomFeeds(3);
  EXPECT_TRUE(sameBits(a.step(feeds).at("loss"), b.step(feeds).at("loss")));
  std::remove(path.c_str());
}

TEST_P(ApiTargets, MemoryStatsComeFromThePlan) {
  std::unique_ptr<Graph> graph = buildClassifier();
  CompileOptions options;
  options.target = GetParam();
  MemoryStats m = compileTrainingStep(*graph, "loss", optim::sgd(0.1), options).memory();
  EXPECT_GT(m.maxLiveBytes, 0);
  EXPECT_GE(m.arenaBytes, m.maxLiveBytes);
  EXPECT_EQ(m.arenaBytes % 64, 0);
  // x, labels, lr, and the four params.
  int64_t args = (kBatch * kIn + kBatch + 1 + kHidden * kIn + kHidden + kClasses * kHidden + kClasses) * 4;
  EXPECT_EQ(m.argumentBytes, args);
}

INSTANTIATE_TEST_SUITE_P(Api, ApiTargets, testing::ValuesIn(targets()),
                         [](const testing::TestParamInfo<std::string> &info) { return info.param; });

TEST(Api, LossTensorThatIsNotAResult) {
  Tensor loss;
  std::unique_ptr<Graph> graph = buildClassifier(&loss, /*outputLoss=*/false);
  CompileOptions options;
  options.target = "interp";
  CompiledTrainingStep step = compileTrainingStep(*graph, loss, optim::sgd(0.1), options);
  EXPECT_EQ(step.lossName(), "loss");
  EXPECT_EQ(step.resultNames(), (std::vector<std::string>{"logits", "loss"}));
  // A loss Tensor that is a result keeps its name.
  Tensor named;
  std::unique_ptr<Graph> withLoss = buildClassifier(&named);
  EXPECT_EQ(compileTrainingStep(*withLoss, named, optim::sgd(0.1), options).lossName(), "loss");
  // A Tensor of another graph is refused.
  EXPECT_EQ(errorOf([&] { compileTrainingStep(*graph, named, optim::sgd(0.1), options); }),
            "@classifier: error: the loss tensor is not a value of this graph (it was built by "
            "another GraphBuilder)");
}

TEST(Api, LearningRateIsAnInputOfTheStep) {
  std::unique_ptr<Graph> graph = buildClassifier();
  CompileOptions options;
  options.target = defaultTarget();
  CompiledTrainingStep a = compileTrainingStep(*graph, "loss", optim::sgd(0.1), options);
  CompiledTrainingStep b = compileTrainingStep(*graph, "loss", optim::sgd(0.1), options);
  b.setLearningRate(0.0);
  EXPECT_EQ(b.learningRate(), 0.0);
  HostTensor before = b.param("fc1.weight");
  a.step(randomFeeds(1));
  b.step(randomFeeds(1));
  EXPECT_TRUE(sameBits(b.param("fc1.weight"), before)); // lr 0: nothing moves
  EXPECT_FALSE(sameBits(a.param("fc1.weight"), before));
}

TEST(Api, BadFeedsAreOneLineErrors) {
  std::unique_ptr<Graph> graph = buildClassifier();
  CompiledGraph model = compile(*graph);
  TensorMap feeds = randomFeeds(1);

  TensorMap misnamed = feeds;
  misnamed["X"] = misnamed.at("x");
  misnamed.erase("x");
  EXPECT_EQ(errorOf([&] { model.run(misnamed); }),
            "@classifier: error: feed 'X' is not an input (inputs: x, labels)");

  TensorMap missing = feeds;
  missing.erase("labels");
  EXPECT_EQ(errorOf([&] { model.run(missing); }),
            "@classifier: error: no feed for input 'labels' (i32[16])");

  TensorMap badShape = feeds;
  badShape["x"] = HostTensor(DType::F32, Shape({8, kIn}));
  EXPECT_EQ(errorOf([&] { model.run(badShape); }),
            "@classifier: error: feed 'x' has type f32[8,6] but the input expects f32[16,6]");

  TensorMap badDType = feeds;
  badDType["labels"] = HostTensor(DType::I64, Shape({kBatch}));
  EXPECT_EQ(errorOf([&] { model.run(badDType); }),
            "@classifier: error: feed 'labels' has type i64[16] but the input expects i32[16]");

  TensorMap param = feeds;
  param["fc1.bias"] = model.param("fc1.bias");
  EXPECT_EQ(errorOf([&] { model.run(param); }),
            "@classifier: error: feed 'fc1.bias' names a param, not an input (set it with setParam)");
}

TEST(Api, BadParamsAndFilesAreOneLineErrors) {
  std::unique_ptr<Graph> graph = buildClassifier();
  CompiledGraph model = compile(*graph);
  EXPECT_EQ(errorOf([&] { model.param("x"); }),
            "@classifier: error: no param or state named 'x' in @classifier (it has: fc1.weight, "
            "fc1.bias, fc2.weight, fc2.bias)");
  EXPECT_EQ(errorOf([&] { model.setParam("fc1.bias", HostTensor(DType::F32, Shape({3}))); }),
            "@classifier: error: 'fc1.bias' has type f32[3] but @classifier expects f32[12]");

  // A file with one wrong tensor sets nothing.
  std::string path = testing::TempDir() + "/api_bad_" + std::to_string(::getpid()) + ".safetensors";
  HostTensor bias(DType::F32, Shape({kHidden}));
  for (int64_t i = 0; i < kHidden; ++i)
    bias.setDouble(i, 0.25 + double(i));
  writeSafetensors(path, {{"fc1.bias", bias}, {"fc9.weight", bias}});
  HostTensor before = model.param("fc1.bias");
  std::string message = errorOf([&] { model.load(path); });
  EXPECT_EQ(message, path + ": error: no param or state named 'fc9.weight' in @classifier (it has: "
                            "fc1.weight, fc1.bias, fc2.weight, fc2.bias)");
  EXPECT_TRUE(sameBits(model.param("fc1.bias"), before));
  writeSafetensors(path, {{"fc1.bias", bias}});
  EXPECT_EQ(model.load(path), 1u);
  EXPECT_TRUE(sameBits(model.param("fc1.bias"), bias));
  std::remove(path.c_str());
}

TEST(Api, BadOptionsAreOneLineErrors) {
  std::unique_ptr<Graph> graph = buildClassifier();
  CompileOptions options;
  options.target = "gpu";
  std::string has = cpuBackendAvailable() ? "cpu, interp" : "interp";
  EXPECT_EQ(errorOf([&] { compile(*graph, options); }),
            "kiln::compile: error: unknown target 'gpu' (this build has: " + has + ")");
  options.target = "cpu";
  if (!cpuBackendAvailable()) {
    EXPECT_EQ(errorOf([&] { compile(*graph, options); }),
              "kiln::compile: error: target 'cpu' is not in this build (configure with "
              "-DKILN_ENABLE_CPU_BACKEND=ON); it has: interp");
  }
  options.target = defaultTarget();
  options.threads = -1;
  EXPECT_EQ(errorOf([&] { compile(*graph, options); }),
            "kiln::compile: error: threads must be 0 (the default) or more, got -1");
  options.threads = 0;
  EXPECT_EQ(errorOf([&] { compileTrainingStep(*graph, "accuracy", optim::sgd(0.1), options); }),
            "@classifier: error: has no result named 'accuracy'");
  EXPECT_EQ(errorOf([&] { compileTrainingStep(*graph, "logits", optim::sgd(0.1), options); }),
            "@classifier: error: the loss 'logits' must be a float scalar, got f32[16,4]");
}

TEST(Api, DefaultTargetIsCpuWhenBuilt) {
#ifdef KILN_HAVE_CPU_BACKEND
  EXPECT_EQ(defaultTarget(), "cpu");
  EXPECT_EQ(availableTargets(), (std::vector<std::string>{"cpu", "interp"}));
#else
  EXPECT_EQ(defaultTarget(), "interp");
  EXPECT_EQ(availableTargets(), std::vector<std::string>{"interp"});
#endif
}

TEST(Api, ThreadCountDoesNotChangeTheResult) {
  if (!cpuBackendAvailable())
    GTEST_SKIP() << "no CPU backend";
  std::unique_ptr<Graph> graph = buildClassifier();
  CompileOptions one, two;
  one.threads = 1;
  two.threads = 2;
  TensorMap feeds = randomFeeds(5);
  NamedTensors a = compile(*graph, one).run(feeds), b = compile(*graph, two).run(feeds);
  expectClose(a.at("logits"), b.at("logits"), 1e-6, "logits");
}

// The README shows examples/embed/readme.cpp, which the embed-install test
// builds and runs against the installed package: the two must not drift.
TEST(Api, ReadmeShowsTheExampleThatIsBuilt) {
  std::string readme = readFile(std::string(KILN_SOURCE_DIR) + "/README.md");
  std::string example = readFile(std::string(KILN_SOURCE_DIR) + "/examples/embed/readme.cpp");
  EXPECT_NE(readme.find("```cpp\n" + example + "```\n"), std::string::npos)
      << "README.md's C++ API section must be examples/embed/readme.cpp verbatim";
}

} // namespace
} // namespace kiln
