// The CUDA backend run without a GPU: every case of tests/unit/CudaTestCases.h
// lowered for CUDA, its kernels compiled for the host (CudaEmulationDevice.h),
// and run by the real runtime (cuda::Executable) on the emulated device —
// against PyTorch's float64 values and the reference interpreter; the CUDA
// graph replay against kernel-by-kernel runs; the Executable's checks.
#ifdef KILN_HAVE_CUDA

#include "codegen/cuda/CudaCodegen.h"
#include "ir/Graph.h"
#include "ir/Parser.h"
#include "passes/PassManager.h"
#include "runtime/Error.h"
#include "runtime/cuda/Executable.h"
#include "tests/unit/CudaEmulationDevice.h"
#include "tests/unit/CudaTestCases.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace kiln {
namespace {

/// The cases and their kernels, compiled for the host once for the suite.
struct Suite {
  std::vector<CudaTestCase> cases;
  std::vector<CudaProgram> programs; // the cases', then the overflow graph's
  std::unique_ptr<Graph> overflow;
  HostKernels kernels;
  bool loaded = false;
};

Suite &suite() {
  static Suite *s = [] {
    auto *s = new Suite;
    s->cases = loadCudaTestCases(false);
    for (size_t i = 0; i < s->cases.size(); ++i) {
      s->programs.push_back(lowerForCuda(*s->cases[i].planned));
      s->kernels.add(i, s->programs.back());
    }
    // exp(x * x) overflows where |x| > 9.4.
    Module m = parseModule(R"(graph @overflow(%x: f32[4,8] input) -> (f32[4,8]) {
  %0 = mul %x, %x : f32[4,8]
  %1 = exp %0 : f32[4,8]
  return %1
}
)", "overflow.kir");
    s->overflow = std::move(m.graphs[0]);
    runPasses(*s->overflow, parsePassPipeline(defaultPipeline()));
    s->programs.push_back(lowerForCuda(*s->overflow));
    s->kernels.add(s->cases.size(), s->programs.back());
    s->loaded = s->kernels.load();
    return s;
  }();
  return *s;
}

/// The index of the case named `name` (a test failure, and 0, if none is).
size_t caseIndex(const std::string &name) {
  const Suite &s = suite();
  for (size_t i = 0; i < s.cases.size(); ++i)
    if (s.cases[i].name == name)
      return i;
  ADD_FAILURE() << "no case " << name;
  return 0;
}

std::unique_ptr<cuda::Executable> load(size_t i, std::shared_ptr<EmulatedDevice> device, bool graph = true) {
  Suite &s = suite();
  cuda::ExecutableOptions options;
  options.graph = graph;
  auto exe = std::make_unique<cuda::Executable>(s.programs[i], device, options);
  for (const auto &[name, value] : s.cases[i].inputs)
    exe->setArgument(name, value);
  return exe;
}

TEST(CudaEmulation, ConformanceCasesAndTrainingStepsMatchTheReference) {
  Suite &s = suite();
  ASSERT_TRUE(s.loaded);
  for (size_t i = 0; i < s.cases.size(); ++i) {
    auto device = std::make_shared<EmulatedDevice>(s.kernels);
    auto exe = load(i, device);
    exe->run();
    exe->synchronize();
    expectMatchesReference(s.cases[i], *exe, "emulated cuda");
    // Every buffer is allocated up front, and freed with the executable.
    EXPECT_EQ(device->allocatedBytes(), device->peakAllocatedBytes()) << s.cases[i].name;
    exe.reset();
    EXPECT_EQ(device->allocatedBytes(), 0) << s.cases[i].name;
  }
}

