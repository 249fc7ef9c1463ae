// Property tests of the simplification passes (passes/simplify): on the three
// example training steps and on randomly generated small graphs, `simplify`
// (and each of its four passes alone) keeps the interpreter's results and
// updated values, keeps the graph's interface (arguments, result names and
// types, update targets), is idempotent and is deterministic.
//
// Two precisions are checked. Native on the f32 graph: what running gives.
// No rewrite rounds differently and constant folding evaluates in Native, so
// the values must be equal (only the sign of a zero may differ, from x+0),
// which is stricter than the 1e-5 relative the issue asks. F64 on the graph
// promoted to f64 first, to 1e-9 relative: the rewrites themselves are exact. (An f32 graph
// interpreted in F64 is not the reference there: a folded f32 constant such as 1 - 0.9 holds the
// f32 result, which F64 interpretation of the unfolded graph would not round.)
#include "compiler/TrainingStep.h"
#include "examples/models/Models.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/Pass.h"
#include "passes/PassManager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <unordered_set>

namespace kiln {
namespace {

using Rng = std::mt19937_64;
using Dims = std::vector<int64_t>;

/// Native results must be equal: see the top of the file.
constexpr double kNativeTolerance = 0;
const char *const kEachPass[] = {"canonicalize", "constant-fold", "cse", "dce", "simplify"};

/// `graph` after the comma list of passes `pipeline`, verified.
std::unique_ptr<Graph> transformed(const Graph &graph, const std::string &pipeline,
                                   bool *changed = nullptr) {
  std::unique_ptr<Graph> copy = cloneGraph(graph);
  PassManagerOptions options;
  options.verifyEach = true;
  bool didChange = runPasses(*copy, parsePassPipeline(pipeline), options);
  if (changed)
    *changed = didChange;
  return copy;
}

TensorMap argumentValues(const Graph &graph, uint64_t seed) {
  TensorMap args;
  for (const auto &arg : graph.arguments())
    args[arg->name] = defaultArgumentValue(*arg, seed);
  return args;
}

/// Within `relTol` of each other, relative to the larger magnitude; equal
/// infinities and two NaNs match.
bool close(double a, double b, double relTol) {
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) && std::isnan(b);
  if (a == b)
    return true;
  return std::fabs(a - b) <= relTol * std::max(std::fabs(a), std::fabs(b));
}

void expectSameTensor(const HostTensor &want, const HostTensor &got, double relTol,
                      const std::string &what) {
  ASSERT_EQ(want.typeString(), got.typeString()) << what;
  std::vector<double> w = want.toDoubles(), g = got.toDoubles();
  for (size_t i = 0; i < w.size(); ++i)
    ASSERT_TRUE(close(w[i], g[i], relTol))
        << what << " element " << i << ": " << w[i] << " before, " << g[i] << " after";
}

/// Same arguments, result names and types, and update targets.
void expectSameInterface(const Graph &before, const Graph &after) {
  ASSERT_EQ(before.arguments().size(), after.arguments().size());
  for (size_t i = 0; i < before.arguments().size(); ++i) {
    const Argument &a = *before.arguments()[i], &b = *after.arguments()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.role, b.role);
    EXPECT_EQ(a.value.type, b.value.type);
  }
  ASSERT_EQ(before.results().size(), after.results().size());
  for (size_t i = 0; i < before.results().size(); ++i) {
    EXPECT_EQ(before.resultName(i), after.resultName(i));
    EXPECT_EQ(before.results()[i]->type, after.results()[i]->type);
  }
  ASSERT_EQ(before.updates().size(), after.updates().size());
  for (size_t i = 0; i < before.updates().size(); ++i)
    EXPECT_EQ(before.updates()[i].target->name, after.updates()[i].target->name);
}

/// The interpreter gives `before` and `after` the same results and updates.
void expectSameValues(const Graph &before, const Graph &after, Precision precision, double relTol,
                      uint64_t seed) {
  TensorMap args = argumentValues(before, seed);
  InterpreterResult want = interpret(before, args, precision);
  InterpreterResult got = interpret(after, args, precision);
  ASSERT_EQ(want.results.size(), got.results.size());
  for (size_t i = 0; i < want.results.size(); ++i)
    expectSameTensor(want.results[i], got.results[i], relTol, "result " + before.resultName(i));
  ASSERT_EQ(want.updated.size(), got.updated.size());
  for (const auto &[name, value] : want.updated) {
    ASSERT_TRUE(got.updated.count(name)) << "update of " << name;
    expectSameTensor(value, got.updated.at(name), relTol, "update of " + name);
  }
}

