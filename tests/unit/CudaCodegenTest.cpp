// The CUDA code generator: every kernel generated for every conformance case
// (forward and gradient graphs, after the default pipeline) and for the three
// example training steps compiles with NVRTC for sm_90 and sm_80 (no GPU
// needed), plus checks of the generated source. Running the kernels needs a
// GPU (CTest label `gpu`, not here).
#ifdef KILN_HAVE_CUDA

#include "codegen/cuda/CudaCodegen.h"
#include "codegen/cuda/Nvrtc.h"
#include "compiler/CudaBackend.h"
#include "compiler/TrainingStep.h"
#include "ir/Graph.h"
#include "ir/Parser.h"
#include "passes/PassManager.h"
#include "runtime/Error.h"
#include "tests/unit/CudaTestGraphs.h"
#include "tests/unit/TestHelpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <filesystem>
#include <iostream>
#include <regex>

namespace kiln {
namespace {

const std::string kDir = std::string(KILN_TEST_DATA_DIR) + "/conformance/";

NvrtcOptions options(const std::string &arch) {
  NvrtcOptions o;
  o.arch = arch;
  o.cacheDir = KILN_TEST_CUDA_CACHE_DIR;
  return o;
}

CudaProgram lowerPlanned(Graph &graph) {
  runPasses(graph, parsePassPipeline(defaultPipeline()), verifyEachOptions());
  return lowerForCuda(graph);
}

/// Every module of `program` compiles for sm_90 (cubin and PTX) and sm_80,
/// and defines each kernel that a step launches.
void expectCompiles(const CudaProgram &program, const std::string &what) {
  ASSERT_EQ(program.launches.size(), program.program.steps.size()) << what;
  size_t launched = 0;
  for (size_t s = 0; s < program.launches.size(); ++s) {
    const CudaLaunch &launch = program.launches[s];
    bool needsKernel = program.program.steps[s].kind != StepKind::Matmul && program.program.steps[s].kind != StepKind::Copy;
    EXPECT_EQ(!launch.kernel.empty(), needsKernel) << what << " step " << program.program.steps[s].name;
    if (launch.kernel.empty())
      continue;
    ++launched;
    EXPECT_GE(launch.grid, 1) << what;
    EXPECT_GE(launch.block, 32) << what;
    EXPECT_EQ(launch.block % 32, 0) << what;
    bool defined = false;
    for (const CudaModule &m : program.modules)
      for (const std::string &k : m.kernels)
        defined = defined || k == launch.kernel;
    EXPECT_TRUE(defined) << what << ": " << launch.kernel;
  }
  EXPECT_EQ(launched, program.strategies.size()) << what;
  for (const char *arch : {"sm_90", "sm_80"}) {
    std::vector<NvrtcOutput> out;
    try {
      out = compileCudaModules(program.modules, options(arch));
    } catch (const Error &e) {
      FAIL() << what << " for " << arch << ": " << e.what();
    }
    ASSERT_EQ(out.size(), program.modules.size());
    for (size_t m = 0; m < out.size(); ++m) {
      EXPECT_FALSE(out[m].cubin.empty()) << what << " " << program.modules[m].name << " " << arch;
      for (const std::string &k : program.modules[m].kernels)
        EXPECT_NE(out[m].ptx.find(".entry " + k + "("), std::string::npos) << what << ": " << k << " not in the PTX";
    }
  }
}

struct Case {
  std::string name;
  bool grad;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const auto &e : nlohmann::json::parse(readFile(kDir + "index.json"))) {
    out.push_back({e.at("case"), false});
    if (e.at("grad"))
      out.push_back({e.at("case"), true});
  }
  return out;
}

std::string caseName(const testing::TestParamInfo<Case> &info) {
  std::string n = (info.param.grad ? "grad_" : "fwd_") + info.param.name;
  for (char &ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch)))
      ch = '_';
  return n;
}

void PrintTo(const Case &c, std::ostream *os) { *os << c.name << (c.grad ? ".grad" : ""); }

class CudaConformanceCompiles : public testing::TestWithParam<Case> {};

