// Replays, through the fuzz targets' own bodies (tests/fuzz/FuzzTargets.h),
// every seed of tests/fuzz/corpus/FORMAT/ and every input a fuzzer found
// (tests/fuzz/regressions/FORMAT/, one file per crash, named after the bug).
// Each must load and round-trip, or be rejected with kiln::Error; a crash
// fails the test binary, a sanitizer build reports it.
#include "tests/fuzz/FuzzTargets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>

namespace kiln {
namespace {

namespace fs = std::filesystem;

using Target = std::function<std::string(const std::string &)>;

/// The files of `tests/fuzz/FOLDER/FORMAT`, sorted (a missing folder has none).
std::vector<fs::path> filesIn(const std::string &folder, const std::string &format) {
  fs::path dir = fs::path(KILN_TEST_DATA_DIR) / "fuzz" / folder / format;
  std::vector<fs::path> files;
  if (fs::is_directory(dir))
    for (const auto &entry : fs::directory_iterator(dir))
      if (entry.is_regular_file() && entry.path().filename().string()[0] != '.')
        files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

void replay(const std::string &folder, const std::string &format, const Target &target) {
  for (const fs::path &file : filesIn(folder, format)) {
    SCOPED_TRACE(file.string());
    EXPECT_EQ(target(readFile(file.string())), "");
  }
}

const std::pair<const char *, Target> kTargets[] = {
    {"kir", fuzz::fuzzKir},
    {"json", fuzz::fuzzJson},
    {"safetensors", fuzz::fuzzSafetensors},
    {"npy", fuzz::fuzzNpy},
};

TEST(FuzzRegression, SeedCorporaLoadAndRoundTrip) {
  for (const auto &[format, target] : kTargets) {
    std::vector<fs::path> seeds = filesIn("corpus", format);
    EXPECT_GE(seeds.size(), 5u) << "tests/fuzz/corpus/" << format << " lost its seeds";
    replay("corpus", format, target);
  }
}

TEST(FuzzRegression, Kir) { replay("regressions", "kir", fuzz::fuzzKir); }
TEST(FuzzRegression, Json) { replay("regressions", "json", fuzz::fuzzJson); }
TEST(FuzzRegression, Safetensors) { replay("regressions", "safetensors", fuzz::fuzzSafetensors); }
TEST(FuzzRegression, Npy) { replay("regressions", "npy", fuzz::fuzzNpy); }

// Inputs too large to keep as files: nestings deep enough to overflow the
// stack (found by reading the code: libFuzzer's length limit, set by the
// largest seed, keeps it from writing them).

std::string repeat(const std::string &s, int n) {
  std::string out;
  out.reserve(s.size() * size_t(n));
  for (int i = 0; i < n; ++i)
    out += s;
  return out;
}

/// The message `load` throws, or "no error".
template <typename Load> std::string errorOf(Load load) {
  try {
    load();
  } catch (const Error &e) {
    return e.what();
  }
  return "no error";
}

// BUG deep-fusion-nesting (ir/Parser.cpp): the parser recursed into each nested
// fusion body before the verifier could say "fusions do not nest"; 200000
// levels overflowed the stack (SIGSEGV). Fails until the parser refuses a
// fusion inside a fusion body.
TEST(FuzzRegression, DeepFusionNestingKir) {
  int depth = 200000;
  std::string text = "graph @g(%x: f32[] input) -> (f32[]) {\n"
                     "  %0 = fusion %x {kind = \"loop\"} : f32[] {\n" +
                     repeat("%0 = fusion %arg0 {kind = \"loop\"} : f32[] {\n", depth - 1) +
                     "%1 = neg %arg0 : f32[]\nyield %1\n}\n" + repeat("yield %0\n}\n", depth - 1) +
                     "  return %0\n}\n";
  EXPECT_EQ(fuzz::fuzzKir(text), "");
  EXPECT_EQ(errorOf([&] { parseModule(text, "deep.kir"); }),
            "deep.kir:3:6: error: fusions do not nest");
}

// BUG deep-json-nesting (ir/Json.cpp): nlohmann copies and prints values
// recursively; an array nested a million levels deep as "format" (printed in
// the message) or as an attribute (copied) overflowed the stack. Fails until
// the reader refuses JSON nested deeper than 64 levels.
TEST(FuzzRegression, DeepJsonNesting) {
  int depth = 1000000;
  std::string deep = repeat("[", depth) + repeat("]", depth);
  std::string inFormat = "{\"format\": " + deep + "}";
  std::string inAttr =
      R"({"format": "kiln.graph", "version": 1, "graphs": [{"name": "g", "arguments": [],
  "nodes": [{"op": "constant", "attrs": {"value": )" +
      deep + R"(}, "type": {"dtype": "f32", "shape": []}}], "results": [{"value": "%0"}]}]})";
  EXPECT_EQ(fuzz::fuzzJson(inFormat), "");
  EXPECT_EQ(fuzz::fuzzJson(inAttr), "");
  EXPECT_EQ(errorOf([&] { parseJsonModule(inFormat, "deep.json", ""); }),
            "deep.json:1:75: error: JSON nested deeper than 64 levels");
  EXPECT_EQ(errorOf([&] { parseJsonModule(inAttr, "deep.json", ""); }),
            "deep.json:2:109: error: JSON nested deeper than 64 levels");
}

// BUG deep-safetensors-header (runtime/Safetensors.cpp): the same in a
// safetensors header: a deep "dtype" is printed in the message, a deep
// "shape" too. Fails until the reader refuses headers nested deeper than 64.
TEST(FuzzRegression, DeepSafetensorsHeader) {
  int depth = 1000000;
  std::string deep = repeat("[", depth) + repeat("]", depth);
  for (const std::string &header :
       {R"({"x": {"dtype": )" + deep + R"(, "shape": [], "data_offsets": [0, 0]}})",
        R"({"x": {"dtype": "F32", "shape": [)" + deep + R"(], "data_offsets": [0, 0]}})"}) {
    std::string file(8, '\0');
    for (int i = 0; i < 8; ++i)
      file[size_t(i)] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
    file += header;
    EXPECT_EQ(fuzz::fuzzSafetensors(file), "");
    EXPECT_EQ(errorOf([&] { parseSafetensors(file, "deep.safetensors"); }),
              "deep.safetensors: error: safetensors header nested deeper than 64 levels");
  }
}

/// The targets themselves must be able to fail: a finding is reported, not swallowed.
TEST(FuzzRegression, TargetsReportBrokenInvariants) {
  EXPECT_EQ(fuzz::fuzzKir("graph @g("), "");  // rejected with kiln::Error: fine
  EXPECT_EQ(fuzz::fuzzNpy("not npy"), "");
  HostTensor bad(DType::I1, Shape{1});
  bad.dataAs<uint8_t>()[0] = 2;
  EXPECT_NE(fuzz::detail::checkTensor("b", bad), "");
  EXPECT_NE(fuzz::detail::guarded([]() -> std::string { throw std::out_of_range("boom"); }), "");
}

} // namespace
} // namespace kiln
