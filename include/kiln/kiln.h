// Kiln's C++ API: build a graph, compile it, call it in a loop.
//
//   #include <kiln/kiln.h>
//
//   kiln::GraphBuilder b("mlp");
//   kiln::Tensor x = b.input("x", kiln::DType::F32, {32, 4});
//   kiln::Tensor y = b.input("y", kiln::DType::F32, {32, 1});
//   kiln::nn::Linear fc1(4, 16), fc2(16, 1);
//   fc1.bind(b, "fc1.");
//   fc2.bind(b, "fc2.");
//   kiln::Tensor loss = kiln::nn::mse(fc2.forward(kiln::nn::relu(fc1.forward(x))), y);
//   b.output(loss, "loss");
//   std::unique_ptr<kiln::Graph> graph = b.finish();
//
//   kiln::CompiledTrainingStep step =
//       kiln::compileTrainingStep(*graph, "loss", kiln::optim::adam(1e-2));
//   for (int i = 0; i < 100; ++i)
//     double l = step.step({{"x", xs}, {"y", ys}}).at("loss").getDouble(0);
//   step.save("params.safetensors");
//
// Everything a caller gets wrong (a feed's name, dtype or shape, a param that
// does not exist, a file that does not match) throws kiln::Error with a
// one-line located message: `@mlp: error: feed 'x' has type f32[8,4] but the
// input expects f32[32,4]`. docs/api.md describes the API in full.
#pragma once

#include "frontend/GraphBuilder.h"
#include "frontend/nn/Functional.h"
#include "frontend/nn/Module.h"
#include "passes/optim/Optimizer.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"
#include "runtime/Tensor.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln {

/// "cpu" when this build has the CPU backend, else "interp".
std::string defaultTarget();
/// The targets this build can compile for: "interp", and "cpu" if built with it.
std::vector<std::string> availableTargets();

struct CompileOptions {
  /// "cpu": the default pipeline (simplify, fuse, plan-memory), then kernels
  /// JIT-compiled through MLIR/LLVM. "interp": the reference interpreter runs
  /// the graph as given (no passes), the numerical oracle.
  std::string target = defaultTarget();
  /// Threads of the CPU kernels and BLAS, set on the calling thread at each
  /// run (OpenMP keeps the count per thread, and it stays set). 0 leaves the
  /// thread's count as it is: OpenMP's default (OMP_NUM_THREADS, else every
  /// core) unless something set it.
  int threads = 0;
  /// Initial values of params and state: their initializers, drawn from this seed.
  uint64_t seed = 0;
  /// Verify the graph after every pass (a pass that breaks the IR is a bug).
  bool verifyEach = false;
};

/// Results or feeds by name (a std::map, so `{{"x", x}, {"y", y}}` works).
using NamedTensors = TensorMap;

/// Bytes of the compiled step's memory plan (passes/memory/MemoryReport.h).
struct MemoryStats {
  int64_t arenaBytes = 0;   // the one arena all intermediate values live in
  int64_t maxLiveBytes = 0; // the lower bound for this schedule: the most bytes live at once
  int64_t argumentBytes = 0; // inputs, params and state, each in its own buffer
};

/// Which scalar of the graph is the loss: a Tensor of the builder that made
/// the graph (it need not be a result), or the name of a result.
class LossRef {
public:
  LossRef(Tensor tensor) : tensor_(tensor) {}
  LossRef(std::string resultName) : resultName_(std::move(resultName)) {}
  LossRef(const char *resultName) : resultName_(resultName) {}

  const Tensor &tensor() const { return tensor_; }
  const std::string &resultName() const { return resultName_; }

private:
  Tensor tensor_;
  std::string resultName_;
};

/// What a compiled graph and a compiled training step share: arguments by
/// name, params and state, save/load, the memory plan. Copies share one
/// compiled program and its params (like a torch::jit::Module handle).
class CompiledProgram {
public:
  /// The graph's name, and the target it was compiled for.
  const std::string &name() const;
  const std::string &target() const;

  /// Argument names by role, in the graph's order.
  std::vector<std::string> inputNames() const;
  std::vector<std::string> paramNames() const;
  std::vector<std::string> stateNames() const; // e.g. the optimizer's `fc1.weight.exp_avg`
  std::vector<std::string> resultNames() const;

