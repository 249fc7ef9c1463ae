// nn modules (parameter names and layouts of PyTorch's state_dict) and the nn
// composites, run through the reference interpreter against values computed
// here independently, in double, from the same random inputs.
#include "frontend/nn/Functional.h"
#include "frontend/nn/Module.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "runtime/Error.h"
#include "runtime/Random.h"
#include "runtime/Safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace kiln {
namespace {

using Names = std::vector<std::pair<std::string, std::string>>; // name, type

Names stateDictOf(const nn::Module &m) {
  Names out;
  for (const auto &[name, p] : m.stateDict())
    out.emplace_back(name, TensorType{p->dtype, p->shape}.toString());
  return out;
}

// ---- Modules -----------------------------------------------------------------

TEST(NnModules, LinearMatchesPyTorch) {
  nn::Linear fc(784, 512);
  EXPECT_EQ(stateDictOf(fc), (Names{{"weight", "f32[512,784]"}, {"bias", "f32[512]"}}));
  nn::Linear noBias(256, 512, /*bias=*/false);
  EXPECT_EQ(stateDictOf(noBias), (Names{{"weight", "f32[512,256]"}}));
}

TEST(NnModules, Conv2dMatchesPyTorch) {
  nn::Conv2d conv(3, 32, 3, Conv2dOptions(1, 1));
  EXPECT_EQ(stateDictOf(conv), (Names{{"weight", "f32[32,3,3,3]"}, {"bias", "f32[32]"}}));
  Conv2dOptions grouped;
  grouped.groups = 2;
  nn::Conv2d g(4, 8, std::vector<int64_t>{3, 5}, grouped, /*bias=*/false);
  EXPECT_EQ(stateDictOf(g), (Names{{"weight", "f32[8,2,3,5]"}}));
}

TEST(NnModules, LayerNormEmbeddingBatchNorm) {
  EXPECT_EQ(stateDictOf(nn::LayerNorm(256)),
            (Names{{"weight", "f32[256]"}, {"bias", "f32[256]"}}));
  EXPECT_EQ(stateDictOf(nn::LayerNorm(std::vector<int64_t>{4, 8})),
            (Names{{"weight", "f32[4,8]"}, {"bias", "f32[4,8]"}}));
  EXPECT_EQ(stateDictOf(nn::Embedding(512, 256)), (Names{{"weight", "f32[512,256]"}}));
  nn::BatchNorm2d bn(16);
  EXPECT_EQ(stateDictOf(bn), (Names{{"weight", "f32[16]"},
                                    {"bias", "f32[16]"},
                                    {"running_mean", "f32[16]"},
                                    {"running_var", "f32[16]"},
                                    {"num_batches_tracked", "i64[]"}}));
  EXPECT_EQ(bn.namedParameters().size(), 2u);
  EXPECT_EQ(bn.namedBuffers().size(), 3u);
}

TEST(NnModules, SequentialNamesByIndex) {
  // nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)): the ReLU takes index 1.
  nn::Sequential seq{std::make_shared<nn::Linear>(4, 8),
                     std::make_shared<nn::Functional>(nn::relu, "ReLU"),
                     std::make_shared<nn::Linear>(8, 2)};
  EXPECT_EQ(stateDictOf(seq), (Names{{"0.weight", "f32[8,4]"},
                                     {"0.bias", "f32[8]"},
                                     {"2.weight", "f32[2,8]"},
                                     {"2.bias", "f32[2]"}}));
  GraphBuilder b("seq");
  Tensor x = b.input("x", DType::F32, {3, 4});
  seq.bind(b, "net.");
  EXPECT_EQ(seq.forward(x).type().toString(), "f32[3,2]");
  std::vector<std::string> args;
  for (const auto &arg : b.graph().arguments())
    args.push_back(arg->name + ":" + std::string(argRoleName(arg->role)));
  EXPECT_EQ(args, (std::vector<std::string>{"x:input", "net.0.weight:param", "net.0.bias:param",
                                            "net.2.weight:param", "net.2.bias:param"}));
}

struct Nested : nn::Module {
  Nested() : Module("Nested") {
    scale = registerParameter("scale", {2}, Init::ones());
    steps = registerBuffer("steps", {}, Init::zeros(), DType::I64);
    inner = registerModule("inner", std::make_shared<nn::Sequential>());
    inner->push_back(std::make_shared<nn::Linear>(2, 2));
    head = registerModule("head", std::make_shared<nn::Linear>(2, 1, false));
  }
  nn::Parameter *scale, *steps;
  std::shared_ptr<nn::Sequential> inner;
  std::shared_ptr<nn::Linear> head;
};

TEST(NnModules, NestedModulesFollowStateDictOrder) {
  Nested m;
  EXPECT_EQ(stateDictOf(m), (Names{{"scale", "f32[2]"},
                                   {"steps", "i64[]"},
                                   {"inner.0.weight", "f32[2,2]"},
                                   {"inner.0.bias", "f32[2]"},
                                   {"head.weight", "f32[1,2]"}}));
  GraphBuilder b("nested");
  m.bind(b);
  EXPECT_EQ(b.graph().findArgument("steps")->role, ArgRole::State);
  EXPECT_EQ(b.graph().findArgument("head.weight")->role, ArgRole::Param);
  EXPECT_EQ(m.head->weight->path, "head.weight");
  m.eval();
  EXPECT_FALSE(m.inner->namedChildren()[0].second->isTraining());
}

TEST(NnModules, UnboundParameterIsAnError) {
  nn::Linear fc(2, 3);
  GraphBuilder b("g");
  Tensor x = b.input("x", DType::F32, {1, 2});
  try {
    fc.forward(x);
    FAIL() << "expected a kiln::Error";
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "error: parameter 'weight' is used before Module::bind created it in a graph");
  }
}

