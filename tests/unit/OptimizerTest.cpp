// The optimizers compiled into the training step against the same updates
// written out by hand, following torch.optim's documented algorithms, in f64.
#include "compiler/TrainingStep.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace kiln {
namespace {

// loss = sum(c * w * w) + sum(d * b * b): gradients 2cw and 2db, different per element.
const char *kModel = R"(graph @quad(%w: f32[3] param, %b: f32[2,2] param, %c: f32[3] input,
                               %d: f32[2,2] input) -> (loss: f32[]) {
  %0 = mul %w, %w : f32[3]
  %1 = mul %0, %c : f32[3]
  %2 = reduce_sum %1 {axes = [0]} : f32[]
  %3 = mul %b, %b : f32[2,2]
  %4 = mul %3, %d : f32[2,2]
  %5 = reduce_sum %4 {axes = [0, 1]} : f32[]
  %6 = add %2, %5 : f32[]
  return %6
}
)";

using Vec = std::vector<double>;

/// torch.optim's algorithms over one flat vector of all params' elements.
struct HandOptimizer {
  OptimizerOptions o;
  Vec buf, m, v;
  int t = 0;

  void step(Vec &w, Vec g, double lr) {
    size_t n = w.size();
    if (o.clipNorm > 0) {
      double total = 0;
      for (double x : g)
        total += x * x;
      double coef = std::min(o.clipNorm / (std::sqrt(total) + 1e-6), 1.0);
      for (double &x : g)
        x *= coef;
    }
    double wd = o.effectiveWeightDecay();
    if (buf.empty()) {
      buf.assign(n, 0);
      m.assign(n, 0);
      v.assign(n, 0);
    }
    ++t;
    for (size_t i = 0; i < n; ++i) {
      double gi = g[i];
      switch (o.kind) {
      case OptimizerKind::Sgd:
        w[i] -= lr * (gi + wd * w[i]);
        break;
      case OptimizerKind::Momentum:
      case OptimizerKind::Nesterov: {
        gi += wd * w[i];
        buf[i] = o.momentum * buf[i] + gi;
        double d = o.kind == OptimizerKind::Nesterov ? gi + o.momentum * buf[i] : buf[i];
        w[i] -= lr * d;
        break;
      }
      case OptimizerKind::Adam:
      case OptimizerKind::AdamW: {
        if (o.kind == OptimizerKind::AdamW)
          w[i] *= 1 - lr * wd;
        else
          gi += wd * w[i];
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
        double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
        w[i] -= lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + o.eps);
        break;
      }
      }
    }
  }
};

OptimizerOptions make(OptimizerKind kind, double lr) {
  OptimizerOptions o;
  o.kind = kind;
  o.learningRate = lr;
  return o;
}

HostTensor f64(const Shape &shape, const Vec &values) {
  return HostTensor::fromDoubles(DType::F64, shape, values);
}

void runCase(OptimizerOptions options, int steps) {
  Module model = parseModule(kModel, "quad.kir");
  std::unique_ptr<Graph> step = promoteFloatsToF64(*buildTrainingStep(*model.graphs[0], options));

  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> coef(0.5, 2.0), init(-1.0, 1.0);
  Vec c{coef(rng), coef(rng), coef(rng)}, d{coef(rng), coef(rng), coef(rng), coef(rng)};
  Vec w{init(rng), init(rng), init(rng)}, b{init(rng), init(rng), init(rng), init(rng)};

  TensorMap args;
  for (const auto &arg : step->arguments())
    args[arg->name] = defaultArgumentValue(*arg, 0); // optimizer state: zeros
  args["w"] = f64(Shape{3}, w);
  args["b"] = f64(Shape{2, 2}, b);
  args["c"] = f64(Shape{3}, c);
  args["d"] = f64(Shape{2, 2}, d);

  HandOptimizer hand{options, {}, {}, {}, 0};
  Vec flat = w;
  flat.insert(flat.end(), b.begin(), b.end());
  for (int s = 0; s < steps; ++s) {
    double lr = options.learningRate * (s % 2 ? 0.5 : 1.0); // a schedule, fed as input
    args["lr"] = f64(Shape{}, {lr});
    Vec grad;
    for (size_t i = 0; i < 3; ++i)
      grad.push_back(2 * c[i] * flat[i]);
    for (size_t i = 0; i < 4; ++i)
      grad.push_back(2 * d[i] * flat[3 + i]);
    double expectedLoss = 0;
    for (size_t i = 0; i < 3; ++i)
      expectedLoss += c[i] * flat[i] * flat[i];
    for (size_t i = 0; i < 4; ++i)
      expectedLoss += d[i] * flat[3 + i] * flat[3 + i];
    hand.step(flat, grad, lr);

    InterpreterResult r = interpret(*step, args, Precision::F64);
    EXPECT_NEAR(r.results[0].getDouble(0), expectedLoss, 1e-12 * std::fabs(expectedLoss));
    for (auto &[name, value] : r.updated)
      args[name] = value;
    for (size_t i = 0; i < 3; ++i)
      EXPECT_NEAR(args["w"].getDouble(int64_t(i)), flat[i], 1e-12) << "step " << s << " w" << i;
    for (size_t i = 0; i < 4; ++i)
      EXPECT_NEAR(args["b"].getDouble(int64_t(i)), flat[3 + i], 1e-12) << "step " << s << " b" << i;
  }
}

