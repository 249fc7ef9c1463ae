// kiln-bench-gpu's measurements (bench/GpuBench.h) run without a GPU, on the
// emulated cuda::Device (CudaEmulationDevice.h: host-compiled kernels, CUDA's
// capture rules enforced): the sgemm rate's product check, and a whole
// workload (the --tiny mlp-gpu) compiled cold and warm, run eagerly, captured
// and replayed, its losses against the reference interpreter and its export
// against the values it ran on. Timings here are host times and mean nothing.
#ifdef KILN_HAVE_CUDA

#include "bench/GpuBench.h"
#include "codegen/cuda/CudaCodegen.h"
#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "runtime/Safetensors.h"
#include "tests/unit/CudaEmulationDevice.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace kiln {
namespace {

TEST(BenchGpu, SgemmIsCheckedAndFreesItsBuffers) {
  HostKernels none; // matmuls only: no kernels
  EmulatedDevice device(none);
  nlohmann::json s = bench::measureSgemm(device, 96, 3);
  EXPECT_EQ(s["n"], 96);
  EXPECT_EQ(s["reps"], 3);
  EXPECT_TRUE(s["check_ok"].get<bool>());
  // The emulated matmul sums in double and rounds once: far below TF32's ~1e-3.
  EXPECT_LT(s["check_rel_err"].get<double>(), 1e-6);
  EXPECT_GT(s["tflops"].get<double>(), 0);
  EXPECT_GE(s["tflops_best"].get<double>(), s["tflops"].get<double>());
  EXPECT_EQ(device.allocatedBytes(), 0);
  EXPECT_GE(device.peakAllocatedBytes(), 3 * 96 * 96 * 4); // the three matrices
}

TEST(BenchGpu, TinyMlpRunsOnTheEmulatedDeviceAsTheInterpreter) {
  // The step kiln-bench-gpu compiles, lowered here too so that its kernels
  // are compiled for the host (the same source: the same kernels).
  std::string modelName;
  std::unique_ptr<Graph> model = bench::buildGpuWorkload("mlp-gpu", /*tiny=*/true, modelName);
  ASSERT_EQ(modelName, "mlp");
  std::unique_ptr<Graph> step = bench::buildBenchmarkStep(*model, modelName, /*train=*/true);
  CudaProgram program = lowerForCuda(*step);
  HostKernels kernels;
  kernels.add(0, program);
  ASSERT_TRUE(kernels.load());

  std::string exportDir = (std::filesystem::temp_directory_path() /
                           ("kiln-bench-gpu-test-" + std::to_string(::getpid())))
                              .string();
  std::filesystem::create_directories(exportDir);
  bench::GpuOptions options;
  options.tiny = true;
  options.steps = 2;
  options.warmup = 2;
  options.seed = 7;
  options.exportDir = exportDir;
  std::vector<std::shared_ptr<EmulatedDevice>> devices;
  nlohmann::json w = bench::runGpuWorkload("mlp-gpu", options, 1e9, [&] {
    devices.push_back(std::make_shared<EmulatedDevice>(kernels));
    return devices.back();
  });

  // One device for the workload, all its memory freed with the executable.
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0]->allocatedBytes(), 0);
  // Run 1 eager, run 2 captured and launched, runs 3 and 4 replayed.
  EXPECT_TRUE(w["graph_replay"].get<bool>());
  EXPECT_EQ(devices[0]->graphsLaunched, int64_t(options.warmup - 1 + options.steps));
  EXPECT_EQ(w["step_ms"].size(), options.steps);
  EXPECT_LE(w["min_ms"].get<double>(), w["median_ms"].get<double>());
  EXPECT_EQ(w["flops"], 410779648); // the CPU mlp's hand count (tests/unit/FlopsTest.cpp)
  EXPECT_GE(w["device_bytes"].get<int64_t>(), w["arena_bytes"].get<int64_t>());
  EXPECT_GE(w["peak_device_bytes"].get<int64_t>(), w["device_bytes"].get<int64_t>());
  EXPECT_NEAR(w["efficiency"].get<double>(), w["limit_ms"].get<double>() / w["median_ms"].get<double>(), 1e-12);

  // The same seeded values through the reference interpreter, two steps.
  TensorMap args;
  TensorMap exported = bench::setArgumentValues(
      *step, options.seed, "mlp-gpu", [&](const std::string &name, const HostTensor &value) { args[name] = value; });
  size_t loss = bench::resultIndex(program.program, "loss");
  std::vector<double> expected;
  for (int i = 0; i < 2; ++i) {
    InterpreterResult r = interpret(*step, args);
    expected.push_back(r.results[loss].getDouble(0));
    for (auto &[name, value] : r.updated)
      args[name] = value;
  }
  ASSERT_EQ(w["losses"].size(), 2u);
  for (int i = 0; i < 2; ++i)
    EXPECT_NEAR(w["losses"][i].get<double>(), expected[i], 1e-5 * std::abs(expected[i])) << "loss " << i + 1;
  EXPECT_LT(expected[1], expected[0]);

  // The export is what the peers load: the params and the batch it ran on.
  TensorMap file = readSafetensors(exportDir + "/mlp-gpu.safetensors");
  std::filesystem::remove_all(exportDir);
  ASSERT_EQ(file.size(), exported.size());
  EXPECT_TRUE(file.count("x") && file.count("labels") && file.count("fc1.weight") && !file.count("lr"));
  for (const auto &[name, value] : exported) {
    ASSERT_TRUE(file.count(name)) << name;
    EXPECT_EQ(file.at(name).byteSize(), value.byteSize()) << name;
    EXPECT_EQ(std::memcmp(file.at(name).data(), value.data(), value.byteSize()), 0) << name;
  }
}

} // namespace
} // namespace kiln

#endif // KILN_HAVE_CUDA