/// The committed example graphs (written by kiln-export-examples) carry the
/// parameter names and layouts of the PyTorch models documented in examples/models/Models.h.
Names argumentsOf(const std::string &model) {
  Module module = parseModule(readFile(std::string(KILN_SOURCE_DIR) + "/examples/" + model + ".kir"),
                              model + ".kir");
  EXPECT_EQ(module.graphs.size(), 1u);
  const Graph &g = *module.graphs[0];
  EXPECT_EQ(g.results().size(), 1u);
  EXPECT_EQ(g.resultName(0), "loss");
  EXPECT_EQ(g.results()[0]->type.toString(), "f32[]");
  EXPECT_TRUE(g.updates().empty());
  Names out;
  for (const auto &arg : g.arguments()) {
    EXPECT_EQ(checkArgumentAttributes(*arg), "") << arg->name;
    out.emplace_back(arg->name, arg->value.type.toString());
  }
  return out;
}

TEST(NnExamples, MlpArguments) {
  EXPECT_EQ(argumentsOf("mlp"), (Names{{"x", "f32[128,784]"},
                                       {"labels", "i32[128]"},
                                       {"fc1.weight", "f32[512,784]"},
                                       {"fc1.bias", "f32[512]"},
                                       {"fc2.weight", "f32[512,512]"},
                                       {"fc2.bias", "f32[512]"},
                                       {"fc3.weight", "f32[10,512]"},
                                       {"fc3.bias", "f32[10]"}}));
}

TEST(NnExamples, CnnArguments) {
  EXPECT_EQ(argumentsOf("cnn"), (Names{{"images", "f32[32,3,32,32]"},
                                       {"labels", "i32[32]"},
                                       {"conv1.weight", "f32[32,3,3,3]"},
                                       {"conv1.bias", "f32[32]"},
                                       {"conv2.weight", "f32[64,32,3,3]"},
                                       {"conv2.bias", "f32[64]"},
                                       {"conv3.weight", "f32[128,64,3,3]"},
                                       {"conv3.bias", "f32[128]"},
                                       {"fc.weight", "f32[10,128]"},
                                       {"fc.bias", "f32[10]"}}));
}

