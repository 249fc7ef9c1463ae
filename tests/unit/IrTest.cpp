// The IR's data layer: text and JSON round trips, safetensors, dtypes,
// random numbers, argument values, verifier messages for built graphs.
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/Json.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "runtime/Error.h"
#include "runtime/Random.h"
#include "runtime/Safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <dirent.h>
#include <sys/stat.h>
#include <set>
#include <unistd.h>

namespace kiln {
namespace {

std::string testDir() { return KILN_TEST_DATA_DIR; }

std::vector<std::string> kirFilesIn(const std::string &dir) {
  std::vector<std::string> files;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d)) {
      std::string name = e->d_name;
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".kir") == 0)
        files.push_back(dir + "/" + name);
    }
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// Graphs for every op, including the one the conformance folder lacks.
std::vector<std::string> roundTripInputs() {
  std::vector<std::string> files = kirFilesIn(testDir() + "/conformance");
  for (const char *model : {"mlp", "cnn", "gpt"}) {
    std::string path = std::string(KILN_SOURCE_DIR) + "/examples/" + model + ".kir";
    if (access(path.c_str(), R_OK) == 0)
      files.push_back(path);
  }
  return files;
}

const char *kRngGraph = R"(graph @rng(%seed: i64[] input) -> (f32[2,3], bf16[4]) {
  %0 = rng_uniform %seed {offset = 7} : f32[2,3]
  %1 = rng_uniform %seed : bf16[4]
  return %0, %1
}
)";

std::string tempPath(const std::string &name) {
  return testing::TempDir() + "/kiln_ir_test_" + std::to_string(getpid()) + "_" + name;
}

TEST(RoundTrip, TextAndJsonOfEveryOp) {
  std::set<OpKind> seen;
  std::vector<std::string> texts;
  for (const std::string &file : roundTripInputs())
    texts.push_back(readFile(file));
  texts.push_back(kRngGraph);
  texts.push_back(R"(graph @fused(%x: f32[4] input) -> (f32[4]) {
  %0 = fusion %x {kind = "loop"} : f32[4] {
    %0 = exp %arg0 : f32[4]
    %1 = neg %0 : f32[4]
    yield %1
  }
  return %0
}
)");
  ASSERT_GT(texts.size(), 60u) << "the conformance cases are missing from tests/conformance";
  for (const std::string &text : texts) {
    Module first = parseModule(text, "input.kir");
    std::string printed = printModule(first);
    Module second = parseModule(printed, "printed.kir");
    EXPECT_EQ(printModule(second), printed);
    std::string json = printJsonModule(first);
    Module fromJson = parseJsonModule(json, "printed.json", "");
    EXPECT_EQ(printModule(fromJson), printed);
    EXPECT_EQ(printJsonModule(fromJson), json);
    for (const auto &g : first.graphs)
      for (const auto &n : g->nodes())
        seen.insert(n->kind());
  }
  for (OpKind kind : allOpKinds())
    EXPECT_TRUE(seen.count(kind)) << "no round-trip input uses " << opName(kind);
}

TEST(RoundTrip, JsonWithWeightsFile) {
  Module module = parseModule(R"(graph @g(%x: f32[2] input, %w: f32[2] param, %s: i64[] state) -> (f32[2]) {
  %0 = mul %x, %w : f32[2]
  return %0
}
)", "g.kir");
  module.weights["w"] = HostTensor::fromDoubles(DType::F32, Shape{2}, {0.25, -3.5});
  module.weights["s"] = HostTensor::fromDoubles(DType::I64, Shape{}, {41});
  std::string path = tempPath("weights.json");
  writeJsonModule(path, module);
  Module back = readJsonModule(path);
  EXPECT_EQ(printModule(back), printModule(module));
  ASSERT_EQ(back.weights.size(), 2u);
  EXPECT_EQ(back.weights.at("w").toDoubles(), (std::vector<double>{0.25, -3.5}));
  EXPECT_EQ(back.weights.at("s").getInt(0), 41);
  std::string stem = path.substr(0, path.size() - 5);
  std::remove(path.c_str());
  std::remove((stem + ".weights.safetensors").c_str());
}

