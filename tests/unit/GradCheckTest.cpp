// kiln check-grad's machinery on the three example models (in smaller
// configurations, so the finite differences stay quick) and on a broken
// gradient, which it must catch.
#include "compiler/GradCheck.h"
#include "examples/models/Models.h"
#include "ir/Graph.h"
#include "ir/Parser.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <cmath>

namespace kiln {
namespace {

void expectGradientsMatch(const Graph &model, uint64_t seed) {
  GradCheckOptions options;
  options.seed = seed;
  options.elements = 3;
  std::vector<ParamGradCheck> report = checkGradients(model, options);
  size_t params = 0;
  for (const auto &arg : model.arguments())
    params += arg->role == ArgRole::Param;
  ASSERT_EQ(report.size(), params);
  for (const ParamGradCheck &c : report) {
    EXPECT_GT(c.checkedElements, 0) << c.name;
    EXPECT_LE(c.worstRelativeError, 1e-6)
        << c.name << ": analytic " << c.analytic << ", numeric " << c.numeric;
  }
}

TEST(GradCheck, Mlp) {
  examples::MlpConfig config;
  config.batch = 8;
  config.inputs = 20;
  config.hidden = 16;
  expectGradientsMatch(*examples::buildMlp(config), 1);
}

TEST(GradCheck, Cnn) {
  examples::CnnConfig config;
  config.batch = 2;
  config.size = 8;
  expectGradientsMatch(*examples::buildCnn(config), 2);
}

TEST(GradCheck, Gpt) {
  examples::GptConfig config;
  config.batch = 2;
  config.seqLen = 8;
  config.vocab = 16;
  config.dModel = 16;
  config.heads = 2;
  config.blockSize = 8;
  expectGradientsMatch(*examples::buildGpt(config), 3);
}

TEST(GradCheck, CatchesAWrongGradient) {
  examples::MlpConfig config;
  config.batch = 4;
  config.inputs = 6;
  config.hidden = 5;
  std::unique_ptr<Graph> model = examples::buildMlp(config);
  GradCheckOptions options;
  TensorMap grads = autodiffGradients(*model, options);
  EXPECT_LE(compareWithFiniteDifferences(*model, grads, options)[0].worstRelativeError, 1e-6);
  // One element off by 0.1% of the gradient's scale must show.
  HostTensor &w = grads.at("fc1.weight");
  double largest = 0;
  int64_t where = 0;
  for (int64_t i = 0; i < w.numElements(); ++i)
    if (std::fabs(w.getDouble(i)) > largest) {
      largest = std::fabs(w.getDouble(i));
      where = i;
    }
  w.setDouble(where, w.getDouble(where) + 1e-3 * largest);
  std::vector<ParamGradCheck> report = compareWithFiniteDifferences(*model, grads, options);
  EXPECT_EQ(report[0].name, "fc1.weight");
  EXPECT_NEAR(report[0].worstRelativeError, 1e-3, 1e-4);
  EXPECT_EQ(report[0].worstElement, where);
}

TEST(GradCheck, RejectsANonScalarLoss) {
  Module m = parseModule(R"(graph @g(%w: f32[4] param) -> (f32[4]) {
  %0 = mul %w, %w : f32[4]
  return %0
}
)", "g.kir");
  EXPECT_THROW(checkGradients(*m.graphs[0], {}), Error);
}

} // namespace
} // namespace kiln