TEST_P(CudaConformanceCompiles, ForSm90AndSm80) {
  const Case &c = GetParam();
  std::string file = c.name + (c.grad ? ".grad.kir" : ".kir");
  Module m = parseModule(readFile(kDir + file), file);
  Graph &g = *m.graphs[0];
  if (c.grad)
    runPasses(g, parsePassPipeline("autodiff"), verifyEachOptions());
  expectCompiles(lowerPlanned(g), file);
}

INSTANTIATE_TEST_SUITE_P(Conformance, CudaConformanceCompiles, testing::ValuesIn(cases()), caseName);

struct Example {
  std::string model;
  OptimizerKind optimizer;
};

void PrintTo(const Example &e, std::ostream *os) { *os << e.model << " " << optimizerName(e.optimizer); }

class CudaTrainingStepCompiles : public testing::TestWithParam<Example> {};

// The example graphs as shipped (examples/*.kir, full size), as
// `kiln compile --train` builds them.
TEST_P(CudaTrainingStepCompiles, ForSm90AndSm80) {
  const Example &e = GetParam();
  std::string file = std::string(KILN_SOURCE_DIR) + "/examples/" + e.model + ".kir";
  Module m = parseModule(readFile(file), file);
  OptimizerOptions o;
  o.kind = e.optimizer;
  std::unique_ptr<Graph> step = buildTrainingStep(*m.graphs[0], o);
  CudaProgram program = lowerPlanned(*step);
  EXPECT_GT(program.modules.size(), 0u);
  expectCompiles(program, e.model);
}

INSTANTIATE_TEST_SUITE_P(Examples, CudaTrainingStepCompiles,
                         testing::Values(Example{"mlp", OptimizerKind::AdamW}, Example{"mlp", OptimizerKind::Momentum},
                                         Example{"cnn", OptimizerKind::AdamW}, Example{"cnn", OptimizerKind::Momentum},
                                         Example{"gpt", OptimizerKind::AdamW}, Example{"gpt", OptimizerKind::Momentum}),
                         [](const testing::TestParamInfo<Example> &info) {
                           return info.param.model + "_" + optimizerName(info.param.optimizer);
                         });

/// The one kernel generated for a single-graph module text.
CudaKernel onlyKernel(const std::string &text, std::string &strategy) {
  Module m = parseModule(text, "test.kir");
  CudaProgram p = lowerPlanned(*m.graphs[0]);
  std::string source;
  size_t kernels = 0;
  for (const CudaModule &mod : p.modules)
    kernels += mod.kernels.size(), source = mod.source.substr(cudaPreamble().size());
  EXPECT_EQ(kernels, 1u) << source;
  strategy = p.strategies.empty() ? "" : p.strategies[0];
  CudaKernel k;
  k.source = source;
  for (const CudaLaunch &l : p.launches)
    if (!l.kernel.empty())
      k.launch = l;
  k.strategy = strategy;
  return k;
}

TEST(CudaCodegen, SoftmaxRowsAreOneBlockPerRowWithWarpShuffles) {
  std::string strategy;
  CudaKernel k = onlyKernel(R"(
graph @softmax(%x: f32[64,1000] input) -> (f32[64,1000]) {
  %0 = reduce_max %x {axes = [1]} : f32[64]
  %1 = broadcast %0 {dims = [0]} : f32[64,1000]
  %2 = sub %x, %1 : f32[64,1000]
  %3 = exp %2 : f32[64,1000]
  %4 = reduce_sum %3 {axes = [1]} : f32[64]
  %5 = broadcast %4 {dims = [0]} : f32[64,1000]
  %6 = div %3, %5 : f32[64,1000]
  return %6
}
)", strategy);
  EXPECT_EQ(strategy, "row") << k.source;
  if (getenv("KILN_PRINT_CUDA"))
    std::cout << k.source;
  EXPECT_EQ(k.launch.grid, 64);         // one block per row
  EXPECT_EQ(k.launch.block, 256);
  EXPECT_NE(k.source.find("row = blockIdx.x"), std::string::npos) << k.source;
  EXPECT_NE(k.source.find("kiln_block_reduce(acc"), std::string::npos) << k.source;
  EXPECT_NE(k.source.find("KilnMax()"), std::string::npos) << k.source;
  EXPECT_NE(k.source.find("KilnSum()"), std::string::npos) << k.source;
  std::regex atomics("atomic[A-Z]"); // atomicAdd, atomicMax, ...
  EXPECT_FALSE(std::regex_search(k.source, atomics)) << k.source;
  // The preamble's block reduction is warp shuffles, then shared memory.
  EXPECT_NE(cudaPreamble().find("__shfl_xor_sync"), std::string::npos);
  EXPECT_FALSE(std::regex_search(cudaPreamble(), atomics));
  // The f32 sum accumulates in double, as the interpreter's.
  EXPECT_NE(k.source.find("double acc"), std::string::npos) << k.source;
  // Two block reductions (max, then sum), and the row maximum is hoisted out
  // of the loop that writes the row: exactly one kiln_block_reduce per reduction.
  std::regex reduce("kiln_block_reduce");
  EXPECT_EQ(std::distance(std::sregex_iterator(k.source.begin(), k.source.end(), reduce), std::sregex_iterator()), 2);
}