TEST(Optimizer, Sgd) { runCase(make(OptimizerKind::Sgd, 0.1), 4); }

TEST(Optimizer, SgdWeightDecay) {
  OptimizerOptions o = make(OptimizerKind::Sgd, 0.1);
  o.weightDecay = 0.05;
  runCase(o, 4);
}

TEST(Optimizer, Momentum) { runCase(make(OptimizerKind::Momentum, 0.05), 5); }

TEST(Optimizer, Nesterov) {
  OptimizerOptions o = make(OptimizerKind::Nesterov, 0.05);
  o.momentum = 0.8;
  o.weightDecay = 0.01;
  runCase(o, 5);
}

TEST(Optimizer, Adam) {
  OptimizerOptions o = make(OptimizerKind::Adam, 0.1);
  o.weightDecay = 0.02;
  runCase(o, 6);
}

TEST(Optimizer, AdamW) { runCase(make(OptimizerKind::AdamW, 0.1), 6); }

TEST(Optimizer, ClipNormWithMomentum) {
  OptimizerOptions o = make(OptimizerKind::Momentum, 0.05);
  o.clipNorm = 0.3; // small enough to clip every step
  runCase(o, 4);
}

TEST(Optimizer, ClipNormThatDoesNotClip) {
  OptimizerOptions o = make(OptimizerKind::Adam, 0.01);
  o.clipNorm = 1e6;
  runCase(o, 3);
}

TEST(Optimizer, StateNamesFollowPyTorch) {
  Module model = parseModule(kModel, "quad.kir");
  std::unique_ptr<Graph> step = buildTrainingStep(*model.graphs[0], make(OptimizerKind::Adam, 1e-3));
  for (const char *name : {"w.exp_avg", "w.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq", "optimizer.step"})
    EXPECT_NE(step->findArgument(name), nullptr) << name;
  Argument *lr = step->findArgument("lr");
  ASSERT_NE(lr, nullptr);
  EXPECT_EQ(lr->role, ArgRole::Input);
  EXPECT_EQ(lr->attrs.find("default")->asNumber(), 1e-3);
  EXPECT_EQ(step->updates().size(), 2u + 4u + 1u);
}

TEST(Optimizer, RejectsGraphsWithoutParamsOrWithTakenNames) {
  Module noParams = parseModule(R"(graph @g(%x: f32[2] input) -> (f32[]) {
  %0 = reduce_sum %x {axes = [0]} : f32[]
  return %0
}
)", "g.kir");
  EXPECT_THROW(buildTrainingStep(*noParams.graphs[0], {}), Error);
  Module taken = parseModule(R"(graph @g(%w: f32[2] param, %lr: f32[] input) -> (f32[]) {
  %0 = reduce_sum %w {axes = [0]} : f32[]
  return %0
}
)", "g.kir");
  try {
    buildTrainingStep(*taken.graphs[0], {});
    FAIL();
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "@g: error: the optimizer needs an argument named 'lr', but the graph "
                           "already has one");
  }
}

} // namespace
} // namespace kiln