TEST(NnExamples, GptArguments) {
  Names args = argumentsOf("gpt");
  ASSERT_EQ(args.size(), 2u + 2 + 2 * 12 + 2 + 1);
  EXPECT_EQ(args[0], (std::pair<std::string, std::string>{"tokens", "i32[8,128]"}));
  EXPECT_EQ(args[1], (std::pair<std::string, std::string>{"targets", "i32[8,128]"}));
  EXPECT_EQ(args[2], (std::pair<std::string, std::string>{"tok_emb.weight", "f32[512,256]"}));
  EXPECT_EQ(args[3], (std::pair<std::string, std::string>{"pos_emb.weight", "f32[128,256]"}));
  Names block1(args.begin() + 16, args.begin() + 28);
  EXPECT_EQ(block1, (Names{{"blocks.1.ln1.weight", "f32[256]"},
                           {"blocks.1.ln1.bias", "f32[256]"},
                           {"blocks.1.attn.qkv.weight", "f32[768,256]"},
                           {"blocks.1.attn.qkv.bias", "f32[768]"},
                           {"blocks.1.attn.proj.weight", "f32[256,256]"},
                           {"blocks.1.attn.proj.bias", "f32[256]"},
                           {"blocks.1.ln2.weight", "f32[256]"},
                           {"blocks.1.ln2.bias", "f32[256]"},
                           {"blocks.1.mlp.fc.weight", "f32[1024,256]"},
                           {"blocks.1.mlp.fc.bias", "f32[1024]"},
                           {"blocks.1.mlp.proj.weight", "f32[256,1024]"},
                           {"blocks.1.mlp.proj.bias", "f32[256]"}}));
  EXPECT_EQ(args[4].first, "blocks.0.ln1.weight");
  EXPECT_EQ(args[6].first, "blocks.0.attn.qkv.weight");
  EXPECT_EQ(args[28], (std::pair<std::string, std::string>{"ln_f.weight", "f32[256]"}));
  EXPECT_EQ(args[29], (std::pair<std::string, std::string>{"ln_f.bias", "f32[256]"}));
  EXPECT_EQ(args[30], (std::pair<std::string, std::string>{"head.weight", "f32[512,256]"}));
}

// ---- Composites through the reference interpreter ----------------------------

/// Random f32 values in [lo, hi) (never zeros, never all equal).
HostTensor randomTensor(Shape shape, std::mt19937 &rng, double lo = -2, double hi = 2) {
  std::uniform_real_distribution<double> dist(lo, hi);
  HostTensor t(DType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.setDouble(i, dist(rng));
  return t;
}

HostTensor randomLabels(Shape shape, int64_t classes, std::mt19937 &rng) {
  std::uniform_int_distribution<int64_t> dist(0, classes - 1);
  HostTensor t(DType::I32, std::move(shape));
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.setInt(i, dist(rng));
  return t;
}

/// Runs the finished graph in f64 and returns every result as doubles.
std::vector<std::vector<double>> run(GraphBuilder &b, const TensorMap &args,
                                     TensorMap *updated = nullptr) {
  std::unique_ptr<Graph> g = b.finish();
  InterpreterResult r = interpret(*g, args, Precision::F64);
  if (updated)
    *updated = r.updated;
  std::vector<std::vector<double>> out;
  for (const HostTensor &t : r.results)
    out.push_back(t.toDoubles());
  return out;
}

void expectClose(const std::vector<double> &actual, const std::vector<double> &expected,
                 double tol = 1e-12) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], expected[i], tol * (1 + std::fabs(expected[i]))) << "element " << i;
}