TEST(CudaCodegen, ColumnSumsAreOneThreadPerOutput) {
  std::string strategy;
  CudaKernel k = onlyKernel(R"(
graph @bias_grad(%x: f32[128,512] input) -> (f32[512]) {
  %0 = reduce_sum %x {axes = [0]} : f32[512]
  return %0
}
)", strategy);
  EXPECT_EQ(strategy, "loop") << k.source;
  EXPECT_EQ(k.launch.block, 256);
  EXPECT_EQ(k.launch.grid, 1); // 512 outputs, 4 per thread (float4 stores)
  EXPECT_NE(k.source.find("reinterpret_cast<float4*>(r0)[q]"), std::string::npos) << k.source;
  EXPECT_EQ(k.source.find("kiln_block_reduce"), std::string::npos) << k.source;
  EXPECT_NE(k.source.find("< 128; ++k"), std::string::npos) << k.source; // the serial loop over rows
  EXPECT_NE(k.source.find("typedef int kiln_idx;"), std::string::npos) << k.source; // 32-bit index arithmetic
}

// A bias gradient over every token: 768 outputs, 8192 rows each. One thread
// per output would run 3 blocks; a split kernel gives 32 outputs a block and
// splits each sum over its 8 warps, combined in warp order.
TEST(CudaCodegen, LongColumnSumsAreSplitOverABlock) {
  std::string strategy;
  CudaKernel k = onlyKernel(R"(
graph @bias_grad(%x: f32[8192,768] input) -> (f32[768]) {
  %0 = reduce_sum %x {axes = [0]} : f32[768]
  return %0
}
)", strategy);
  EXPECT_EQ(strategy, "split") << k.source;
  EXPECT_EQ(k.launch.block, 256);
  EXPECT_EQ(k.launch.grid, 24); // 768 outputs / 32
  EXPECT_NE(k.source.find("kiln_split_reduce(acc"), std::string::npos) << k.source;
  EXPECT_NE(k.source.find(" += (kiln_idx)(blockDim.x >> 5))"), std::string::npos) << k.source; // warps stride the rows
  EXPECT_EQ(k.source.find("atomic"), std::string::npos) << k.source;
}

TEST(CudaCodegen, ElementwiseIsAGridStrideLoopWithInterpreterSemantics) {
  std::string strategy;
  CudaKernel k = onlyKernel(R"(
graph @ew(%a: i32[1000] input, %b: i32[1000] input, %x: f32[1000] input) -> (i32[1000]) {
  %0 = div %a, %b : i32[1000]
  %1 = cast %x {to = i32} : i32[1000]
  %2 = add %0, %1 : i32[1000]
  return %2
}
)", strategy);
  EXPECT_EQ(strategy, "loop");
  // 1000 elements: 4 per thread, every operand and the result as 16-byte vectors.
  EXPECT_NE(k.source.find("q += (kiln_idx)gridDim.x * (kiln_idx)blockDim.x"), std::string::npos) << k.source;
  for (const char *load : {"reinterpret_cast<const int4*>(p0)[q]", "reinterpret_cast<const int4*>(p1)[q]",
                           "reinterpret_cast<const float4*>(p2)[q]", "reinterpret_cast<int4*>(r0)[q]"})
    EXPECT_NE(k.source.find(load), std::string::npos) << load << "\n" << k.source;
  EXPECT_EQ(k.launch.alignment, 16);
  EXPECT_NE(k.source.find("kiln_idiv("), std::string::npos) << k.source;
  EXPECT_NE(k.source.find("kiln_f2i32("), std::string::npos) << k.source;
  EXPECT_NE(k.source.find("kiln_wadd("), std::string::npos) << k.source;
}

