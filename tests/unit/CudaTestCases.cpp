#ifdef KILN_HAVE_CUDA

#include "tests/unit/CudaTestCases.h"

#include "compiler/TrainingStep.h"
#include "ir/ArgumentValues.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "passes/PassManager.h"
#include "tests/unit/CudaTestGraphs.h"
#include "tests/unit/ExpectClose.h"
#include "tests/unit/TestHelpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace kiln {

namespace {

const std::string kDir = std::string(KILN_TEST_DATA_DIR) + "/conformance/";

CudaTestCase makeCase(std::string name, std::unique_ptr<Graph> graph, TensorMap inputs, double tolerance) {
  CudaTestCase c;
  c.name = std::move(name);
  c.reference = std::move(graph);
  c.planned = cloneGraph(*c.reference);
  runPasses(*c.planned, parsePassPipeline(defaultPipeline()), verifyEachOptions());
  c.inputs = std::move(inputs);
  c.tolerance = tolerance;
  return c;
}

} // namespace

std::vector<CudaTestCase> loadCudaTestCases(bool gpu) {
  std::vector<CudaTestCase> cases;
  for (const auto &e : nlohmann::json::parse(readFile(kDir + "index.json"))) {
    std::string name = e.at("case");
    for (bool grad : {false, true}) {
      if (grad && !e.at("grad"))
        continue;
      std::string file = name + (grad ? ".grad.kir" : ".kir");
      Module m = parseModule(readFile(kDir + file), file);
      std::unique_ptr<Graph> g = std::move(m.graphs[0]);
      if (grad)
        runPasses(*g, parsePassPipeline("autodiff"), verifyEachOptions());
      cases.push_back(makeCase(file, std::move(g),
                               readSafetensors(kDir + name + (grad ? ".grad" : "") + ".inputs.safetensors"),
                               gpu ? 1e-4 : 1e-5));
      cases.back().pytorch = readSafetensors(kDir + name + ".expected.safetensors");
      cases.back().conformance = true;
    }
  }
  // Convolutions through im2col, cuBLASLt and col2im (one group): strided,
  // padded and dilated, one image (the filter gradient straight from the
  // GEMM) and three (a sum of per-image products), forward and gradients.
  for (int images : {1, 3}) {
    std::string n = std::to_string(images);
    std::string text = "graph @conv_gemm(%x: f32[" + n + ",3,9,8] param, %w: f32[5,3,3,2] param, %cot: f32[" + n +
                       ",5,4,10] input) -> (f32[]) {\n"
                       "  %0 = conv2d %x, %w {stride = [2, 1], padding = [0, 2], dilation = [1, 2], groups = 1} : f32[" +
                       n + ",5,4,10]\n  %1 = mul %0, %cot : f32[" + n + ",5,4,10]\n"
                       "  %2 = reduce_sum %1 {axes = [0, 1, 2, 3]} : f32[]\n  return %2\n}\n";
    Module m = parseModule(text, "conv_gemm_" + n + ".kir");
    std::unique_ptr<Graph> g = std::move(m.graphs[0]);
    runPasses(*g, parsePassPipeline("autodiff"), verifyEachOptions());
    TensorMap args;
    for (const auto &a : g->arguments())
      args[a->name] = defaultArgumentValue(*a, 7);
    cases.push_back(makeCase("conv_gemm_" + n + ".kir", std::move(g), args, gpu ? 1e-4 : 1e-5));
  }
  // Long column reductions ("split" kernels): sums, a max, and a variance
  // whose second reduction reads the first one's result.
  {
    Module m = parseModule(R"(graph @columns(%x: f32[300,37] input, %y: f32[4,300,5] input) -> (f32[37], f32[37], f32[37], f32[4,5]) {
  %0 = reduce_sum %x {axes = [0]} : f32[37]
  %1 = reduce_max %x {axes = [0]} : f32[37]
  %2 = constant {value = 0.0033333333} : f32[]
  %3 = broadcast %2 {dims = []} : f32[37]
  %4 = mul %0, %3 : f32[37]
  %5 = broadcast %4 {dims = [1]} : f32[300,37]
  %6 = sub %x, %5 : f32[300,37]
  %7 = mul %6, %6 : f32[300,37]
  %8 = reduce_sum %7 {axes = [0]} : f32[37]
  %9 = reduce_sum %y {axes = [1]} : f32[4,5]
  return %0, %1, %8, %9
}
)", "columns.kir");
    TensorMap args;
    for (const auto &a : m.graphs[0]->arguments())
      args[a->name] = defaultArgumentValue(*a, 9);
    cases.push_back(makeCase("columns.kir", std::move(m.graphs[0]), args, gpu ? 1e-4 : 1e-5));
  }
  for (const char *model : {"mlp", "cnn", "gpt"}) {
    std::unique_ptr<Graph> step = smallTrainingStep(model, OptimizerKind::Momentum);
    TensorMap args;
    for (const auto &a : step->arguments())
      args[a->name] = defaultArgumentValue(*a, 3);
    cases.push_back(makeCase(model, std::move(step), args, 1e-4));
  }
  // bf16 and f16 storage with f32 arithmetic. The interpreter rounds after
  // every op, the kernels only when storing or casting: bf16's 8 significant
  // bits bound the difference.
  Module m = parseModule(kHalfPrecisionGraph, "halfs.kir");
  TensorMap args;
  for (const auto &a : m.graphs[0]->arguments())
    args[a->name] = defaultArgumentValue(*a, 5);
  cases.push_back(makeCase("halfs.kir", std::move(m.graphs[0]), args, 2e-2));
  return cases;
}

void expectMatchesReference(const CudaTestCase &c, cuda::Executable &exe, const char *backend) {
  SCOPED_TRACE(c.name);
  InterpreterResult reference = interpret(*c.reference, c.inputs, Precision::Native);
  for (size_t r = 0; r < c.reference->results().size(); ++r)
    expectTensorClose(exe.result(r), reference.results[r], c.tolerance, c.name + " " + c.reference->resultName(r),
                      backend);
  if (c.conformance && c.reference->results().size() == 1 && c.pytorch.count("out0"))
    expectTensorClose(exe.result(0), c.pytorch.at("out0"), 1e-4, c.name + " vs PyTorch", backend);
  for (const auto &[name, value] : reference.updated)
    expectTensorClose(exe.argument(name), value, c.tolerance, c.name + " update of " + name, backend);
}

TensorMap runAndCollect(cuda::Executable &exe, int runs) {
  for (int i = 0; i < runs; ++i)
    exe.run();
  exe.synchronize();
  TensorMap out;
  for (size_t r = 0; r < exe.numResults(); ++r)
    out["result " + exe.program().results[r].name + " " + std::to_string(r)] = exe.result(r);
  for (const ArgumentSpec &a : exe.program().arguments)
    out["argument " + a.name] = exe.argument(a.name);
  return out;
}

} // namespace kiln

#endif // KILN_HAVE_CUDA