/// All the properties, for an f32 graph; `rebuild` makes a fresh copy of it
/// from scratch (for determinism, with other pointers).
void expectSimplifyIsSound(const Graph &graph,
                           const std::function<std::unique_ptr<Graph>()> &rebuild, uint64_t seed) {
  verifyGraph(graph);
  std::unique_ptr<Graph> f64 = promoteFloatsToF64(graph);
  for (const char *pass : kEachPass) {
    SCOPED_TRACE(std::string("pass ") + pass);
    std::unique_ptr<Graph> after = transformed(graph, pass);
    expectSameInterface(graph, *after);
    expectSameValues(graph, *after, Precision::Native, kNativeTolerance, seed);
    expectSameValues(*f64, *transformed(*f64, pass), Precision::F64, 1e-9, seed);
  }
  // Idempotent: simplify's output is a fixed point of it and of each pass.
  std::unique_ptr<Graph> once = transformed(graph, "simplify");
  std::string text = printGraph(*once);
  for (const char *pass : kEachPass) {
    bool changed = true;
    std::unique_ptr<Graph> twice = transformed(*once, pass, &changed);
    EXPECT_FALSE(changed) << pass << " changed simplify's output";
    EXPECT_EQ(printGraph(*twice), text) << pass;
  }
  // Deterministic: the same graph built again simplifies to the same text.
  EXPECT_EQ(printGraph(*transformed(*rebuild(), "simplify")), text);
}

size_t countNodes(const Graph &graph) { return graph.nodes().size(); }

// --- The example training steps ---------------------------------------------

std::unique_ptr<Graph> mlpStep() {
  examples::MlpConfig c;
  c.batch = 4;
  c.inputs = 12;
  c.hidden = 8;
  c.classes = 3;
  OptimizerOptions o;
  o.kind = OptimizerKind::Momentum;
  return buildTrainingStep(*examples::buildMlp(c), o);
}

std::unique_ptr<Graph> cnnStep() {
  examples::CnnConfig c;
  c.batch = 2;
  c.size = 8;
  c.classes = 4;
  OptimizerOptions o;
  o.kind = OptimizerKind::AdamW;
  return buildTrainingStep(*examples::buildCnn(c), o);
}

std::unique_ptr<Graph> gptStep() {
  examples::GptConfig c;
  c.batch = 2;
  c.seqLen = 8;
  c.vocab = 16;
  c.dModel = 16;
  c.heads = 2;
  c.layers = 1;
  c.blockSize = 8;
  OptimizerOptions o;
  o.kind = OptimizerKind::Adam;
  o.clipNorm = 1.0;
  return buildTrainingStep(*examples::buildGpt(c), o);
}

void expectTrainingStepSimplifies(const std::function<std::unique_ptr<Graph>()> &build) {
  std::unique_ptr<Graph> step = build();
  expectSimplifyIsSound(*step, build, 11);
  // It must have found something to do, and kept the graph whole.
  std::unique_ptr<Graph> simplified = transformed(*step, "simplify");
  EXPECT_LT(countNodes(*simplified), countNodes(*step));
  EXPECT_GT(countNodes(*simplified), countNodes(*step) / 2);
}

TEST(Simplify, MlpTrainingStep) { expectTrainingStepSimplifies(mlpStep); }
TEST(Simplify, CnnTrainingStep) { expectTrainingStepSimplifies(cnnStep); }
TEST(Simplify, GptTrainingStep) { expectTrainingStepSimplifies(gptStep); }

// --- Random graphs ----------------------------------------------------------

/// Small random f32 graphs over elementwise, broadcast, reshape, transpose,
/// matmul and reduction ops, biased towards what the passes rewrite: identity
/// constants, neg/reshape/transpose/broadcast chains, explicit transposes
/// into matmuls, subgraphs of constants, duplicated nodes, dead nodes.
class RandomGraphBuilder {
public:
  explicit RandomGraphBuilder(uint64_t seed)
      : rng_(seed), g_(std::make_unique<Graph>("random" + std::to_string(seed))) {}

