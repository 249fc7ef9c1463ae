// The CPU backend (MLIR -> LLVM JIT kernels + the runtime's library kernels)
// against the reference interpreter and the conformance cases.
#ifdef KILN_HAVE_CPU_BACKEND

#include "compiler/CpuBackend.h"
#include "compiler/TrainingStep.h"
#include "examples/models/Models.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "passes/PassManager.h"
#include "passes/memory/MemoryChecker.h"
#include "runtime/Safetensors.h"
#include "runtime/cpu/Executable.h"
#include "runtime/cpu/Threads.h"
#include "tests/unit/ExpectClose.h"
#include "tests/unit/TestHelpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <cmath>
#include <set>

namespace kiln {
namespace {

const std::string kDir = std::string(KILN_TEST_DATA_DIR) + "/conformance/";

/// The default pipeline, then the CPU backend; arguments set by name.
std::shared_ptr<CpuCompiled> compileAndSet(Graph &graph, const TensorMap &args) {
  runPasses(graph, parsePassPipeline(defaultPipeline()), verifyEachOptions());
  std::shared_ptr<CpuCompiled> compiled = compileForCpu(graph);
  for (const auto &[name, value] : args)
    if (graph.findArgument(name))
      compiled->executable->setArgument(name, value);
  return compiled;
}

void expectClose(const HostTensor &got, const HostTensor &want, double rel, const std::string &what) {
  expectTensorClose(got, want, rel, what, "cpu");
}

struct Case {
  std::string name, op;
  bool grad;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const auto &e : nlohmann::json::parse(readFile(kDir + "index.json")))
    out.push_back({e.at("case"), e.at("op"), e.at("grad")});
  return out;
}

// Bounds: f32 arithmetic and data movement 1e-5 relative (sums accumulate in
// f64, as the interpreter's); the polynomial approximations of exp, log,
// tanh, erf and the libm-free sin/cos/pow are held to 1e-5 absolute + relative.
class CpuConformance : public testing::TestWithParam<Case> {};

TEST_P(CpuConformance, MatchesPyTorchFloat64) {
  const Case &c = GetParam();
  Module m = parseModule(readFile(kDir + c.name + ".kir"), c.name + ".kir");
  TensorMap inputs = readSafetensors(kDir + c.name + ".inputs.safetensors");
  HostTensor want = readSafetensors(kDir + c.name + ".expected.safetensors").at("out0");
  auto compiled = compileAndSet(*m.graphs[0], inputs);
  compiled->executable->run();
  expectClose(compiled->executable->result(0), want, 1e-5, c.name);
}

class CpuGradientConformance : public testing::TestWithParam<Case> {};

TEST_P(CpuGradientConformance, MatchesTheInterpreterAndPyTorch) {
  const Case &c = GetParam();
  Module m = parseModule(readFile(kDir + c.name + ".grad.kir"), c.name + ".grad.kir");
  Graph &g = *m.graphs[0];
  runPasses(g, parsePassPipeline("autodiff"), verifyEachOptions());
  TensorMap inputs = readSafetensors(kDir + c.name + ".grad.inputs.safetensors");
  TensorMap expected = readSafetensors(kDir + c.name + ".expected.safetensors");
  InterpreterResult reference = interpret(g, inputs, Precision::Native);
  std::unique_ptr<Graph> copy = cloneGraph(g);
  auto compiled = compileAndSet(*copy, inputs);
  compiled->executable->run();
  for (size_t i = 0; i < g.results().size(); ++i) {
    expectClose(compiled->executable->result(i), reference.results[i], 1e-5, g.resultName(i));
    bool gradient = g.resultName(i).rfind("grad.", 0) == 0;
    if (gradient) // and PyTorch's float64 gradients, to f32 accuracy
      expectClose(compiled->executable->result(i), expected.at(g.resultName(i)), 1e-4, g.resultName(i));
  }
}

std::vector<Case> gradientCases() {
  std::vector<Case> out;
  for (const Case &c : cases())
    if (c.grad)
      out.push_back(c);
  return out;
}

std::string caseName(const testing::TestParamInfo<Case> &info) {
  std::string n = info.param.name;
  for (char &ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch)))
      ch = '_';
  return n;
}