// Convolutions whose batched GEMM (one filter for every image) the library
// cannot run fall back to one GEMM per image, with the same results.
TEST(CudaEmulation, ConvolutionsRunAsOneGemmPerImageWithoutABatchedAlgorithm) {
  Suite &s = suite();
  ASSERT_TRUE(s.loaded);
  size_t checked = 0;
  for (size_t i = 0; i < s.cases.size(); ++i) {
    bool shared = false;
    for (const Step &step : s.programs[i].program.steps)
      shared = shared || (step.kind == StepKind::Matmul && step.matmul.broadcastA && step.matmul.batch > 1);
    if (!shared)
      continue;
    auto device = std::make_shared<EmulatedDevice>(s.kernels);
    device->refuseBroadcastA = true;
    auto exe = load(i, device);
    exe->run();
    exe->synchronize();
    expectMatchesReference(s.cases[i], *exe, "emulated cuda, one GEMM per image");
    ++checked;
  }
  EXPECT_GE(checked, 3u); // conv2d.grad, conv_gemm_3, cnn
}

// The CUDA graph captured on the second run and replayed after gives the
// same bits as launching every kernel every run; capture obeys CUDA's rules
// (the emulated device throws on an allocation, a synchronous copy or a
// synchronization while capturing).
TEST(CudaEmulation, GraphReplayEqualsKernelByKernelRuns) {
  Suite &s = suite();
  ASSERT_TRUE(s.loaded);
  size_t steps = 0;
  for (size_t i = 0; i < s.cases.size(); ++i) {
    if (s.cases[i].conformance || s.cases[i].planned->updates().empty())
      continue;
    SCOPED_TRACE(s.cases[i].name);
    ++steps;
    auto graphed = std::make_shared<EmulatedDevice>(s.kernels), plain = std::make_shared<EmulatedDevice>(s.kernels);
    auto a = load(i, graphed, true), b = load(i, plain, false);
    TensorMap replayed = runAndCollect(*a, 3), launched = runAndCollect(*b, 3);
    EXPECT_TRUE(a->replaying());
    EXPECT_FALSE(b->replaying());
    EXPECT_EQ(graphed->graphsLaunched, 2); // run 1 eager, run 2 captured and launched, run 3 replayed
    EXPECT_EQ(plain->graphsLaunched, 0);
    EXPECT_EQ(graphed->kernelsRun, plain->kernelsRun);
    ASSERT_EQ(replayed.size(), launched.size());
    for (const auto &[name, value] : replayed) {
      const HostTensor &other = launched.at(name);
      ASSERT_EQ(value.byteSize(), other.byteSize()) << name;
      EXPECT_EQ(std::memcmp(value.data(), other.data(), value.byteSize()), 0) << name << " differs";
    }
    // The params moved: the updates were replayed too.
    for (const auto &u : s.cases[i].planned->updates()) {
      HostTensor before = s.cases[i].inputs.at(u.target->name), after = replayed.at("argument " + u.target->name);
      EXPECT_NE(std::memcmp(before.data(), after.data(), before.byteSize()), 0) << u.target->name;
    }
  }
  EXPECT_EQ(steps, 3u); // mlp, cnn, gpt
}

// --check-numerics on the GPU: the first non-finite result stops the run
// with the CPU backend's located message; without it the run goes on.
TEST(CudaEmulation, CheckNumericsNamesTheNodeThatOverflowed) {
  Suite &s = suite();
  ASSERT_TRUE(s.loaded);
  auto device = std::make_shared<EmulatedDevice>(s.kernels);
  cuda::Executable exe(s.programs.back(), device);
  HostTensor x(DType::F32, Shape{4, 8});
  for (int64_t i = 0; i < 32; ++i)
    x.setDouble(i, i == 5 ? 20.0 : 0.25 * double(i % 7) - 0.5);
  exe.setArgument("x", x);
  exe.run();
  exe.synchronize();
  EXPECT_TRUE(std::isinf(exe.result(0).getDouble(5)));
  exe.setCheckNumerics(true);
  try {
    exe.run();
    FAIL() << "no check-numerics error";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), "overflow.kir:3:8: error: fusion (mul, exp) produced inf at element 5 (check-numerics)");
  }
}

