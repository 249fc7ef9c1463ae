// The cases every CUDA execution test runs, on the emulated device here
// (CudaEmulationTest) and on a real GPU (tests/gpu): every conformance case,
// forward and gradient, the three small example training steps and a bf16/f16
// graph, each with its inputs and the references it is compared with.
#pragma once

#include "ir/Graph.h"
#include "runtime/Safetensors.h"
#include "runtime/cuda/Executable.h"

#include <memory>
#include <string>
#include <vector>

namespace kiln {

struct CudaTestCase {
  std::string name;                 // "exp.grad.kir", "gpt"
  std::unique_ptr<Graph> reference; // before the pipeline: what the interpreter runs
  std::unique_ptr<Graph> planned;   // after the default pipeline
  TensorMap inputs;                 // every argument's value (random, never zeros)
  TensorMap pytorch;                // a conformance case's float64 values from PyTorch (`out0`)
  /// Relative tolerance against the interpreter: f32 data movement and
  /// arithmetic 1e-5 on the emulated device (sums in double, as the
  /// interpreter's), 1e-4 on a GPU (its exp/tanh differ in the last bits);
  /// the training steps after one step 1e-4; bf16 storage 2e-2.
  double tolerance = 1e-5;
  bool conformance = false;
};

/// Every case, planned. `gpu` chooses the GPU tolerances.
std::vector<CudaTestCase> loadCudaTestCases(bool gpu);

/// After one run of `exe` (a program of `c.planned` whose arguments were set
/// from `c.inputs`): every result and updated argument against the
/// interpreter's (and a conformance case's first result against PyTorch's).
void expectMatchesReference(const CudaTestCase &c, cuda::Executable &exe, const char *backend);

/// Runs `exe` `runs` times and returns its results and every argument after
/// the last run (to compare a replayed CUDA graph with kernel-by-kernel runs).
TensorMap runAndCollect(cuda::Executable &exe, int runs);

} // namespace kiln