void PrintTo(const Case &c, std::ostream *os) { *os << c.name; }

INSTANTIATE_TEST_SUITE_P(Conformance, CpuConformance, testing::ValuesIn(cases()), caseName);
INSTANTIATE_TEST_SUITE_P(Conformance, CpuGradientConformance, testing::ValuesIn(gradientCases()),
                         caseName);


class CpuTrainingSteps : public testing::TestWithParam<std::string> {};

// Momentum SGD: an update linear in the gradient, so f32 differences between
// the backends stay f32-sized (Adam's m / sqrt(v) turns a near-zero gradient's
// last bits into a full-sized step of either sign).
TEST_P(CpuTrainingSteps, FollowTheInterpreterForThreeSteps) {
  std::unique_ptr<Graph> step = smallTrainingStep(GetParam(), OptimizerKind::Momentum);
  TensorMap args;
  for (const auto &a : step->arguments())
    args[a->name] = defaultArgumentValue(*a, 3);
  std::unique_ptr<Graph> compiledGraph = cloneGraph(*step);
  auto compiled = compileAndSet(*compiledGraph, args);
  cpu::Executable &exe = *compiled->executable;
  for (int s = 0; s < 3; ++s) {
    InterpreterResult r = interpret(*step, args, Precision::Native);
    for (auto &[name, value] : r.updated)
      args[name] = value;
    exe.run();
    expectClose(exe.result(0), r.results[0], 1e-4, "loss at step " + std::to_string(s));
    for (const auto &[name, value] : r.updated)
      expectClose(exe.argument(name), value, 1e-4, name + " at step " + std::to_string(s));
  }
}

INSTANTIATE_TEST_SUITE_P(Examples, CpuTrainingSteps, testing::Values("mlp", "cnn", "gpt"));

// Kernels whose outermost loop the runtime splits over threads: row
// reductions (softmax), a sum over outer axes, an expensive value broadcast
// (materialized once), argmax, index maps (transpose, reshape, slice, pad,
// concat) and an in-place update. Each runs split (iterations > 1), matches
// the interpreter, and gives the same bits on 1, 2 and 3 threads.
const char *kSplitKernels = R"(
graph @split(%x: f32[64,8,256] input, %b: f32[256] input, %y: f32[256,64] input,
             %w: f32[64,8,256] param) -> (f32[64,8,256], f32[256], f32[64,8,256], i32[64,8],
                                         f32[64,4,512], f32[64,8,256]) {
  %0 = reduce_max %x {axes = [2]} : f32[64,8]
  %1 = broadcast %0 {dims = [0, 1]} : f32[64,8,256]
  %2 = sub %x, %1 : f32[64,8,256]
  %3 = exp %2 : f32[64,8,256]
  %4 = reduce_sum %3 {axes = [2]} : f32[64,8]
  %5 = broadcast %4 {dims = [0, 1]} : f32[64,8,256]
  %6 = div %3, %5 : f32[64,8,256]
  %7 = reduce_sum %x {axes = [0, 1]} : f32[256]
  %8 = tanh %b : f32[256]
  %9 = broadcast %8 {dims = [2]} : f32[64,8,256]
  %10 = mul %x, %9 : f32[64,8,256]
  %11 = argmax %x {axis = 2} : i32[64,8]
  %12 = transpose %y {perm = [1, 0]} : f32[64,256]
  %13 = reshape %12 : f32[64,4,64]
  %14 = slice %x {start = [0, 1, 0], limit = [64, 8, 256], stride = [1, 2, 1]} : f32[64,4,256]
  %15 = pad %13 {low = [0, 0, 1], high = [0, 0, 0]} : f32[64,4,65]
  %16 = slice %15 {start = [0, 0, 0], limit = [64, 4, 64], stride = [1, 1, 1]} : f32[64,4,64]
  %17 = concat %14, %13, %16, %13, %16 {axis = 2} : f32[64,4,512]
  %18 = mul %w, %x : f32[64,8,256]
  %19 = add %18, %w : f32[64,8,256]
  update %w, %19
  return %6, %7, %10, %11, %17, %19
}
)";