  /// The current value of a param or state argument (a copy).
  HostTensor param(const std::string &name) const;
  /// Sets a param or state argument; its dtype and shape must match.
  void setParam(const std::string &name, const HostTensor &value);
  /// The params by name (PyTorch's named_parameters), the state by name
  /// (buffers such as running stats, the optimizer's state), or both
  /// (PyTorch's state_dict: what `save` writes).
  NamedTensors params() const;
  NamedTensors state() const;
  NamedTensors stateDict() const;
  /// Sets every tensor of `values` (each must name a param or state argument
  /// of matching type, or nothing is set); others keep their values. Copy a
  /// training step's params into an inference graph with
  /// `model.setParams(trainer.params())`.
  void setParams(const NamedTensors &values);

  /// Writes stateDict() to a safetensors file (atomically: a temporary
  /// file renamed over `path`).
  void save(const std::string &path) const;
  /// Reads a safetensors file written by `save` (or by PyTorch with the same
  /// names) with the rules of `setParams`. Returns how many tensors it set.
  size_t load(const std::string &path);

  /// The memory plan of the compiled step (for "interp", the plan the "cpu"
  /// pipeline would make, computed on first call).
  MemoryStats memory() const;

  struct Impl;

protected:
  explicit CompiledProgram(std::shared_ptr<Impl> impl);
  /// Checks and sets `feeds`, runs once, applies the updates; results by name.
  NamedTensors execute(const NamedTensors &feeds);

  std::shared_ptr<Impl> impl_;
};

/// An inference function: `run` maps input feeds to results.
class CompiledGraph : public CompiledProgram {
public:
  /// Runs the graph. `feeds` must give every input by name with its exact
  /// dtype and shape; an input with a default value (`{default = V}`) takes
  /// it when not fed. Returns every result by name (`out<i>` when unnamed).
  /// The graph's own `update`s (running statistics) are applied.
  NamedTensors run(const NamedTensors &feeds);

private:
  friend CompiledGraph compile(const Graph &, const CompileOptions &);
  using CompiledProgram::CompiledProgram;
};

/// A training step: forward, gradients and the optimizer update in one
/// compiled program. Params and optimizer state live inside it between steps.
class CompiledTrainingStep : public CompiledProgram {
public:
  /// One step on a batch: feeds as for CompiledGraph::run; updates every
  /// param and the optimizer state, and returns the graph's results on this
  /// batch (the loss among them).
  NamedTensors step(const NamedTensors &feeds);
  /// The loss's result name.
  const std::string &lossName() const;
  /// The learning rate of the next steps (the step's input `lr`; a schedule
  /// sets it before each step, nothing is recompiled).
  double learningRate() const;
  void setLearningRate(double lr);

private:
  friend CompiledTrainingStep compileTrainingStep(const Graph &, const LossRef &,
                                                  const OptimizerOptions &, const CompileOptions &);
  using CompiledProgram::CompiledProgram;
  std::string lossName_;
};

/// Compiles `graph` for inference. The graph is copied: it may be destroyed
/// afterwards. Throws kiln::Error for an unknown target, "cpu" in a build
/// without the CPU backend, or an op the target cannot run.
CompiledGraph compile(const Graph &graph, const CompileOptions &options = {});

/// Compiles the training step of `graph`: the gradient of `loss` with
/// respect to every float param (autodiff) and `optimizer`'s update, one
/// program. The graph's results stay results of the step; a loss Tensor that
/// is not a result becomes one named "loss".
CompiledTrainingStep compileTrainingStep(const Graph &graph, const LossRef &loss,
                                         const OptimizerOptions &optimizer,
                                         const CompileOptions &options = {});

/// PyTorch-style optimizer settings (torch.optim defaults otherwise).
namespace optim {
OptimizerOptions sgd(double lr);
OptimizerOptions momentum(double lr, double momentum = 0.9, bool nesterov = false);
OptimizerOptions adam(double lr = 1e-3);
OptimizerOptions adamw(double lr = 1e-3, double weightDecay = 0.01);
} // namespace optim

} // namespace kiln
