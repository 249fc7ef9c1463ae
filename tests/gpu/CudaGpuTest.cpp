// The CUDA backend on a real GPU (CTest label `gpu`; every test skips where
// there is no driver or device): every conformance case, forward and
// gradient, and the example training steps against the reference
// interpreter; the CUDA-graph replay against kernel-by-kernel runs; cuBLASLt
// matmuls of every transpose, batch and dtype against double sums; the
// device's errors.
#include "compiler/CudaBackend.h"
#include "compiler/TrainingStep.h"
#include "examples/models/Models.h"
#include "ir/ArgumentValues.h"
#include "ir/GraphEdit.h"
#include "passes/PassManager.h"
#include "runtime/Error.h"
#include "runtime/Random.h"
#include "runtime/cuda/Device.h"
#include "runtime/cuda/Executable.h"
#include "tests/unit/CudaTestCases.h"
#include "tests/unit/ExpectClose.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>

namespace kiln {
namespace {

class Gpu : public testing::Test {
protected:
  static void SetUpTestSuite() {
    // Exact f32 matmuls whatever the environment says (shared/notes/cuda.md).
    setenv("NVIDIA_TF32_OVERRIDE", "0", 1);
    unsetenv("CUBLAS_EMULATE_SINGLE_PRECISION");
    std::string why;
    if (cuda::cudaDeviceCount(&why) == 0) {
      skip_ = why;
      return;
    }
    device_ = cuda::openCudaDevice(0);
    std::printf("GPU: %s (%s), driver %s\n", device_->info().name.c_str(), device_->info().arch.c_str(),
                device_->info().driver.c_str());
  }
  static void TearDownTestSuite() { device_.reset(); }
  void SetUp() override {
    if (!device_)
      GTEST_SKIP() << "no GPU: " << skip_;
  }

  std::unique_ptr<cuda::Executable> load(const Graph &planned, const TensorMap &inputs, bool graph = true) {
    cuda::ExecutableOptions options;
    options.graph = graph;
    auto exe = compileCudaExecutable(planned, device_, options);
    for (const auto &[name, value] : inputs)
      exe->setArgument(name, value);
    return exe;
  }