  std::unique_ptr<Graph> build() {
    int inputs = int(pick(1, 3)), params = int(pick(1, 2));
    for (int i = 0; i < inputs; ++i)
      pool_.push_back(
          &g_->addArgument("x" + std::to_string(i), randomType(), ArgRole::Input)->value);
    std::vector<Argument *> paramArgs;
    for (int i = 0; i < params; ++i) {
      paramArgs.push_back(g_->addArgument("w" + std::to_string(i), randomType(), ArgRole::Param));
      pool_.push_back(&paramArgs.back()->value);
    }
    seed_ = &g_->addArgument("seed", TensorType{DType::I64, Shape{}}, ArgRole::Input)->value;
    g_->addArgument("unused", randomType(), ArgRole::Param); // must survive dce

    int steps = int(pick(12, 40));
    for (int i = 0; i < steps; ++i)
      step();

    // Every pooled value that nothing uses is a result, so that what was
    // built is checked; only the deliberately dead nodes stay dead.
    g_->addResult(pool_.back(), "last");
    std::unordered_set<const Value *> used;
    for (const auto &node : g_->nodes())
      used.insert(node->operands().begin(), node->operands().end());
    for (Value *v : pool_)
      if (v->node && !used.count(v) && v != pool_.back())
        g_->addResult(v);
    for (Argument *p : paramArgs)
      g_->addUpdate(p, sameShapeAs(&p->value));
    verifyGraph(*g_);
    return std::move(g_);
  }

private:
  int64_t pick(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  bool coin(double p = 0.5) { return std::bernoulli_distribution(p)(rng_); }
  Value *any() { return pool_[size_t(pick(0, int64_t(pool_.size()) - 1))]; }

  TensorType randomType() {
    Dims dims(size_t(pick(0, 3)));
    for (int64_t &d : dims)
      d = pick(1, 4);
    return TensorType{DType::F32, Shape(dims)};
  }

  Value *emit(OpKind kind, std::vector<Value *> operands, AttrMap attrs = {},
              const TensorType *given = nullptr) {
    return emitNode(*g_, kind, std::move(operands), std::move(attrs), given);
  }
  Value *unary(OpKind kind, Value *v) { return emit(kind, {v}); }
  Value *constant(Attribute value, const TensorType &type) {
    AttrMap attrs;
    attrs.set("value", std::move(value));
    return emit(OpKind::Constant, {}, std::move(attrs), &type);
  }
  Value *broadcast(Value *v, const TensorType &to, Dims dims) {
    AttrMap attrs;
    attrs.set("dims", Attribute(std::move(dims)));
    return emit(OpKind::Broadcast, {v}, std::move(attrs), &to);
  }
  Value *reshape(Value *v, Dims dims) {
    TensorType to{v->type.dtype, Shape(std::move(dims))};
    return emit(OpKind::Reshape, {v}, {}, &to);
  }
  Value *transpose(Value *v, Dims perm) {
    AttrMap attrs;
    attrs.set("perm", Attribute(std::move(perm)));
    return emit(OpKind::Transpose, {v}, std::move(attrs));
  }
  Value *swapLastTwo(Value *v) {
    Dims perm(v->type.shape.rank());
    std::iota(perm.begin(), perm.end(), 0);
    std::swap(perm[perm.size() - 2], perm[perm.size() - 1]);
    return transpose(v, perm);
  }

  /// A constant of `type`: an identity splat (0 or 1, maybe broadcast from a
  /// scalar), another splat, or a small literal.
  Value *randomConstant(const TensorType &type) {
    switch (pick(0, 4)) {
    case 0: return constant(Attribute(coin() ? 0.0 : 1.0), type);
    case 1: {
      Value *scalar = constant(coin() ? Attribute(int64_t(1)) : Attribute(0.0),
                               TensorType{type.dtype, Shape{}});
      return broadcast(scalar, type, {});
    }
    case 2:
      return constant(Attribute(std::vector<double>{0.5, -1.25, 2.0, 3.0}[size_t(pick(0, 3))]),
                      type);
    default: {
      std::vector<double> values;
      for (int64_t i = 0; i < type.numElements(); ++i)
        values.push_back(double(pick(-8, 8)) / 4);
      return constant(Attribute(values), type);
    }
    }
  }

  /// A pool value of `v`'s shape other than v, or a constant of it.
  Value *partnerOf(Value *v) {
    std::vector<Value *> same;
    for (Value *w : pool_)
      if (w != v && w->type == v->type)
        same.push_back(w);
    if (same.empty() || coin(0.4))
      return randomConstant(v->type);
    return same[size_t(pick(0, int64_t(same.size()) - 1))];
  }

  /// A value of `v`'s type computed from the pool (for updates).
  Value *sameShapeAs(Value *v) {
    Value *step = emit(OpKind::Mul, {partnerOf(v), constant(Attribute(0.1), v->type)});
    return emit(OpKind::Sub, {v, step});
  }

  void add(Value *v) { pool_.push_back(v); }

  void step() {
    Value *v = any();
    size_t rank = v->type.shape.rank();
    switch (pick(0, 13)) {
    case 0: { // bounded unary ops
      OpKind kinds[] = {OpKind::Tanh, OpKind::Neg, OpKind::Abs, OpKind::Sin, OpKind::Logistic};
      Value *u = unary(kinds[pick(0, 4)], v);
      add(coin(0.3) ? unary(OpKind::Exp, unary(OpKind::Tanh, u)) : u);
      return;
    }
    case 1:
    case 2: { // binary ops, often with a constant (identities among them)
      Value *w = partnerOf(v);
      if (coin())
        std::swap(v, w);
      OpKind kinds[] = {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Max, OpKind::Min};
      Value *r = emit(kinds[pick(0, 4)], {v, w});
      add(coin(0.3) ? unary(OpKind::Tanh, r) : r);
      return;
    }
    case 3: { // division, by 1 or by something >= 1
      Value *one = coin()
                       ? constant(Attribute(1.0), v->type)
                       : broadcast(constant(Attribute(int64_t(1)), TensorType{DType::F32, Shape{}}),
                                   v->type, {});
      Value *d = coin(0.4) ? one : emit(OpKind::Add, {unary(OpKind::Abs, partnerOf(v)), one});
      add(emit(OpKind::Div, {v, d}));
      return;
    }
    case 4: { // neg chains and casts to the same dtype
      Value *r = unary(OpKind::Neg, unary(OpKind::Neg, v));
      if (coin())
        r = unary(OpKind::Neg, r);
      AttrMap attrs;
      attrs.set("to", DType::F32);
      add(coin() ? emit(OpKind::Cast, {r}, attrs) : r);
      return;
    }
    case 5: { // reshape chains, sometimes back to the start
      Dims flat{v->type.numElements()};
      Value *r = reshape(v, flat);
      if (coin())
        r = reshape(r, v->type.shape.dims());
      else if (coin() && flat[0] % 2 == 0)
        r = reshape(r, {2, flat[0] / 2});
      add(r);
      return;
    }
    case 6: { // transpose chains, sometimes composing to the identity
      if (rank < 2)
        return;
      Dims perm(rank), second(rank);
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng_);
      Value *t = transpose(v, perm);
      if (coin(0.7)) {
        if (coin()) {
          for (size_t i = 0; i < rank; ++i)
            second[size_t(perm[i])] = int64_t(i);
        } else {
          std::iota(second.begin(), second.end(), 0);
          std::shuffle(second.begin(), second.end(), rng_);
        }
        t = transpose(t, second);
      }
      add(t);
      return;
    }
    case 7: { // broadcast chains: a new leading dim, then maybe another
      if (rank >= 3)
        return;
      Dims dims(rank);
      std::iota(dims.begin(), dims.end(), 1);
      Dims shape{pick(1, 3)};
      for (int64_t d : v->type.shape.dims())
        shape.push_back(d);
      Value *b = broadcast(v, TensorType{DType::F32, Shape(shape)}, dims);
      if (coin() && rank + 1 < 3) {
        Dims outer(rank + 1);
        std::iota(outer.begin(), outer.end(), 1);
        shape.insert(shape.begin(), pick(1, 2));
        b = broadcast(b, TensorType{DType::F32, Shape(shape)}, outer);
      }
      if (coin(0.2)) { // a broadcast to the same shape
        Dims same(b->type.shape.rank());
        std::iota(same.begin(), same.end(), 0);
        b = broadcast(b, b->type, same);
      }
      add(b);
      return;
    }
    case 8: { // matmul of v and its transpose, through flags or explicit transposes
      if (rank < 2)
        return;
      bool explicitA = coin(), explicitB = coin();
      AttrMap attrs;
      attrs.set("transpose_a", explicitA);
      attrs.set("transpose_b", !explicitB);
      Value *a = explicitA ? swapLastTwo(v) : v;
      Value *b = explicitB ? swapLastTwo(v) : v;
      add(emit(OpKind::Matmul, {a, b}, attrs));
      return;
    }
    case 9: { // reductions
      if (rank == 0)
        return;
      Dims axes;
      for (size_t d = 0; d < rank; ++d)
        if (coin())
          axes.push_back(int64_t(d));
      AttrMap attrs;
      attrs.set("axes", Attribute(axes));
      add(emit(coin() ? OpKind::ReduceSum : OpKind::ReduceMax, {v}, attrs));
      return;
    }
    case 10: { // a subgraph of constants, then used with v
      Value *a = randomConstant(v->type), *b = randomConstant(v->type);
      Value *c = emit(coin() ? OpKind::Add : OpKind::Mul, {a, b});
      if (coin() && rank >= 1) {
        TensorType it{DType::F32, v->type.shape};
        AttrMap attrs;
        attrs.set("dim", int64_t(0));
        c = emit(OpKind::Sub, {c, emit(OpKind::Iota, {}, attrs, &it)});
      }
      add(emit(OpKind::Add, {v, unary(OpKind::Tanh, c)}));
      return;
    }
    case 11: { // a duplicate of an existing node
      if (g_->nodes().empty())
        return;
      const Node &n = *g_->nodes()[size_t(pick(0, int64_t(g_->nodes().size()) - 1))];
      if (n.type().dtype != DType::F32)
        return;
      const TensorType *given = n.info().has(OpTrait::GivenType) ? &n.type() : nullptr;
      add(emit(n.kind(), n.operands(), n.attrs(), given));
      return;
    }
    case 12: { // random numbers, plus a duplicate
      AttrMap attrs;
      attrs.set("offset", pick(0, 1) * 4);
      TensorType type = v->type;
      Value *r = emit(OpKind::RngUniform, {seed_}, attrs, &type);
      if (coin())
        r = emit(OpKind::Add, {r, emit(OpKind::RngUniform, {seed_}, attrs, &type)});
      add(emit(OpKind::Mul, {v, r}));
      return;
    }
    default: { // a dead node
      unary(OpKind::Exp, v);
      return;
    }
    }
  }