// --profile on the GPU: a run step by step with events between the steps,
// the same results as the graph's, a time for every step.
TEST(CudaEmulation, ProfiledRunsTimeEveryStepAndComputeTheSame) {
  Suite &s = suite();
  ASSERT_TRUE(s.loaded);
  size_t mlp = caseIndex("mlp");
  auto a = load(mlp, std::make_shared<EmulatedDevice>(s.kernels));
  auto b = load(mlp, std::make_shared<EmulatedDevice>(s.kernels));
  Profile profile;
  profile.trace = true;
  for (int run = 0; run < 3; ++run) {
    a->run(run > 0 ? &profile : nullptr);
    b->run();
  }
  TensorMap profiled = runAndCollect(*a, 0), replayed = runAndCollect(*b, 0);
  for (const auto &[name, value] : profiled)
    EXPECT_EQ(std::memcmp(value.data(), replayed.at(name).data(), value.byteSize()), 0) << name;
  EXPECT_EQ(profile.runs, 2);
  ASSERT_EQ(profile.stepSeconds.size(), a->program().steps.size());
  ASSERT_EQ(profile.lastRun.size(), a->program().steps.size() + 1);
  for (size_t i = 0; i < profile.stepSeconds.size(); ++i) {
    EXPECT_GE(profile.stepSeconds[i], 0.0) << i;
    EXPECT_LE(profile.lastRun[i].first, profile.lastRun[i].second) << i;
  }
  std::string report = formatProfile(a->program(), profile);
  EXPECT_NE(report.find("2 runs"), std::string::npos) << report;
  EXPECT_NE(report.find("matmul + bias"), std::string::npos) << report;
}

TEST(CudaEmulation, CaptureRulesAreEnforced) {
  Suite &s = suite();
  ASSERT_TRUE(s.loaded);
  EmulatedDevice device(s.kernels);
  device.beginCapture();
  EXPECT_THROW(device.allocate(64), Error);
  EXPECT_THROW(device.synchronize(), Error);
  float x = 1;
  EXPECT_THROW(device.copyToDevice(0, &x, 4), Error);
  device.releaseGraph(device.endCapture());
  cuda::DevicePtr p = device.allocate(64);
  device.copyToDevice(p, &x, 4);
  device.release(p);
}

TEST(CudaEmulation, ExecutableRejectsBrokenPrograms) {
  Suite &s = suite();
  ASSERT_TRUE(s.loaded);
  size_t gpt = caseIndex("gpt");
  auto device = std::make_shared<EmulatedDevice>(s.kernels);
  auto expectError = [&](CudaProgram p, const std::string &what) {
    try {
      cuda::Executable exe(std::move(p), device);
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error &e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
    EXPECT_EQ(device->allocatedBytes(), 0) << what; // nothing leaks from a failed construction
  };
  CudaProgram missing = s.programs[gpt];
  missing.modules.pop_back();
  expectError(missing, "is in no module");
  CudaProgram fewer = s.programs[gpt];
  fewer.launches.pop_back();
  expectError(fewer, "launches for");
  CudaProgram badBlock = s.programs[gpt];
  for (CudaLaunch &l : badBlock.launches)
    if (!l.kernel.empty()) {
      l.block = 4096;
      break;
    }
  expectError(badBlock, "bad launch");
  CudaProgram fewerPointers = s.programs[gpt];
  for (size_t st = 0; st < fewerPointers.program.steps.size(); ++st)
    if (fewerPointers.program.steps[st].kind == StepKind::Kernel && fewerPointers.program.steps[st].operands.size() > 1) {
      fewerPointers.program.steps[st].operands.pop_back();
      break;
    }
  expectError(fewerPointers, "pointers, the step passes");
  CudaProgram outside = s.programs[gpt];
  outside.program.steps[0].result.offset = outside.program.arenaBytes;
  expectError(outside, "outside its buffer");
}

} // namespace
} // namespace kiln

#endif // KILN_HAVE_CUDA