TEST(CpuBackend, SplitKernelsGiveTheSameBitsOnAnyThreadCount) {
  Module module = parseModule(kSplitKernels, "split.kir");
  const Graph &graph = *module.graphs[0];
  TensorMap args;
  for (const auto &a : graph.arguments())
    args[a->name] = defaultArgumentValue(*a, 11);
  InterpreterResult want = interpret(graph, args, Precision::Native);
  std::unique_ptr<Graph> planned = cloneGraph(graph);
  auto compiled = compileAndSet(*planned, args);
  cpu::Executable &exe = *compiled->executable;
  size_t split = 0;
  for (const Step &step : exe.program().steps)
    split += step.kind == StepKind::Kernel && step.iterations > 1;
  EXPECT_GE(split, 4u) << "kernels the runtime may split";

  int saved = cpu::numThreads();
  std::vector<std::string> bits;
  for (int threads : {1, 2, 3}) {
    cpu::setNumThreads(threads);
    exe.setArgument("w", args.at("w"));
    exe.run();
    std::string all;
    for (size_t i = 0; i < want.results.size(); ++i) {
      HostTensor r = exe.result(i);
      expectClose(r, want.results[i], 1e-5, "result " + std::to_string(i) + " on " + std::to_string(threads));
      all.append(static_cast<const char *>(r.data()), r.byteSize());
    }
    HostTensor w = exe.argument("w");
    expectClose(w, want.updated.at("w"), 1e-5, "w");
    all.append(static_cast<const char *>(w.data()), w.byteSize());
    bits.push_back(all);
  }
  cpu::setNumThreads(saved);
  EXPECT_EQ(bits[0], bits[1]);
  EXPECT_EQ(bits[0], bits[2]);
}

// A multi-output kernel whose first result takes its operand's slice while
// another result, of another shape (so another loop nest), still reads the
// operand. The memory checker refuses this plan today (the operand has a
// non-elementwise reader), but the kernel must be right whatever the plan:
// it may not overwrite the operand before that read.
const char *kInPlaceSiblings = R"(
graph @siblings(%x: f32[64,256] input) -> (f32[256,64], f32[64,256]) {
  %0 = neg %x {buffer = arena[0:65536]} : f32[64,256]
  %1:2 = fusion %0 {kind = "loop", buffer = [arena[0:65536], arena[65536:131072]]} : f32[64,256], f32[256,64] {
    %0 = transpose %arg0 {perm = [1, 0]} : f32[256,64]
    %1 = exp %arg0 : f32[64,256]
    yield %1, %0
  }
  return %1#1, %1#0
}
)";

TEST(CpuBackend, MultiOutputKernelsReadOperandsBeforeOverwritingThem) {
  Module module = parseModule(kInPlaceSiblings, "siblings.kir");
  const Graph &graph = *module.graphs[0];
  ASSERT_NE(checkMemoryPlan(graph), "");
  TensorMap args{{"x", defaultArgumentValue(*graph.arguments()[0], 4)}};
  InterpreterResult want = interpret(graph, args, Precision::Native);
  std::unique_ptr<CpuCompiled> compiled = compileForCpu(graph);
  compiled->executable->setArgument("x", args.at("x"));
  compiled->executable->run();
  for (size_t i = 0; i < want.results.size(); ++i)
    expectClose(compiled->executable->result(i), want.results[i], 1e-6, "result " + std::to_string(i));
}

