// The graph builder: broadcasting, scalar operands, one helper per op, located
// errors, graph arguments and initializer attributes.
#include "frontend/GraphBuilder.h"
#include "frontend/Init.h"
#include "ir/ArgumentValues.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <set>

namespace kiln {
namespace {

/// The message of the kiln::Error `fn` throws ("" when it throws none).
std::string errorOf(const std::function<void()> &fn) {
  try {
    fn();
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

const Node &nodeAt(const GraphBuilder &b, size_t i) { return *b.graph().nodes().at(i); }

TEST(GraphBuilder, BroadcastingInsertsBroadcastNodes) {
  GraphBuilder b("g");
  Tensor x = b.input("x", DType::F32, {4, 1});
  Tensor y = b.input("y", DType::F32, {3});
  Tensor z = x + y;
  EXPECT_EQ(z.type().toString(), "f32[4,3]");
  ASSERT_EQ(b.graph().nodes().size(), 3u);
  const Node &bx = nodeAt(b, 0), &by = nodeAt(b, 1), &add = nodeAt(b, 2);
  EXPECT_EQ(bx.kind(), OpKind::Broadcast);
  EXPECT_EQ(bx.operand(0), x.value());
  EXPECT_EQ(bx.intsAttr("dims"), (std::vector<int64_t>{0, 1})); // the size-1 dim stretches
  EXPECT_EQ(bx.type().toString(), "f32[4,3]");
  EXPECT_EQ(by.kind(), OpKind::Broadcast);
  EXPECT_EQ(by.intsAttr("dims"), (std::vector<int64_t>{1})); // trailing dims align
  EXPECT_EQ(by.type().toString(), "f32[4,3]");
  EXPECT_EQ(add.kind(), OpKind::Add);
  EXPECT_EQ(add.operand(0), bx.result());
  EXPECT_EQ(add.operand(1), by.result());
}

TEST(GraphBuilder, EqualShapesNeedNoBroadcast) {
  GraphBuilder b("g");
  Tensor x = b.input("x", DType::F32, {2, 3});
  Tensor y = b.input("y", DType::F32, {2, 3});
  Tensor z = x * y - x / y;
  EXPECT_EQ(z.type().toString(), "f32[2,3]");
  ASSERT_EQ(b.graph().nodes().size(), 3u);
  for (const auto &node : b.graph().nodes())
    EXPECT_NE(node->kind(), OpKind::Broadcast);
}

TEST(GraphBuilder, BroadcastShapesFollowNumpy) {
  EXPECT_EQ(broadcastShapes({8, 1, 6, 1}, {7, 1, 5}), Shape({8, 7, 6, 5}));
  EXPECT_EQ(broadcastShapes({}, {2, 3}), Shape({2, 3}));
  EXPECT_EQ(broadcastShapes({5, 4}, {1}), Shape({5, 4}));
  EXPECT_FALSE(broadcastShapes({2, 1}, {8, 4, 3}).has_value());
  EXPECT_FALSE(broadcastShapes({3}, {4}).has_value());
}

TEST(GraphBuilder, ScalarOperandsBecomeSplatConstants) {
  GraphBuilder b("g");
  Tensor x = b.input("x", DType::F32, {2, 3});
  Tensor half = x * 0.5;
  ASSERT_EQ(b.graph().nodes().size(), 2u);
  const Node &c = nodeAt(b, 0), &mul = nodeAt(b, 1);
  EXPECT_EQ(c.kind(), OpKind::Constant);
  EXPECT_EQ(c.attr("value"), Attribute(0.5));
  EXPECT_EQ(c.type().toString(), "f32[2,3]");
  EXPECT_EQ(mul.kind(), OpKind::Mul);
  EXPECT_EQ(mul.operand(0), x.value());
  EXPECT_EQ(mul.operand(1), c.result());
  EXPECT_EQ(half.value(), mul.result());

  Tensor oneMinus = 1.0 - x; // the scalar stays the left operand
  const Node &sub = *b.graph().nodes().back();
  EXPECT_EQ(sub.kind(), OpKind::Sub);
  EXPECT_EQ(sub.operand(1), x.value());
  EXPECT_EQ(sub.operand(0)->node->attr("value"), Attribute(1.0));
  EXPECT_EQ(oneMinus.type().toString(), "f32[2,3]");

  Tensor negated = -x;
  EXPECT_EQ(negated.value()->node->kind(), OpKind::Neg);

  // Integer tensors get integer constants.
  Tensor i = b.input("i", DType::I32, {4});
  Tensor j = i + 2.0;
  EXPECT_EQ(j.value()->node->operand(1)->node->attr("value"), Attribute(int64_t(2)));
  EXPECT_EQ(errorOf([&] { i * 0.5; }),
            "@g: %7 (constant): error: the non-integer value 0.5 cannot be a constant of type i32");
}

TEST(GraphBuilder, ComparisonsAndSelect) {
  GraphBuilder b("g");
  Tensor x = b.input("x", DType::F32, {2, 3});
  Tensor row = b.input("row", DType::F32, {3});
  Tensor mask = gt(x, row);
  EXPECT_EQ(mask.type().toString(), "i1[2,3]");
  Tensor y = select(mask, x, 0.0);
  EXPECT_EQ(y.type().toString(), "f32[2,3]");
  Tensor z = select(lt(row, 0.0), x, row); // condition and one choice broadcast
  EXPECT_EQ(z.type().toString(), "f32[2,3]");
  EXPECT_EQ(logicalAnd(mask, logicalNot(mask)).type().toString(), "i1[2,3]");
}

TEST(GraphBuilder, ReductionsWithKeepDimsAndNegativeAxes) {
  GraphBuilder b("g");
  Tensor x = b.input("x", DType::F32, {2, 3, 4});
  Tensor s = reduceSum(x, {-1});
  EXPECT_EQ(s.type().toString(), "f32[2,3]");
  EXPECT_EQ(s.value()->node->intsAttr("axes"), (std::vector<int64_t>{2}));
  Tensor k = reduceMax(x, {0, 2}, /*keepDims=*/true);
  EXPECT_EQ(k.type().toString(), "f32[1,3,1]");
  EXPECT_EQ(k.value()->node->kind(), OpKind::Reshape);
  Tensor m = x.mean({1});
  EXPECT_EQ(m.type().toString(), "f32[2,4]");
  const Node &div = *m.value()->node;
  EXPECT_EQ(div.kind(), OpKind::Div);
  EXPECT_EQ(div.operand(1)->node->attr("value"), Attribute(3.0));
  EXPECT_EQ(argmax(x, -1).type().toString(), "i32[2,3]");
}

TEST(GraphBuilder, ReshapeInfersOneDimAndSkipsNoOps) {
  GraphBuilder b("g");
  Tensor x = b.input("x", DType::F32, {2, 3, 4});
  EXPECT_EQ(reshape(x, {-1, 4}).type().toString(), "f32[6,4]");
  size_t before = b.graph().nodes().size();
  EXPECT_EQ(reshape(x, {2, -1, 4}).value(), x.value());
  EXPECT_EQ(b.graph().nodes().size(), before);
  EXPECT_EQ(errorOf([&] { reshape(x, {5, -1}); }),
            "@g: %1 (reshape): error: reshape cannot infer the -1 in [5,-1] for f32[2,3,4]");
}

/// One helper per op of OpKind.def: the built graph holds every op kind and verifies.
TEST(GraphBuilder, EveryOpHasAHelper) {
  GraphBuilder b("all");
  Tensor x = b.input("x", DType::F32, {2, 3});
  Tensor img = b.input("img", DType::F32, {1, 2, 6, 6});
  Tensor w = b.input("w", DType::F32, {4, 2, 3, 3});
  Tensor idx = b.input("idx", DType::I32, {5}, FeedRange{0, 2});
  Tensor seed = b.input("seed", DType::I64, {});
  std::vector<Tensor> outs = {
      neg(x), abs(x), exp(x), log(x), sqrt(x), rsqrt(x), tanh(x), logistic(x), erf(x), sin(x),
      cos(x), sign(x), floor(x), cast(x, DType::I32), x + x, x - x, x * x, x / x,
      maximum(x, x), minimum(x, x), pow(x, 2.0),
      cast(eq(x, x), DType::F32), cast(ne(x, x), DType::F32), cast(lt(x, x), DType::F32),
      cast(le(x, x), DType::F32), cast(gt(x, x), DType::F32), cast(ge(x, x), DType::F32),
      cast(logicalAnd(lt(x, 0.0), logicalOr(gt(x, 1.0), logicalNot(eq(x, 2.0)))), DType::F32),
      select(gt(x, 0.0), x, 0.0), b.constant({1, 2, 3, 4, 5, 6}, DType::F32, {2, 3}),
      b.iota(DType::F32, {2, 3}, 1), broadcastTo(reduceSum(x, {0}), {2, 3}),
      reshape(x, {3, 2}), transpose(x, {1, 0}), slice(x, {0, 1}, {2, 3}, {1, 2}),
      pad(x, {1, 0}, {0, 2}, -1.0), concat({x, x}, -1), reduceMax(x, {1}), argmax(x, 0),
      matmul(x, x, /*transposeA=*/false, /*transposeB=*/true)};
  Tensor y = conv2d(img, w, Conv2dOptions(/*stride=*/1, /*padding=*/1));
  outs.push_back(y);
  outs.push_back(conv2dGradInput(y, w, img.shape(), Conv2dOptions(1, 1)));
  outs.push_back(conv2dGradFilter(img, y, w.shape(), Conv2dOptions(1, 1)));
  Tensor mp = maxPool2d(img, Pool2dOptions(2));
  outs.push_back(mp);
  outs.push_back(maxPool2dGrad(img, mp, Pool2dOptions(2)));
  Tensor ap = avgPool2d(img, Pool2dOptions({3, 3}, {1, 1}, {1, 1}));
  outs.push_back(avgPool2dGrad(ap, img.shape(), Pool2dOptions({3, 3}, {1, 1}, {1, 1})));
  Tensor g = gather(x, idx, 0);
  outs.push_back(g);
  outs.push_back(scatterAdd(idx, g, x.shape(), 0));
  outs.push_back(rngUniform(seed, DType::F32, {2, 3}));
  for (const Tensor &t : outs)
    b.output(t);
  std::unique_ptr<Graph> graph = b.finish();

  std::set<OpKind> seen;
  for (const auto &node : graph->nodes())
    seen.insert(node->kind());
  for (OpKind kind : allOpKinds()) {
    if (kind == OpKind::Fusion)
      continue; // made by the fusion pass from other ops, never by a model
    EXPECT_TRUE(seen.count(kind)) << "no helper emitted " << opName(kind);
  }
}

TEST(GraphBuilder, RngOffsetsDoNotOverlap) {
  GraphBuilder b("g");
  Tensor seed = b.input("seed", DType::I64, {});
  Tensor a = rngUniform(seed, DType::F32, {2, 3});
  Tensor c = rngUniform(seed, DType::F32, {4});
  Tensor d = rngUniform(seed, DType::F32, {4}, /*offset=*/100);
  EXPECT_EQ(a.value()->node->intAttr("offset"), 0);
  EXPECT_EQ(c.value()->node->intAttr("offset"), 6);
  EXPECT_EQ(d.value()->node->intAttr("offset"), 100);
  EXPECT_EQ(b.reserveRngOffsets(1), 10);
}

TEST(GraphBuilder, ErrorsAreLocatedAtTheNode) {
  GraphBuilder b("g");
  Tensor a = b.input("a", DType::F32, {4});
  Tensor c = b.input("c", DType::F32, {3});
  Tensor i = b.input("i", DType::I32, {4});
  Tensor m = b.input("m", DType::F32, {2, 3});
  Tensor n = b.input("n", DType::F32, {4, 5});

  EXPECT_EQ(errorOf([&] { a + c; }),
            "@g: %0 (add): error: add cannot broadcast operands f32[4] and f32[3] to one shape");
  EXPECT_EQ(errorOf([&] { a + i; }),
            "@g: %0 (add): error: add expects operands of equal type, got f32[4] and i32[4]");
  EXPECT_EQ(errorOf([&] { matmul(m, n); }),
            "@g: %0 (matmul): error: matmul contraction sizes differ: 3 and 4 (operands "
            "f32[2,3] and f32[4,5])");
  EXPECT_EQ(errorOf([&] { exp(i); }), "@g: %0 (exp): error: exp expects a float type, got i32[4]");
  EXPECT_EQ(errorOf([&] { transpose(m, {0, 0}); }),
            "@g: %0 (transpose): error: transpose 'perm' [0, 0] is not a permutation of the "
            "dimensions of f32[2,3]");
  EXPECT_EQ(errorOf([&] { reduceSum(m, {2}); }),
            "@g: error: reduce_sum axis 2 is out of range for f32[2,3]");
  EXPECT_EQ(errorOf([&] { broadcastTo(m, {3, 3}); }),
            "@g: %0 (broadcast): error: cannot broadcast f32[2,3] to [3,3]");
  EXPECT_EQ(errorOf([&] { pow(i, 2.0); }),
            "@g: %0 (pow): error: pow expects a float type, got i32[4]");
  // A failed op adds nothing: the next node is still %0.
  EXPECT_TRUE(b.graph().nodes().empty());

  EXPECT_EQ(errorOf([&] { b.input("a", DType::F32, {1}); }),
            "@g: error: argument '%a' is defined twice");
  EXPECT_EQ(errorOf([&] { b.update(a, a); }),
            "@g: error: update target must be a param or state argument, got the input '%a'");
  Tensor p = b.param("p", DType::F32, {4}, Init::zeros());
  EXPECT_EQ(errorOf([&] { b.update(p, i); }),
            "@g: error: update of '%p' (f32[4]) with a value of type i32[4]");
  EXPECT_EQ(errorOf([&] { a + Tensor(); }), "error: an undefined kiln::Tensor was used");

  GraphBuilder other("h");
  Tensor foreign = other.input("z", DType::F32, {4});
  EXPECT_EQ(errorOf([&] { b.emit(OpKind::Add, {a, foreign}); }),
            "@g: error: add got a value of another graph (@h)");
}

TEST(GraphBuilder, FinishVerifiesAndHandsOver) {
  GraphBuilder b("step");
  Tensor x = b.input("x", DType::F32, {2});
  Tensor w = b.param("w", DType::F32, {2}, Init::uniform(-0.1, 0.1));
  Tensor count = b.state("count", DType::I64, {}, Init::zeros());
  b.update(w, w - x * 0.1);
  b.update(count, count + 1.0);
  b.output(reduceSum(x * w, {0}), "loss");
  EXPECT_EQ(errorOf([&] { b.output(x, "loss"); }), "@step: error: two results are named 'loss'");
  std::unique_ptr<Graph> g = b.finish();
  ASSERT_TRUE(g);
  EXPECT_EQ(g->name(), "step");
  EXPECT_EQ(g->resultName(0), "loss");
  EXPECT_EQ(g->updates().size(), 2u);
  EXPECT_EQ(errorOf([&] { b.input("y", DType::F32, {1}); }),
            "@step: error: the graph builder was already finished");
  std::string text = printGraph(*g);
  EXPECT_NE(text.find("-> (loss: f32[])"), std::string::npos) << text;
  EXPECT_NE(text.find("update %w, "), std::string::npos) << text;
}

TEST(GraphBuilder, ArgumentAttributesUseTheCanonicalSpellings) {
  GraphBuilder b("g");
  b.input("tokens", DType::I32, {8}, FeedRange{0, 512});
  b.input("noise", DType::F32, {8}, FeedRange{-0.5, 0.5});
  b.param("a", DType::F32, {2}, Init::zeros());
  b.param("b", DType::F32, {2}, Init::ones());
  b.param("c", DType::F32, {2}, Init::constant(0.5));
  b.param("d", DType::F32, {2}, Init::uniform(-0.1, 0.1));
  b.param("e", DType::F32, {2}, Init::normal(0.0, 0.02));
  const auto &args = b.graph().arguments();
  auto printed = [&](size_t i) {
    std::string s;
    for (const auto &[name, value] : args[i]->attrs)
      s += (s.empty() ? "" : ", ") + name + " = " + value.toString();
    return s;
  };
  EXPECT_EQ(printed(0), "low = 0, high = 512");
  EXPECT_TRUE(args[0]->attrs.find("low")->isInt());
  EXPECT_EQ(printed(1), "low = -0.5, high = 0.5");
  EXPECT_EQ(printed(2), "init = \"zeros\"");
  EXPECT_EQ(printed(3), "init = \"ones\"");
  EXPECT_EQ(printed(4), "init = \"constant\", value = 0.5");
  EXPECT_EQ(printed(5), "init = \"uniform\", low = -0.1, high = 0.1");
  EXPECT_EQ(printed(6), "init = \"normal\", mean = 0.0, std = 0.02");
  for (const auto &arg : args)
    EXPECT_EQ(checkArgumentAttributes(*arg), "") << arg->name;
  EXPECT_EQ(errorOf([&] { b.input("bad", DType::I32, {1}, FeedRange{0, 2.5}); }),
            "@g: error: input '%bad' of integer type i32 needs an integer feed range, got [0.0, 2.5)");
}

// ---- Initializers: bounds against values computed by hand --------------------

double low(const Init &init) { return init.attrs.find("low")->asFloat(); }
double high(const Init &init) { return init.attrs.find("high")->asFloat(); }
double stdOf(const Init &init) { return init.attrs.find("std")->asFloat(); }
std::string kindOf(const Init &init) { return init.attrs.find("init")->asString(); }

TEST(Init, FansFollowPyTorch) {
  Fans linear = computeFans({512, 784});
  EXPECT_EQ(linear.fanIn, 784);
  EXPECT_EQ(linear.fanOut, 512);
  Fans conv = computeFans({32, 3, 3, 3});
  EXPECT_EQ(conv.fanIn, 27);
  EXPECT_EQ(conv.fanOut, 288);
  EXPECT_EQ(errorOf([] { computeFans({5}); }),
            "error: fan in and fan out cannot be computed for shape [5] with fewer than 2 dimensions");
}

TEST(Init, Gains) {
  EXPECT_DOUBLE_EQ(calculateGain(Nonlinearity::Linear), 1.0);
  EXPECT_DOUBLE_EQ(calculateGain(Nonlinearity::Sigmoid), 1.0);
  EXPECT_DOUBLE_EQ(calculateGain(Nonlinearity::Tanh), 1.6666666666666667);
  EXPECT_DOUBLE_EQ(calculateGain(Nonlinearity::Relu), 1.4142135623730951);
  EXPECT_DOUBLE_EQ(calculateGain(Nonlinearity::LeakyRelu), 1.4141428569978354); // slope 0.01
  EXPECT_DOUBLE_EQ(calculateGain(Nonlinearity::LeakyRelu, std::sqrt(5.0)), 0.5773502691896257);
  EXPECT_DOUBLE_EQ(calculateGain(Nonlinearity::Selu), 0.75);
}

TEST(Init, KaimingBounds) {
  // a = 0, fan_in, leaky_relu: gain sqrt(2), bound sqrt(3) * sqrt(2) / sqrt(784) = sqrt(6) / 28.
  Init u = kaimingUniform({512, 784});
  EXPECT_EQ(kindOf(u), "uniform");
  EXPECT_NEAR(high(u), 0.0874817765279706, 1e-15);
  EXPECT_EQ(low(u), -high(u));
  // fan_out of [64, 32, 3, 3] is 576; relu gain sqrt(2): std = sqrt(2) / 24.
  Init n = kaimingNormal({64, 32, 3, 3}, 0.0, FanMode::FanOut, Nonlinearity::Relu);
  EXPECT_EQ(kindOf(n), "normal");
  EXPECT_EQ(n.attrs.find("mean")->asFloat(), 0.0);
  EXPECT_NEAR(stdOf(n), 0.05892556509887897, 1e-15);
  // a = 1 (leaky_relu): gain 1, fan_in 10: bound sqrt(3/10).
  EXPECT_NEAR(high(kaimingUniform({4, 10}, 1.0)), 0.5477225575051661, 1e-15);
}

TEST(Init, XavierBounds) {
  // sqrt(6 / (1024 + 256)).
  EXPECT_NEAR(high(xavierUniform({256, 1024})), 0.06846531968814576, 1e-15);
  // tanh gain 5/3, fans 30 + 20: (5/3) * sqrt(6/50).
  EXPECT_NEAR(high(xavierUniform({20, 30}, 5.0 / 3)), 0.5773502691896258, 1e-15);
  // sqrt(2 / (20 + 30)) = 0.2.
  Init n = xavierNormal({20, 30});
  EXPECT_EQ(kindOf(n), "normal");
  EXPECT_NEAR(stdOf(n), 0.2, 1e-15);
}

TEST(Init, TorchDefaultLinearAndConv) {
  // nn.Linear(128, 10): weight and bias U(-1/sqrt(128), 1/sqrt(128)).
  EXPECT_NEAR(high(torchDefaultWeightInit({10, 128})), 0.08838834764831843, 1e-16);
  EXPECT_DOUBLE_EQ(high(torchDefaultBiasInit({10, 128})), 0.08838834764831843);
  EXPECT_DOUBLE_EQ(low(torchDefaultBiasInit({10, 128})), -0.08838834764831843);
  // nn.Conv2d(3, 32, 3): fan_in 27, bound 1/sqrt(27).
  EXPECT_NEAR(high(torchDefaultWeightInit({32, 3, 3, 3})), 0.19245008972987526, 1e-16);
  EXPECT_DOUBLE_EQ(high(torchDefaultBiasInit({32, 3, 3, 3})), 0.19245008972987526);
}

} // namespace
} // namespace kiln