TEST(CudaCodegen, ElementCountsNotAMultipleOf4AreScalarLoops) {
  std::string strategy;
  CudaKernel k = onlyKernel(R"(
graph @ew(%a: f32[1001] input, %b: f32[1001] input) -> (f32[1001]) {
  %0 = mul %a, %b : f32[1001]
  return %0
}
)", strategy);
  EXPECT_NE(k.source.find("i += (kiln_idx)gridDim.x * (kiln_idx)blockDim.x"), std::string::npos) << k.source;
  EXPECT_EQ(k.source.find("float4"), std::string::npos) << k.source;
  EXPECT_NE(k.source.find("p0[i]"), std::string::npos) << k.source; // no index arithmetic for same-shape reads
  EXPECT_EQ(k.launch.alignment, 1);
}

TEST(CudaCodegen, TensorsOf2To30ElementsUseLongLongIndices) {
  std::string strategy;
  CudaKernel k = onlyKernel(R"(
graph @big(%x: f32[32768,32768] input) -> (f32[32768,32768]) {
  %0 = exp %x : f32[32768,32768]
  return %0
}
)", strategy);
  EXPECT_NE(k.source.find("typedef long long kiln_idx;"), std::string::npos) << k.source;
  EXPECT_NE(k.source.find("q < 268435456LL"), std::string::npos) << k.source; // 2^30 elements, 4 per thread
  EXPECT_EQ(k.launch.grid, 65535); // capped: the loop strides over the rest
  CudaProgram p;
  p.modules.push_back(CudaModule{"big", cudaPreamble() + k.source, {k.launch.kernel}, "", ""});
  p.launches.push_back(k.launch);
  p.strategies.push_back(strategy);
  p.program.steps.emplace_back();
  expectCompiles(p, "big");
}

TEST(CudaCodegen, HalfAndBFloat16StorageCompiles) {
  Module m = parseModule(kHalfPrecisionGraph, "halfs.kir");
  CudaProgram p = lowerPlanned(*m.graphs[0]);
  std::string all;
  for (const CudaModule &mod : p.modules)
    all += mod.source;
  for (const char *helper : {"kiln_ld_bf16(", "kiln_st_bf16(", "kiln_ld_f16(", "kiln_st_f16(", "kiln_round_f16("})
    EXPECT_NE(all.find(std::string(helper), cudaPreamble().size()), std::string::npos) << helper << "\n" << all;
  expectCompiles(p, "halfs");
}

