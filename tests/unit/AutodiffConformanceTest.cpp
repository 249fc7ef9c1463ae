// Every gradient case of tests/conformance: the autodiff pass's gradients,
// run by the interpreter in f64, against PyTorch's float64 gradients.
#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "ir/Verifier.h"
#include "passes/PassManager.h"
#include "tests/unit/TestHelpers.h"
#include "runtime/Safetensors.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>

namespace kiln {
namespace {


const std::string kDir = std::string(KILN_TEST_DATA_DIR) + "/conformance/";

std::vector<std::string> gradientCases() {
  std::vector<std::string> cases;
  for (const auto &entry : nlohmann::json::parse(readFile(kDir + "index.json")))
    if (entry.at("grad").get<bool>())
      cases.push_back(entry.at("case").get<std::string>());
  return cases;
}

class GradientConformance : public testing::TestWithParam<std::string> {};

TEST_P(GradientConformance, MatchesPyTorchFloat64) {
  const std::string name = GetParam();
  Module module = parseModule(readFile(kDir + name + ".grad.kir"), name + ".grad.kir");
  Graph &graph = *module.graphs[0];
  runPasses(graph, parsePassPipeline("autodiff"), verifyEachOptions());
  TensorMap inputs = readSafetensors(kDir + name + ".grad.inputs.safetensors");
  TensorMap expected = readSafetensors(kDir + name + ".expected.safetensors");
  InterpreterResult r = interpret(graph, inputs, Precision::F64);
  int checked = 0;
  for (size_t i = 0; i < graph.results().size(); ++i) {
    std::string resultName = graph.resultName(i);
    if (resultName.rfind("grad.", 0) != 0)
      continue;
    ASSERT_TRUE(expected.count(resultName)) << "no expected " << resultName;
    const HostTensor &want = expected.at(resultName), &got = r.results[i];
    ASSERT_EQ(got.shape(), want.shape()) << resultName;
    double scale = 0;
    for (int64_t k = 0; k < want.numElements(); ++k)
      scale = std::max(scale, std::fabs(want.getDouble(k)));
    for (int64_t k = 0; k < want.numElements(); ++k) {
      double a = got.getDouble(k), e = want.getDouble(k);
      // Relative 1e-8 per element; exact zeros in the reference (e.g. padding,
      // masked positions) are held to 1e-14 of the tensor's largest value.
      EXPECT_LE(std::fabs(a - e), 1e-8 * std::fabs(e) + 1e-14 * scale)
          << resultName << "[" << k << "]: got " << a << ", expected " << e;
    }
    ++checked;
  }
  int params = 0;
  for (const auto &arg : graph.arguments())
    params += arg->role == ArgRole::Param;
  EXPECT_EQ(checked, params) << "every param's gradient is checked";
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Conformance, GradientConformance, testing::ValuesIn(gradientCases()),
                         [](const testing::TestParamInfo<std::string> &info) {
                           std::string n = info.param;
                           for (char &c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           return n;
                         });

} // namespace
} // namespace kiln