  Rng rng_;
  std::unique_ptr<Graph> g_;
  std::vector<Value *> pool_;
  Value *seed_ = nullptr;
};

TEST(Simplify, RandomGraphs) {
  size_t before = 0, after = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("random graph seed " + std::to_string(seed));
    auto build = [seed] { return RandomGraphBuilder(seed).build(); };
    std::unique_ptr<Graph> graph = build();
    expectSimplifyIsSound(*graph, build, seed);
    before += countNodes(*graph);
    after += countNodes(*transformed(*graph, "simplify"));
    if (HasFatalFailure())
      return;
  }
  EXPECT_LT(after, before * 3 / 4) << "the generated graphs are built to simplify";
}

// The whole default pipeline (simplify, fuse, plan-memory, verified after each
// pass, memory plan checked) keeps every result and update of random graphs:
// f64 within 1e-9 (on the graphs promoted to f64), f32 within 1e-5.
TEST(Pipeline, RandomGraphsKeepTheirValues) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("random graph seed " + std::to_string(seed));
    std::unique_ptr<Graph> graph = RandomGraphBuilder(seed).build();
    std::unique_ptr<Graph> compiled = transformed(*graph, defaultPipeline());
    expectSameValues(*graph, *compiled, Precision::Native, 1e-5, seed);
    std::unique_ptr<Graph> wide = promoteFloatsToF64(*graph);
    expectSameValues(*wide, *transformed(*wide, defaultPipeline()), Precision::F64, 1e-9, seed);
    if (HasFatalFailure())
      return;
  }
}

