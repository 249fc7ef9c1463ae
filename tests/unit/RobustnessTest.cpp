// No input a user can write crashes Kiln: mutated .kir text, JSON and
// safetensors bytes either load or raise kiln::Error; what loads prints back
// identically and runs on the interpreter without crashing.
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Json.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <gtest/gtest.h>

#include <random>

namespace kiln {
namespace {

const char *kDictionary[] = {
    "%", "@", "{", "}", "[", "]", "(", ")", ",", ":", "=", "->", "//", "\"", "-", "0", "1",
    "-1", "99999999999999999999", "1e308", "nan", "inf", "f32", "i1", "i64", "bf16", "[]",
    "update", "return", "graph", "param", "state", "input", "dims", "axes", "perm", "value",
    "{init = \"normal\", std = 2.0}", "1099511627776", "true", "\n", "\x00", "\xff", "// -----",
};

/// Deterministic structural mutations: byte flips, token insertions,
/// deletions, duplications, truncations.
std::string mutate(const std::string &input, std::mt19937_64 &rng) {
  std::string s = input;
  int edits = 1 + int(rng() % 4);
  for (int e = 0; e < edits && !s.empty(); ++e) {
    size_t pos = rng() % s.size();
    switch (rng() % 5) {
    case 0: s[pos] = char(rng() % 256); break;
    case 1: s.insert(pos, kDictionary[rng() % (sizeof kDictionary / sizeof *kDictionary)]); break;
    case 2: s.erase(pos, 1 + rng() % 16); break;
    case 3: s.insert(pos, s.substr(rng() % s.size(), 1 + rng() % 32)); break;
    case 4: s.resize(pos); break;
    }
  }
  return s;
}

bool smallEnoughToRun(const Graph &g) {
  int64_t total = 0;
  for (const auto &a : g.arguments())
    total += a->value.type.numElements();
  for (const auto &n : g.nodes())
    total += n->type().numElements() * (1 + int64_t(n->operands().size()));
  return total < 200000;
}

/// Loaded graphs must print back identically and run (or fail) cleanly.
void exercise(Module &module) {
  std::string printed = printModule(module);
  EXPECT_EQ(printModule(parseModule(printed, "reprinted.kir")), printed);
  for (const auto &g : module.graphs) {
    if (!smallEnoughToRun(*g))
      continue;
    TensorMap args;
    for (const auto &a : g->arguments())
      args[a->name] = defaultArgumentValue(*a, 7);
    interpret(*g, args, Precision::Native);
  }
}

template <typename Load>
void fuzz(const std::vector<std::string> &seeds, int iterations, Load load) {
  std::mt19937_64 rng(12345);
  int loaded = 0;
  for (int i = 0; i < iterations; ++i) {
    std::string input = mutate(seeds[size_t(i) % seeds.size()], rng);
    try {
      Module m = load(input);
      ++loaded;
      exercise(m);
    } catch (const Error &) {
      // A located user error is the expected outcome for most mutations.
    }
  }
  // Some mutations keep the input valid: make sure the valid path ran too.
  EXPECT_GT(loaded, 0);
}

std::vector<std::string> seedGraphs() {
  std::vector<std::string> seeds;
  for (const char *name : {"add", "conv2d-strided-grouped", "gather", "scatter_add", "pad",
                           "max_pool2d-padded.grad", "matmul-batched-tatb", "select", "concat",
                           "broadcast-size1", "cast-f32-to-i32", "reduce_max", "slice", "argmax",
                           "avg_pool2d_grad", "iota"})
    seeds.push_back(readFile(std::string(KILN_TEST_DATA_DIR) + "/conformance/" + name + ".kir"));
  return seeds;
}

TEST(Robustness, MutatedKirText) {
  fuzz(seedGraphs(), 4000, [](const std::string &text) { return parseModule(text, "fuzz.kir"); });
}

TEST(Robustness, MutatedJson) {
  std::vector<std::string> seeds;
  for (const std::string &text : seedGraphs())
    seeds.push_back(printJsonModule(parseModule(text, "seed.kir")));
  fuzz(seeds, 3000, [](const std::string &text) { return parseJsonModule(text, "fuzz.json", ""); });
}

TEST(Robustness, MutatedSafetensors) {
  TensorMap tensors;
  tensors["a"] = HostTensor::fromDoubles(DType::F32, Shape{2, 3}, {1, 2, 3, 4, 5, 6});
  tensors["b"] = HostTensor::fromDoubles(DType::I64, Shape{2}, {7, 8});
  tensors["c"] = HostTensor::fromDoubles(DType::I1, Shape{3}, {1, 0, 1});
  std::string seed = serializeSafetensors(tensors);
  std::mt19937_64 rng(99);
  int parsed = 0;
  for (int i = 0; i < 5000; ++i) {
    try {
      TensorMap back = parseSafetensors(mutate(seed, rng), "fuzz.safetensors");
      ++parsed;
      for (const auto &[name, t] : back)
        EXPECT_EQ(t.byteSize(), size_t(t.numElements()) * dtypeSize(t.dtype()));
    } catch (const Error &) {
    }
  }
  EXPECT_GT(parsed, 0);
}

} // namespace
} // namespace kiln