TEST(CudaCodegen, LibraryOpsOtherThanMatmulGetKernels) {
  Module m = parseModule(R"(
graph @lib(%x: f32[2,3,8,8] input, %w: f32[4,3,3,3] param, %a: f32[4,5] input, %b: f32[5,6] input) -> (f32[2,4,4,4], f32[4,6]) {
  %0 = conv2d %x, %w {padding = [1, 1]} : f32[2,4,8,8]
  %1 = max_pool2d %0 {window = [2, 2], stride = [2, 2]} : f32[2,4,4,4]
  %2 = matmul %a, %b : f32[4,6]
  return %1, %2
}
)", "lib.kir");
  CudaProgram p = lowerPlanned(*m.graphs[0]);
  size_t matmuls = 0, library = 0;
  for (size_t s = 0; s < p.program.steps.size(); ++s) {
    if (p.program.steps[s].kind == StepKind::Matmul) {
      ++matmuls;
      EXPECT_TRUE(p.launches[s].kernel.empty()); // cuBLASLt
    } else if (p.program.steps[s].kind != StepKind::Kernel) {
      ++library;
      EXPECT_FALSE(p.launches[s].kernel.empty());
    }
  }
  // The convolution (one group) is im2col, then a cuBLASLt GEMM of the filter
  // (one matrix for every image) with each image's columns.
  EXPECT_EQ(matmuls, 2u);
  EXPECT_EQ(library, 1u); // max_pool2d
  size_t im2col = 0;
  while (im2col < p.program.steps.size() && p.program.steps[im2col].name.find("(im2col)") == std::string::npos)
    ++im2col;
  ASSERT_LT(im2col + 1, p.program.steps.size());
  const Step &gemm = p.program.steps[im2col + 1];
  EXPECT_EQ(gemm.kind, StepKind::Matmul);
  EXPECT_TRUE(gemm.matmul.broadcastA);
  EXPECT_EQ(gemm.matmul.batch, 2);
  EXPECT_EQ(gemm.matmul.m, 4);      // filters
  EXPECT_EQ(gemm.matmul.n, 8 * 8);  // output positions
  EXPECT_EQ(gemm.matmul.k, 3 * 9);  // taps
  // The columns live after the planned arena.
  EXPECT_EQ(gemm.operands[1].offset, p.program.steps[im2col].result.offset);
  EXPECT_GE(p.program.steps[im2col].result.offset + p.program.steps[im2col].result.bytes, p.program.arenaBytes - 255);
  expectCompiles(p, "lib");
}

// GPT-2's token-embedding gradient: 8192 indices into 50257 rows of 768. The
// direct kernel would loop over every index for each of the 38.6M outputs;
// sorted, each output sums only its run.
TEST(CudaCodegen, ScatterAddWithFewIndicesSortsThem) {
  Module m = parseModule(R"(
graph @embedding_grad(%idx: i32[8192] input, %upd: f32[8192,768] input) -> (f32[50257,768]) {
  %0 = scatter_add %idx, %upd {axis = 0} : f32[50257,768]
  return %0
}
)", "embedding_grad.kir");
  CudaProgram p = lowerPlanned(*m.graphs[0]);
  ASSERT_EQ(p.program.steps.size(), 2u);
  EXPECT_NE(p.program.steps[0].name.find("(sort)"), std::string::npos);
  EXPECT_EQ(p.program.steps[0].result.bytes, 2 * 8192 * 8); // keys, then positions
  EXPECT_EQ(p.program.steps[1].operands[0].offset, p.program.steps[0].result.offset);
  EXPECT_EQ(p.launches[1].parameters, 3);
  expectCompiles(p, "embedding_grad");
}

TEST(CudaCodegen, GroupedConvolutionsKeepTheirDirectKernel) {
  Module m = parseModule(readFile(kDir + "conv2d-strided-grouped.kir"), "conv2d-strided-grouped.kir");
  CudaProgram p = lowerPlanned(*m.graphs[0]);
  size_t direct = 0;
  for (const Step &s : p.program.steps)
    direct += s.kind == StepKind::Conv2d;
  EXPECT_EQ(direct, 1u);
}

// A Linear layer's matmul and bias add become one cuBLASLt call with the bias
// epilogue, writing where the add wrote: the mlp step's three layers.
TEST(CudaCodegen, LinearLayersUseTheBiasEpilogue) {
  OptimizerOptions o;
  o.kind = OptimizerKind::Momentum;
  std::unique_ptr<Graph> step = buildTrainingStep(*examples::buildMlp(), o);
  CudaProgram p = lowerPlanned(*step);
  std::vector<std::string> biases;
  for (const Step &s : p.program.steps)
    if (s.kind == StepKind::Matmul && s.matmul.biasEpilogue) {
      ASSERT_EQ(s.operands.size(), 3u) << s.name;
      ASSERT_EQ(s.operands[2].space, BufferRef::Space::Argument) << s.name;
      biases.push_back(p.program.arguments[size_t(s.operands[2].argument)].name);
      EXPECT_EQ(s.operands[2].bytes, s.matmul.n * 4) << s.name;
    }
  EXPECT_EQ(biases, (std::vector<std::string>{"fc1.bias", "fc2.bias", "fc3.bias"}));
  expectCompiles(p, "mlp-bias");
}