// --- Exact rewrites on hand-written cases -----------------------------------

TEST(Simplify, KeepsWhatItMustNot) {
  // x*0 must stay: x may be inf or NaN. rng_uniform of a constant seed must
  // stay. Each stays under simplify.
  std::unique_ptr<Graph> g = std::make_unique<Graph>("keep");
  TensorType t{DType::F32, Shape{3}};
  Value *x = &g->addArgument("x", t, ArgRole::Input)->value;
  AttrMap zero;
  zero.set("value", 0.0);
  Value *z = emitNode(*g, OpKind::Constant, {}, zero, &t);
  g->addResult(emitNode(*g, OpKind::Mul, {x, z}));
  TensorType seedType{DType::I64, Shape{}};
  AttrMap seven;
  seven.set("value", int64_t(7));
  Value *seed = emitNode(*g, OpKind::Constant, {}, seven, &seedType);
  g->addResult(emitNode(*g, OpKind::RngUniform, {seed}, {}, &t));
  std::unique_ptr<Graph> s = transformed(*g, "simplify");
  EXPECT_EQ(printGraph(*s), printGraph(*g));
  TensorMap args;
  args["x"] = HostTensor::fromDoubles(DType::F32, Shape{3}, {INFINITY, NAN, 2.0});
  std::vector<double> r = interpret(*s, args).results[0].toDoubles();
  EXPECT_TRUE(std::isnan(r[0]));
  EXPECT_TRUE(std::isnan(r[1]));
  EXPECT_EQ(r[2], 0.0);
}

} // namespace
} // namespace kiln