TEST(NnFunctional, SoftmaxAndLogSoftmax) {
  std::mt19937 rng(1);
  HostTensor x = randomTensor({3, 5}, rng, -4, 4);
  GraphBuilder b("softmax");
  Tensor xt = b.input("x", DType::F32, {3, 5});
  b.output(nn::softmax(xt));
  b.output(nn::logSoftmax(xt, 1));
  b.output(nn::softmax(xt, 0));
  auto r = run(b, {{"x", x}});
  std::vector<double> xs = x.toDoubles(), sm(15), lsm(15), sm0(15);
  for (int i = 0; i < 3; ++i) {
    double sum = 0;
    for (int j = 0; j < 5; ++j)
      sum += std::exp(xs[i * 5 + j]);
    for (int j = 0; j < 5; ++j) {
      sm[i * 5 + j] = std::exp(xs[i * 5 + j]) / sum;
      lsm[i * 5 + j] = xs[i * 5 + j] - std::log(sum);
    }
  }
  for (int j = 0; j < 5; ++j) {
    double sum = 0;
    for (int i = 0; i < 3; ++i)
      sum += std::exp(xs[i * 5 + j]);
    for (int i = 0; i < 3; ++i)
      sm0[i * 5 + j] = std::exp(xs[i * 5 + j]) / sum;
  }
  expectClose(r[0], sm);
  expectClose(r[1], lsm);
  expectClose(r[2], sm0);
  for (int i = 0; i < 3; ++i) {
    double rowSum = 0;
    for (int j = 0; j < 5; ++j)
      rowSum += r[0][i * 5 + j];
    EXPECT_NEAR(rowSum, 1.0, 1e-14);
  }
}

TEST(NnFunctional, SoftmaxIsStableForLargeInputs) {
  HostTensor x = HostTensor::fromDoubles(DType::F32, {1, 3}, {1000.0, 1001.0, 999.5});
  GraphBuilder b("stable");
  b.output(nn::logSoftmax(b.input("x", DType::F32, {1, 3})));
  auto r = run(b, {{"x", x}});
  double sum = std::exp(-1.0) + 1 + std::exp(-1.5);
  expectClose(r[0], {-1 - std::log(sum), -std::log(sum), -1.5 - std::log(sum)});
}

TEST(NnFunctional, LayerNorm) {
  std::mt19937 rng(2);
  HostTensor x = randomTensor({2, 3, 6}, rng), w = randomTensor({6}, rng),
             bias = randomTensor({6}, rng);
  GraphBuilder b("ln");
  Tensor xt = b.input("x", DType::F32, {2, 3, 6});
  b.output(nn::layerNorm(xt, 1, b.input("w", DType::F32, {6}), b.input("b", DType::F32, {6}),
                         1e-5));
  b.output(nn::layerNorm(xt, 2)); // over [3, 6], no affine
  auto r = run(b, {{"x", x}, {"w", w}, {"b", bias}});
  std::vector<double> xs = x.toDoubles(), ws = w.toDoubles(), bs = bias.toDoubles();
  std::vector<double> expected(36), expected2(36);
  for (int row = 0; row < 6; ++row) {
    double mean = 0, var = 0;
    for (int j = 0; j < 6; ++j)
      mean += xs[row * 6 + j] / 6;
    for (int j = 0; j < 6; ++j)
      var += (xs[row * 6 + j] - mean) * (xs[row * 6 + j] - mean) / 6;
    for (int j = 0; j < 6; ++j)
      expected[row * 6 + j] = (xs[row * 6 + j] - mean) / std::sqrt(var + 1e-5) * ws[j] + bs[j];
  }
  for (int n = 0; n < 2; ++n) {
    double mean = 0, var = 0;
    for (int j = 0; j < 18; ++j)
      mean += xs[n * 18 + j] / 18;
    for (int j = 0; j < 18; ++j)
      var += (xs[n * 18 + j] - mean) * (xs[n * 18 + j] - mean) / 18;
    for (int j = 0; j < 18; ++j)
      expected2[n * 18 + j] = (xs[n * 18 + j] - mean) / std::sqrt(var + 1e-5);
  }
  expectClose(r[0], expected);
  expectClose(r[1], expected2);
}