  static std::shared_ptr<cuda::Device> device_;
  static std::string skip_;
};

std::shared_ptr<cuda::Device> Gpu::device_;
std::string Gpu::skip_;

TEST_F(Gpu, ConformanceCasesAndSmallTrainingStepsMatchTheInterpreter) {
  for (const CudaTestCase &c : loadCudaTestCases(true)) {
    auto exe = load(*c.planned, c.inputs);
    exe->run();
    exe->synchronize();
    expectMatchesReference(c, *exe, "cuda");
  }
}

// The example models at their benchmark sizes (shared/BENCHMARKS.md, CPU
// workloads), one SGD-momentum step each, against the interpreter.
TEST_F(Gpu, ExampleTrainingStepsMatchTheInterpreter) {
  for (const std::string &name : examples::exampleModelNames()) {
    SCOPED_TRACE(name);
    OptimizerOptions o;
    o.kind = OptimizerKind::Momentum;
    CudaTestCase c;
    c.name = name;
    c.reference = buildTrainingStep(*examples::buildExampleModel(name), o);
    c.planned = cloneGraph(*c.reference);
    runPasses(*c.planned, parsePassPipeline(defaultPipeline()));
    for (const auto &a : c.reference->arguments())
      c.inputs[a->name] = defaultArgumentValue(*a, 11);
    c.tolerance = 1e-4;
    auto exe = load(*c.planned, c.inputs);
    exe->run();
    exe->synchronize();
    expectMatchesReference(c, *exe, "cuda");
  }
}

TEST_F(Gpu, GraphReplayEqualsKernelByKernelRuns) {
  for (const CudaTestCase &c : loadCudaTestCases(true)) {
    if (c.conformance || c.planned->updates().empty())
      continue;
    SCOPED_TRACE(c.name);
    auto graphed = load(*c.planned, c.inputs, true), plain = load(*c.planned, c.inputs, false);
    TensorMap replayed = runAndCollect(*graphed, 4), launched = runAndCollect(*plain, 4);
    EXPECT_TRUE(graphed->replaying());
    for (const auto &[name, value] : replayed) {
      const HostTensor &other = launched.at(name);
      ASSERT_EQ(value.byteSize(), other.byteSize()) << name;
      EXPECT_EQ(std::memcmp(value.data(), other.data(), value.byteSize()), 0) << name << " differs";
    }
  }
}

/// c = op(a) op(b) in double, row-major, batched.
template <typename T>
std::vector<double> referenceMatmul(const MatmulParams &p, const std::vector<T> &a, const std::vector<T> &b) {
  std::vector<double> c(size_t(p.batch * p.m * p.n));
  auto ab = [&](int64_t batch) { return p.broadcastA ? 0 : batch; };
  for (int64_t batch = 0; batch < p.batch; ++batch)
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        double sum = 0;
        for (int64_t k = 0; k < p.k; ++k)
          sum += double(p.transposeA ? a[size_t((ab(batch) * p.k + k) * p.m + i)] : a[size_t((ab(batch) * p.m + i) * p.k + k)]) *
                 double(p.transposeB ? b[size_t((batch * p.n + j) * p.k + k)] : b[size_t((batch * p.k + k) * p.n + j)]);
        c[size_t((batch * p.m + i) * p.n + j)] = sum;
      }
  return c;
}

template <typename T> void checkMatmul(cuda::Device &device, const MatmulParams &p) {
  std::vector<T> bias(size_t(p.n));
  for (size_t j = 0; j < bias.size(); ++j)
    bias[j] = T(0.25 * double(j % 7) - 0.5);
  cuda::DevicePtr dbias = device.allocate(int64_t(bias.size() * sizeof(T)));
  device.copyToDevice(dbias, bias.data(), int64_t(bias.size() * sizeof(T)));
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> uniform(-1, 1);
  std::vector<T> a(size_t((p.broadcastA ? 1 : p.batch) * p.m * p.k)), b(size_t(p.batch * p.k * p.n)), c(size_t(p.batch * p.m * p.n));
  for (T &x : a)
    x = T(uniform(rng));
  for (T &x : b)
    x = T(uniform(rng));
  cuda::DevicePtr da = device.allocate(int64_t(a.size() * sizeof(T))), db = device.allocate(int64_t(b.size() * sizeof(T))),
                  dc = device.allocate(int64_t(c.size() * sizeof(T)));
  device.copyToDevice(da, a.data(), int64_t(a.size() * sizeof(T)));
  device.copyToDevice(db, b.data(), int64_t(b.size() * sizeof(T)));
  cuda::MatmulHandle plan = device.prepareMatmul(p, uint32_t(sizeof(T)), p.biasEpilogue ? dbias : 0);
  device.matmul(plan, da, db, dc);
  device.copyToHost(c.data(), dc, int64_t(c.size() * sizeof(T)));
  std::vector<double> want = referenceMatmul(p, a, b);
  if (p.biasEpilogue)
    for (size_t i = 0; i < want.size(); ++i)
      want[i] += double(bias[i % size_t(p.n)]);
  double tolerance = sizeof(T) == 4 ? 1e-5 : 1e-12;
  for (size_t i = 0; i < c.size(); ++i)
    ASSERT_NEAR(double(c[i]), want[i], tolerance * double(p.k)) << "element " << i;
  device.releaseMatmul(plan);
  device.release(da), device.release(db), device.release(dc), device.release(dbias);
}

TEST_F(Gpu, CublasLtMatmulsOfEveryLayoutMatchDoubleSums) {
  for (int64_t batch : {1, 3})
    for (bool broadcast : {false, true})
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (DType dtype : {DType::F32, DType::F64}) {
            if (broadcast && batch == 1)
              continue;
            MatmulParams p;
            p.batch = batch, p.m = 37, p.n = 19, p.k = 53, p.transposeA = ta, p.transposeB = tb, p.dtype = dtype;
            p.broadcastA = broadcast; // one A for every batch (the convolutions' filter)
          p.biasEpilogue = batch == 1 && dtype == DType::F32; // a Linear layer's bias (cuBLASLt epilogue)
            SCOPED_TRACE("batch " + std::to_string(batch) + (broadcast ? " one" : "") + (ta ? " A^T" : " A") +
                         (tb ? " B^T " : " B ") + std::string(dtypeName(dtype)));
            if (dtype == DType::F32)
              checkMatmul<float>(*device_, p);
            else
              checkMatmul<double>(*device_, p);
          }
}

TEST_F(Gpu, OutOfMemoryIsALocatedError) {
  try {
    device_->allocate(int64_t(1) << 40);
    FAIL() << "a 1 TiB allocation succeeded";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("out of device memory"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cuda::openCudaDevice(1000), Error);
}

} // namespace
} // namespace kiln