TEST(Safetensors, EveryDTypeRoundTrips) {
  TensorMap tensors;
  int i = 0;
  for (DType t : kAllDTypes) {
    HostTensor tensor(t, Shape{2, 3});
    for (int64_t k = 0; k < 6; ++k)
      tensor.setDouble(k, t == DType::I1 ? (k % 2) : double(k * 7 - 11) / (isFloat(t) ? 4 : 1));
    tensors["t" + std::to_string(i++)] = tensor;
  }
  tensors["scalar"] = HostTensor::fromDoubles(DType::F64, Shape{}, {M_PI});
  tensors["empty"] = HostTensor(DType::F32, Shape{0, 5});
  std::string path = tempPath("all.safetensors");
  writeSafetensors(path, tensors);
  TensorMap back = readSafetensors(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto &[name, t] : tensors) {
    const HostTensor &b = back.at(name);
    EXPECT_EQ(b.dtype(), t.dtype()) << name;
    EXPECT_EQ(b.shape(), t.shape()) << name;
    EXPECT_EQ(b.toDoubles(), t.toDoubles()) << name;
  }
  std::remove(path.c_str());
}

TEST(Safetensors, HeaderIsValidAndAligned) {
  TensorMap tensors{{"a", HostTensor::fromDoubles(DType::F32, Shape{3}, {1, 2, 3})}};
  std::string bytes = serializeSafetensors(tensors);
  uint64_t len = 0;
  for (int k = 7; k >= 0; --k)
    len = (len << 8) | uint8_t(bytes[size_t(k)]);
  EXPECT_EQ((8 + len) % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + len + 12);
  EXPECT_NE(bytes.find(R"("a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]})"), std::string::npos);
}

TEST(Safetensors, FailedWriteKeepsTheOldFile) {
  std::string path = tempPath("keep.safetensors");
  TensorMap original{{"a", HostTensor::fromDoubles(DType::F32, Shape{1}, {5})}};
  writeSafetensors(path, original);
  // A directory where the temporary file would go makes the write fail midway.
  std::string blocker = path + ".tmp." + std::to_string(getpid());
  ASSERT_EQ(mkdir(blocker.c_str(), 0700), 0);
  EXPECT_THROW(writeSafetensors(path, {{"b", HostTensor(DType::F32, Shape{4})}}), Error);
  rmdir(blocker.c_str());
  TensorMap back = readSafetensors(path);
  ASSERT_EQ(back.count("a"), 1u);
  EXPECT_EQ(back.at("a").getDouble(0), 5.0);
  std::remove(path.c_str());
}

TEST(DType, HalfAndBFloat16RoundToNearestEven) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00); // rounds up to infinity
  EXPECT_EQ(floatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(floatToHalf(1.0f + 1.0f / 2048), 0x3c00); // tie to even (down)
  EXPECT_EQ(floatToHalf(1.0f + 3.0f / 2048), 0x3c02); // tie to even (up)
  EXPECT_EQ(floatToHalf(5.960464477539063e-08f), 0x0001); // smallest subnormal
  EXPECT_EQ(halfToFloat(0x0001), 5.960464477539063e-08f);
  EXPECT_EQ(halfToFloat(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(NAN))));
  EXPECT_EQ(floatToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(floatToBFloat16(1.0f + 1.0f / 256), 0x3f80); // tie to even (down)
  EXPECT_EQ(floatToBFloat16(1.0f + 3.0f / 256), 0x3f82); // tie to even (up)
  EXPECT_EQ(bfloat16ToFloat(0x4049), 3.140625f);
  EXPECT_TRUE(std::isnan(bfloat16ToFloat(floatToBFloat16(NAN))));
}

TEST(Random, PhiloxKnownAnswer) {
  // Random123's kat_vectors: philox4x32 10 rounds, zero counter and key.
  std::array<uint32_t, 4> w = philox4x32(0, 0);
  EXPECT_EQ(w[0], 0x6627e8d5u);
  EXPECT_EQ(w[1], 0xe169c58du);
  EXPECT_EQ(w[2], 0xbc57ac4cu);
  EXPECT_EQ(w[3], 0x9b00dbd8u);
  double u = uniformAt(0, 0);
  EXPECT_EQ(u, double(0x6627e8d5u >> 8) / 16777216.0);
}