// What `kiln compile --emit=cuda|ptx --dump-dir` writes.
TEST(CudaCodegen, EmitAndDumpGiveEveryKernelStandalone) {
  Module m = parseModule(readFile(kDir + "conv2d.grad.kir"), "conv2d.grad.kir");
  Graph &g = *m.graphs[0];
  runPasses(g, parsePassPipeline("autodiff," + defaultPipeline()), verifyEachOptions());
  setenv("KILN_CACHE_DIR", KILN_TEST_CUDA_CACHE_DIR, 1);
  CudaCompiled compiled = compileForCuda(g, "sm_80");
  std::string cuda = cudaText(compiled, "cuda"), ptx = cudaText(compiled, "ptx");
  std::string dir = std::string(KILN_TEST_CUDA_CACHE_DIR) + "/dump-test";
  std::filesystem::remove_all(dir);
  dumpCudaKernels(compiled, dir);
  std::string table = readFile(dir + "/cuda.program.txt");
  size_t kernels = 0;
  for (const CudaModule &module : compiled.program->modules) {
    EXPECT_NE(cuda.find(module.source), std::string::npos);
    EXPECT_TRUE(std::filesystem::exists(dir + "/cuda." + module.name + ".ptx"));
    for (const std::string &k : module.kernels) {
      EXPECT_NE(ptx.find(".entry " + k + "("), std::string::npos) << k;
      EXPECT_NE(table.find("-> " + k + " ("), std::string::npos) << table;
      char prefix[32];
      std::snprintf(prefix, sizeof prefix, "cuda.%02zu.", kernels++);
      std::string file = dir + "/" + prefix + k + ".cu";
      ASSERT_TRUE(std::filesystem::exists(file)) << file;
      NvrtcOutput alone = compileCuda(readFile(file), k, options("sm_80"));
      EXPECT_NE(alone.ptx.find(".entry " + k + "("), std::string::npos) << file;
    }
  }
  EXPECT_GE(kernels, 3u); // conv2d_grad_input, conv2d_grad_filter, a fusion
  EXPECT_NE(table.find("conv2d_grad_filter (im2col) -> kiln_kernel_"), std::string::npos) << table;
  EXPECT_NE(table.find("conv2d_grad_filter (gemm) -> cuBLASLt"), std::string::npos) << table;
  std::filesystem::remove_all(dir);
}

TEST(CudaCodegen, BadSourceIsAnErrorWithTheNvrtcLog) {
  NvrtcOptions o = options("sm_90");
  o.cacheDir = "off";
  try {
    compileCuda("extern \"C\" __global__ void broken() { undeclared_thing = 1; }", "broken", o);
    FAIL() << "compiled";
  } catch (const Error &e) {
    std::string what = e.what();
    EXPECT_NE(what.find("broken.cu"), std::string::npos) << what;
    EXPECT_NE(what.find("undeclared_thing"), std::string::npos) << what;
  }
  o.arch = "ampere";
  EXPECT_THROW(compileCuda("", "empty", o), Error);
}

TEST(CudaCodegen, CacheHitsGiveTheSameCubinAndPtxOnlyHasNoCubin) {
  std::string dir = std::string(KILN_TEST_CUDA_CACHE_DIR) + "/cache-test";
  std::filesystem::remove_all(dir);
  NvrtcOptions o = options("sm_90");
  o.cacheDir = dir;
  std::string source = cudaPreamble() + "extern \"C\" __global__ void k(float* y) { y[threadIdx.x] = kiln_rng_uniform(1, threadIdx.x); }";
  NvrtcOutput first = compileCuda(source, "k", o), second = compileCuda(source, "k", o);
  EXPECT_FALSE(first.cached);
  EXPECT_TRUE(second.cached);
  EXPECT_EQ(first.cubin, second.cubin);
  EXPECT_EQ(first.ptx, second.ptx);
  o.cubin = false; // PTX only: another key
  NvrtcOutput ptx = compileCuda(source, "k", o);
  EXPECT_FALSE(ptx.cached);
  EXPECT_TRUE(ptx.cubin.empty());
  EXPECT_NE(ptx.ptx.find(".target sm_90"), std::string::npos);
  std::filesystem::remove_all(dir);
}

} // namespace
} // namespace kiln

#endif // KILN_HAVE_CUDA
