// Runs every per-op conformance case (tests/conformance/index.json) through
// the reference interpreter and compares with the values PyTorch computed in
// float64. The `.grad.kir` variants check autodiff and are not run here.
#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "runtime/Safetensors.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <fstream>
#include <set>

namespace kiln {
namespace {

const std::string kConformanceDir = std::string(KILN_TEST_DATA_DIR) + "/conformance/";

struct ConformanceCase {
  std::string name; // `matmul-ta`: the files' stem
  std::string op;   // `matmul`
};

std::vector<ConformanceCase> loadCases() {
  nlohmann::json index = nlohmann::json::parse(readFile(kConformanceDir + "index.json"));
  std::vector<ConformanceCase> cases;
  for (const auto &entry : index)
    cases.push_back({entry.at("case").get<std::string>(), entry.at("op").get<std::string>()});
  return cases;
}

// Native f32 bounds. + - * / sqrt, max, data movement and sums (accumulated in
// double, rounded once) must be within 1e-5 relative of the float64 value.
// The transcendental functions get 1e-5 absolute + 1e-5 relative: a libm
// result may differ from PyTorch's by a few ulps, and the bound should not
// depend on how close to zero a result happens to be.
const std::set<std::string> kTranscendental = {"exp", "log", "tanh", "logistic",
                                               "erf", "sin", "cos", "pow"};

bool closeEnough(double actual, double expected, double abs, double rel) {
  if (std::isnan(expected))
    return std::isnan(actual);
  if (std::isinf(expected))
    return actual == expected;
  return std::fabs(actual - expected) <= abs + rel * std::fabs(expected);
}

/// Checks `actual` against the float64 or integer `expected`.
void expectMatches(const HostTensor &actual, const HostTensor &expected, double abs, double rel) {
  ASSERT_EQ(actual.shape(), expected.shape()) << "result shape";
  for (int64_t i = 0; i < expected.numElements(); ++i) {
    if (!isFloat(actual.dtype())) {
      ASSERT_EQ(actual.getInt(i), expected.getInt(i)) << "element " << i;
      continue;
    }
    double a = actual.getDouble(i), e = expected.getDouble(i);
    ASSERT_TRUE(closeEnough(a, e, abs, rel))
        << "element " << i << ": got " << a << ", expected " << e << " (difference "
        << std::fabs(a - e) << ")";
  }
}

void PrintTo(const ConformanceCase &c, std::ostream *os) { *os << c.name; }

class ConformanceOp : public ::testing::TestWithParam<ConformanceCase> {};

TEST_P(ConformanceOp, MatchesPyTorchFloat64) {
  const ConformanceCase &c = GetParam();
  Module module = parseModule(readFile(kConformanceDir + c.name + ".kir"), c.name + ".kir");
  ASSERT_EQ(module.graphs.size(), 1u);
  const Graph &graph = *module.graphs[0];
  TensorMap inputs = readSafetensors(kConformanceDir + c.name + ".inputs.safetensors");
  TensorMap expected = readSafetensors(kConformanceDir + c.name + ".expected.safetensors");
  ASSERT_EQ(graph.results().size(), 1u);
  ASSERT_TRUE(expected.count("out0")) << c.name << ".expected.safetensors has no out0";
  const HostTensor &want = expected.at("out0");
  DType resultType = graph.results()[0]->type.dtype;

  {
    SCOPED_TRACE("Precision::F64");
    InterpreterResult r = interpret(graph, inputs, Precision::F64);
    ASSERT_EQ(r.results.size(), 1u);
    EXPECT_EQ(r.results[0].dtype(), isFloat(resultType) ? DType::F64 : resultType);
    // Everything is computed in double from the same f32 inputs as PyTorch's
    // float64 reference: only the last bits of sums and libm calls differ.
    expectMatches(r.results[0], want, 1e-12, 1e-12);
  }
  {
    SCOPED_TRACE("Precision::Native");
    InterpreterResult r = interpret(graph, inputs, Precision::Native);
    ASSERT_EQ(r.results.size(), 1u);
    EXPECT_EQ(r.results[0].dtype(), resultType);
    bool transcendental = kTranscendental.count(c.op) > 0;
    expectMatches(r.results[0], want, transcendental ? 1e-5 : 0.0, 1e-5);
  }
}

std::string caseTestName(const ::testing::TestParamInfo<ConformanceCase> &info) {
  std::string name = info.param.name;
  for (char &ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)))
      ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Conformance, ConformanceOp, ::testing::ValuesIn(loadCases()), caseTestName);

TEST(ConformanceIndex, ListsEveryCaseWithItsFiles) {
  std::vector<ConformanceCase> cases = loadCases();
  EXPECT_GE(cases.size(), 60u);
  for (const ConformanceCase &c : cases)
    for (const char *suffix : {".kir", ".inputs.safetensors", ".expected.safetensors"})
      EXPECT_TRUE(std::ifstream(kConformanceDir + c.name + suffix).good())
          << "missing " << c.name << suffix;
}

} // namespace
} // namespace kiln