TEST(ArgumentValues, InitializersAreSeededAndInRange) {
  Module m = parseModule(R"(graph @g(%w: f32[1000] param {init = "uniform", low = -0.5, high = 0.25},
    %n: f64[4000] param {init = "normal", mean = 1.0, std = 2.0},
    %c: f32[3] param {init = "constant", value = 0.5}, %s: f32[2] state,
    %tok: i32[500] input {low = 3, high = 7}) -> () {
  return
}
)", "g.kir");
  const Graph &g = *m.graphs[0];
  HostTensor w = defaultArgumentValue(*g.findArgument("w"), 1);
  for (double v : w.toDoubles()) {
    EXPECT_GE(v, -0.5);
    EXPECT_LT(v, 0.25);
  }
  EXPECT_EQ(w.toDoubles(), defaultArgumentValue(*g.findArgument("w"), 1).toDoubles());
  EXPECT_NE(w.toDoubles(), defaultArgumentValue(*g.findArgument("w"), 2).toDoubles());
  std::vector<double> n = defaultArgumentValue(*g.findArgument("n"), 1).toDoubles();
  double mean = 0, var = 0;
  for (double v : n)
    mean += v / double(n.size());
  for (double v : n)
    var += (v - mean) * (v - mean) / double(n.size());
  EXPECT_NEAR(mean, 1.0, 0.1);
  EXPECT_NEAR(std::sqrt(var), 2.0, 0.1);
  EXPECT_EQ(defaultArgumentValue(*g.findArgument("c"), 1).toDoubles(),
            (std::vector<double>{0.5, 0.5, 0.5}));
  EXPECT_EQ(defaultArgumentValue(*g.findArgument("s"), 1).toDoubles(),
            (std::vector<double>{0, 0}));
  std::set<int64_t> tokens;
  HostTensor tok = defaultArgumentValue(*g.findArgument("tok"), 1);
  for (int64_t i = 0; i < tok.numElements(); ++i)
    tokens.insert(tok.getInt(i));
  EXPECT_EQ(tokens, (std::set<int64_t>{3, 4, 5, 6}));
}

TEST(Verifier, BuiltGraphErrorsNameTheNode) {
  Graph g("built");
  Argument *a = g.addArgument("a", TensorType{DType::F32, Shape{4}}, ArgRole::Input);
  Argument *b = g.addArgument("b", TensorType{DType::F32, Shape{8}}, ArgRole::Input);
  g.addNode(OpKind::Neg, {&a->value}, {}, a->value.type);
  Node *add = g.addNode(OpKind::Add, {&a->value, &b->value}, {}, a->value.type);
  g.addResult(add->result());
  try {
    verifyGraph(g);
    FAIL() << "verifyGraph accepted mismatched operands";
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(),
                 "@built: %1 (add): error: add expects operands of equal type, got f32[4] and f32[8]");
  }
}

TEST(Verifier, ArgumentNamesMustNotBeNumbers) {
  Graph g("g");
  g.addArgument("0", TensorType{DType::F32, Shape{4}}, ArgRole::Input);
  try {
    verifyGraph(g);
    FAIL();
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("not a plain number"), std::string::npos) << e.what();
  }
}

TEST(Attribute, FloatsPrintShortestAndReadBack) {
  for (double v : {0.1, 1.0, -2.5, 1e-8, 3.0e20, 1.0 / 3.0, 0.02, 123456789.0, 5e-324}) {
    std::string s = formatFloat(v);
    EXPECT_EQ(std::strtod(s.c_str(), nullptr), v) << s;
    EXPECT_NE(s.find_first_of(".e"), std::string::npos) << s;
  }
  EXPECT_EQ(formatFloat(0.1), "0.1");
  EXPECT_EQ(formatFloat(2.0), "2.0");
  EXPECT_EQ(formatFloat(-INFINITY), "-inf");
}

} // namespace
} // namespace kiln