TEST(NnFunctional, GeluBothFormsAndActivations) {
  std::mt19937 rng(3);
  HostTensor x = randomTensor({20}, rng, -4, 4);
  GraphBuilder b("act");
  Tensor xt = b.input("x", DType::F32, {20});
  b.output(nn::gelu(xt));
  b.output(nn::gelu(xt, nn::GeluApproximation::Tanh));
  b.output(nn::relu(xt));
  b.output(nn::sigmoid(xt));
  auto r = run(b, {{"x", x}});
  std::vector<double> exact, approx, relu, sigmoid;
  for (double v : x.toDoubles()) {
    exact.push_back(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
    approx.push_back(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
    relu.push_back(v > 0 ? v : 0);
    sigmoid.push_back(1 / (1 + std::exp(-v)));
  }
  expectClose(r[0], exact);
  expectClose(r[1], approx);
  expectClose(r[2], relu);
  expectClose(r[3], sigmoid);
}

TEST(NnFunctional, LinearOnRank3Input) {
  std::mt19937 rng(4);
  HostTensor x = randomTensor({2, 3, 4}, rng), w = randomTensor({5, 4}, rng),
             bias = randomTensor({5}, rng);
  GraphBuilder b("linear");
  b.output(nn::linear(b.input("x", DType::F32, {2, 3, 4}), b.input("w", DType::F32, {5, 4}),
                      b.input("b", DType::F32, {5})));
  auto r = run(b, {{"x", x}, {"w", w}, {"b", bias}});
  std::vector<double> xs = x.toDoubles(), ws = w.toDoubles(), bs = bias.toDoubles(), expected;
  for (int row = 0; row < 6; ++row)
    for (int o = 0; o < 5; ++o) {
      double acc = bs[o];
      for (int i = 0; i < 4; ++i)
        acc += xs[row * 4 + i] * ws[o * 4 + i];
      expected.push_back(acc);
    }
  expectClose(r[0], expected);
}

TEST(NnFunctional, CrossEntropyMseAccuracy) {
  std::mt19937 rng(5);
  HostTensor logits = randomTensor({2, 3, 7}, rng, -3, 3);
  HostTensor labels = randomLabels({2, 3}, 7, rng);
  HostTensor target = randomTensor({2, 3, 7}, rng);
  GraphBuilder b("losses");
  Tensor lt = b.input("logits", DType::F32, {2, 3, 7});
  Tensor yt = b.input("labels", DType::I32, {2, 3}, FeedRange{0, 7});
  b.output(nn::crossEntropy(lt, yt), "loss");
  b.output(nn::mse(lt, b.input("target", DType::F32, {2, 3, 7})));
  b.output(nn::accuracy(lt, yt));
  auto r = run(b, {{"logits", logits}, {"labels", labels}, {"target", target}});
  std::vector<double> ls = logits.toDoubles(), ts = target.toDoubles();
  double ce = 0, mse = 0, hits = 0;
  for (int row = 0; row < 6; ++row) {
    double sum = 0;
    int best = 0;
    for (int c = 0; c < 7; ++c) {
      sum += std::exp(ls[row * 7 + c]);
      if (ls[row * 7 + c] > ls[row * 7 + best])
        best = c;
    }
    int64_t label = labels.getInt(row);
    ce += -(ls[row * 7 + label] - std::log(sum)) / 6;
    hits += best == label ? 1 : 0;
  }
  for (int i = 0; i < 42; ++i)
    mse += (ls[i] - ts[i]) * (ls[i] - ts[i]) / 42;
  ASSERT_EQ(r.size(), 3u);
  expectClose(r[0], {ce});
  expectClose(r[1], {mse});
  expectClose(r[2], {hits / 6});
}

TEST(NnFunctional, AccuracyCountsHits) {
  // Rows whose argmax is 2, 0, 1, 1 against labels 2, 1, 1, 0: half are hits.
  HostTensor logits = HostTensor::fromDoubles(
      DType::F32, {4, 3}, {0.1, 0.2, 0.9, 0.8, 0.3, -1, -2, 5, 1, 0.4, 0.7, 0.5});
  HostTensor labels = HostTensor::fromDoubles(DType::I32, {4}, {2, 1, 1, 0});
  GraphBuilder b("acc");
  b.output(nn::accuracy(b.input("l", DType::F32, {4, 3}), b.input("y", DType::I32, {4})));
  auto r = run(b, {{"l", logits}, {"y", labels}});
  expectClose(r[0], {0.5});
}

TEST(NnFunctional, EmbeddingGathersRows) {
  std::mt19937 rng(6);
  HostTensor table = randomTensor({5, 3}, rng);
  HostTensor idx = HostTensor::fromDoubles(DType::I32, {2, 2}, {4, 0, 2, 4});
  GraphBuilder b("emb");
  Tensor out = nn::embedding(b.input("idx", DType::I32, {2, 2}), b.input("t", DType::F32, {5, 3}));
  EXPECT_EQ(out.type().toString(), "f32[2,2,3]");
  b.output(out);
  auto r = run(b, {{"idx", idx}, {"t", table}});
  std::vector<double> ts = table.toDoubles(), expected;
  for (int k : {4, 0, 2, 4})
    for (int j = 0; j < 3; ++j)
      expected.push_back(ts[k * 3 + j]);
  expectClose(r[0], expected);
}

TEST(NnFunctional, CausalSelfAttentionMatchesDirectLoops) {
  const int B = 2, T = 3, C = 4, H = 2, D = C / H;
  std::mt19937 rng(7);
  HostTensor x = randomTensor({B, T, C}, rng), wqkv = randomTensor({3 * C, C}, rng, -1, 1),
             bqkv = randomTensor({3 * C}, rng, -1, 1), wp = randomTensor({C, C}, rng, -1, 1),
             bp = randomTensor({C}, rng, -1, 1);
  GraphBuilder b("attn");
  b.output(nn::causalSelfAttention(
      b.input("x", DType::F32, {B, T, C}), H, b.input("wqkv", DType::F32, {3 * C, C}),
      b.input("bqkv", DType::F32, {3 * C}), b.input("wp", DType::F32, {C, C}),
      b.input("bp", DType::F32, {C})));
  auto r = run(b, {{"x", x}, {"wqkv", wqkv}, {"bqkv", bqkv}, {"wp", wp}, {"bp", bp}});

  std::vector<double> xs = x.toDoubles(), W = wqkv.toDoubles(), Bq = bqkv.toDoubles(),
                      P = wp.toDoubles(), Bp = bp.toDoubles();
  std::vector<double> expected;
  for (int n = 0; n < B; ++n) {
    // qkv[t][o] = x[t] . W[o] + b[o]
    std::vector<std::vector<double>> qkv(T, std::vector<double>(3 * C));
    for (int t = 0; t < T; ++t)
      for (int o = 0; o < 3 * C; ++o) {
        qkv[t][o] = Bq[o];
        for (int i = 0; i < C; ++i)
          qkv[t][o] += xs[(n * T + t) * C + i] * W[o * C + i];
      }
    std::vector<std::vector<double>> y(T, std::vector<double>(C, 0.0));
    for (int h = 0; h < H; ++h)
      for (int t = 0; t < T; ++t) {
        std::vector<double> score(t + 1);
        double maxScore = -1e300, sum = 0;
        for (int s = 0; s <= t; ++s) { // causal: keys up to the query's position
          score[s] = 0;
          for (int d = 0; d < D; ++d)
            score[s] += qkv[t][h * D + d] * qkv[s][C + h * D + d];
          score[s] /= std::sqrt(double(D));
          maxScore = std::max(maxScore, score[s]);
        }
        for (int s = 0; s <= t; ++s)
          sum += std::exp(score[s] - maxScore);
        for (int s = 0; s <= t; ++s)
          for (int d = 0; d < D; ++d)
            y[t][h * D + d] += std::exp(score[s] - maxScore) / sum * qkv[s][2 * C + h * D + d];
      }
    for (int t = 0; t < T; ++t)
      for (int o = 0; o < C; ++o) {
        double acc = Bp[o];
        for (int i = 0; i < C; ++i)
          acc += y[t][i] * P[o * C + i];
        expected.push_back(acc);
      }
  }
  expectClose(r[0], expected);
}

TEST(NnFunctional, BatchNormTrainingUpdatesRunningStats) {
  const int N = 2, C = 3, HW = 4;
  std::mt19937 rng(8);
  HostTensor x = randomTensor({N, C, 2, 2}, rng), w = randomTensor({C}, rng),
             bias = randomTensor({C}, rng), rm = randomTensor({C}, rng),
             rv = randomTensor({C}, rng, 0.5, 2);
  GraphBuilder b("bn");
  Tensor rmT = b.state("rm", DType::F32, {C}), rvT = b.state("rv", DType::F32, {C});
  nn::BatchNormRunningStats running{rmT, rvT, 0.1};
  b.output(nn::batchNorm(b.input("x", DType::F32, {N, C, 2, 2}), b.input("w", DType::F32, {C}),
                         b.input("b", DType::F32, {C}), /*training=*/true, &running, 1e-5));
  TensorMap updated;
  auto r = run(b, {{"x", x}, {"w", w}, {"b", bias}, {"rm", rm}, {"rv", rv}}, &updated);
  std::vector<double> xs = x.toDoubles(), expected(xs.size()), newMean, newVar;
  for (int c = 0; c < C; ++c) {
    double mean = 0, var = 0;
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < HW; ++i)
        mean += xs[(n * C + c) * HW + i] / (N * HW);
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < HW; ++i)
        var += std::pow(xs[(n * C + c) * HW + i] - mean, 2) / (N * HW);
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < HW; ++i)
        expected[(n * C + c) * HW + i] = (xs[(n * C + c) * HW + i] - mean) /
                                             std::sqrt(var + 1e-5) * w.getDouble(c) +
                                         bias.getDouble(c);
    newMean.push_back(0.9 * rm.getDouble(c) + 0.1 * mean);
    newVar.push_back(0.9 * rv.getDouble(c) + 0.1 * var * (N * HW) / (N * HW - 1));
  }
  expectClose(r[0], expected);
  ASSERT_TRUE(updated.count("rm") && updated.count("rv"));
  expectClose(updated.at("rm").toDoubles(), newMean);
  expectClose(updated.at("rv").toDoubles(), newVar);
}