// The kernel cache: a second compile of the same kernels loads them from the
// cache and runs them the same; a damaged cache file is compiled again.
TEST(CpuBackend, KernelCacheReloadsTheSameKernels) {
  std::string dir = testing::TempDir() + "kiln-kernel-cache-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  const char *saved = std::getenv("KILN_CACHE_DIR");
  std::string savedValue = saved ? saved : "";
  ::setenv("KILN_CACHE_DIR", dir.c_str(), 1);
  Module module = parseModule(kSplitKernels, "split.kir");
  TensorMap args;
  for (const auto &a : module.graphs[0]->arguments())
    args[a->name] = defaultArgumentValue(*a, 12);
  std::vector<std::string> bits;
  std::vector<bool> cached;
  for (int run = 0; run < 3; ++run) {
    if (run == 2) // damage the one cache file
      for (const auto &entry : std::filesystem::recursive_directory_iterator(dir))
        if (entry.is_regular_file())
          std::ofstream(entry.path(), std::ios::binary | std::ios::trunc) << "kiln-cpu-objects 1\nbroken";
    std::unique_ptr<Graph> planned = cloneGraph(*module.graphs[0]);
    auto compiled = compileAndSet(*planned, args);
    cached.push_back(compiled->kernels->fromCache());
    compiled->executable->run();
    HostTensor r = compiled->executable->result(0);
    bits.emplace_back(static_cast<const char *>(r.data()), r.byteSize());
  }
  if (saved)
    ::setenv("KILN_CACHE_DIR", savedValue.c_str(), 1);
  else
    ::unsetenv("KILN_CACHE_DIR");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(cached, (std::vector<bool>{false, true, false}));
  EXPECT_EQ(bits[0], bits[1]);
  EXPECT_EQ(bits[0], bits[2]);
}

// The cache folder is trimmed after a write, least recently used files first:
// an old file goes, the program just compiled stays and is found next time.
TEST(CpuBackend, KernelCacheDropsTheLeastRecentlyUsedFiles) {
  std::string dir = testing::TempDir() + "kiln-kernel-cache-lru-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/cpu");
  std::string old = dir + "/cpu/0123456789abcdef0123456789abcdef.objects";
  std::ofstream(old, std::ios::binary) << std::string(100000, 'x');
  std::filesystem::last_write_time(old, std::filesystem::file_time_type::clock::now() - std::chrono::hours(1));
  const char *saved = std::getenv("KILN_CACHE_DIR");
  std::string savedValue = saved ? saved : "";
  ::setenv("KILN_CACHE_DIR", dir.c_str(), 1);
  ::setenv("KILN_CACHE_MAX_BYTES", "60000", 1); // less than both files, more than the new one
  Module module = parseModule(kInPlaceSiblings, "siblings.kir");
  std::vector<bool> cached;
  for (int run = 0; run < 2; ++run)
    cached.push_back(compileForCpu(*module.graphs[0])->kernels->fromCache());
  ::unsetenv("KILN_CACHE_MAX_BYTES");
  if (saved)
    ::setenv("KILN_CACHE_DIR", savedValue.c_str(), 1);
  else
    ::unsetenv("KILN_CACHE_DIR");
  size_t files = 0;
  for (const auto &entry : std::filesystem::directory_iterator(dir + "/cpu"))
    files += entry.is_regular_file();
  bool oldGone = !std::filesystem::exists(old);
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(oldGone);
  EXPECT_EQ(files, 1u);
  EXPECT_EQ(cached, (std::vector<bool>{false, true}));
}

TEST(CpuBackend, RunsTheSameTwiceBitForBit) {
  std::unique_ptr<Graph> step = smallTrainingStep("mlp", OptimizerKind::Momentum);
  TensorMap args;
  for (const auto &a : step->arguments())
    args[a->name] = defaultArgumentValue(*a, 5);
  std::vector<std::string> runs;
  for (int r = 0; r < 2; ++r) {
    std::unique_ptr<Graph> copy = cloneGraph(*step);
    auto compiled = compileAndSet(*copy, args);
    for (int s = 0; s < 3; ++s)
      compiled->executable->run();
    HostTensor w = compiled->executable->argument("fc1.weight");
    runs.emplace_back(static_cast<const char *>(w.data()), w.byteSize());
  }
  EXPECT_EQ(runs[0], runs[1]);
}

} // namespace
} // namespace kiln

#endif // KILN_HAVE_CPU_BACKEND