TEST(NnFunctional, DropoutMasksFromRngUniform) {
  const int64_t n = 2000;
  const double p = 0.3;
  std::mt19937 rng(9);
  HostTensor x = randomTensor({n}, rng, 0.5, 2); // nonzero, so a dropped element is visible
  HostTensor seed(DType::I64, {});
  seed.setInt(0, 1234);
  GraphBuilder b("dropout");
  Tensor xt = b.input("x", DType::F32, {n});
  Tensor seedT = b.input("seed", DType::I64, {});
  EXPECT_EQ(nn::dropout(xt, 0.0, seedT).value(), xt.value());
  EXPECT_EQ(nn::dropout(xt, p, seedT, /*training=*/false).value(), xt.value());
  EXPECT_TRUE(b.graph().nodes().empty());
  b.output(nn::dropout(xt, p, seedT));
  auto r = run(b, {{"x", x}, {"seed", seed}});
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool keep = uniformAt(1234, uint64_t(i)) >= p;
    kept += keep;
    EXPECT_NEAR(r[0][size_t(i)], keep ? x.getDouble(i) / (1 - p) : 0.0, 1e-12) << i;
  }
  EXPECT_NEAR(double(kept) / n, 1 - p, 0.05);
}

} // namespace
} // namespace kiln
