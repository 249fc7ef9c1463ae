// Modules in the style of libtorch's C++ frontend (torch::nn::Module).
//
// A module declares its parameters and buffers (name, dtype, shape,
// initializer) and registers its submodules in its constructor; `bind` then
// creates every one of them as a graph argument (params as `param`, buffers as
// `state`), named by its path joined with '.' exactly as PyTorch's state_dict
// names it (`fc1.weight`, `blocks.0.attn.qkv.weight`), in state_dict order,
// with PyTorch's layouts. So a safetensors file saved from a PyTorch model of
// the same structure loads unchanged.
//
//   struct Net : nn::Module {
//     Net() : Module("Net") { fc = registerModule("fc", std::make_shared<nn::Linear>(784, 10)); }
//     Tensor forward(Tensor x) override { return fc->forward(x); }
//     std::shared_ptr<nn::Linear> fc;
//   };
//   GraphBuilder b("net");
//   Tensor x = b.input("x", DType::F32, {128, 784});
//   Net net;
//   net.bind(b);                 // params fc.weight [10, 784], fc.bias [10]
//   b.output(net.forward(x), "y");
#pragma once

#include "frontend/GraphBuilder.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace kiln::nn {

/// A parameter or buffer a module declares. `init` may be changed before `bind`.
struct Parameter {
  std::string name; // the module-local name: "weight"
  DType dtype = DType::F32;
  Shape shape;
  Init init;
  bool isBuffer = false; // a buffer becomes a `state` argument, a parameter a `param`
  std::string path;      // the full state_dict name, set by bind: "fc1.weight"
  Tensor tensor;         // the graph argument, set by bind

  /// The bound argument; a kiln::Error before `bind`.
  Tensor value() const;
};

using NamedParameters = std::vector<std::pair<std::string, Parameter *>>;

class Module {
public:
  explicit Module(std::string typeName = "Module");
  virtual ~Module();
  Module(const Module &) = delete;
  Module &operator=(const Module &) = delete;

  const std::string &typeName() const { return typeName_; }

  /// The one-input forward that Sequential chains; modules without one throw.
  virtual Tensor forward(Tensor x);

  /// Creates every parameter and buffer of this module and its submodules as
  /// arguments of `builder`, in state_dict order, named `prefix` + path.
  void bind(GraphBuilder &builder, const std::string &prefix = "");

  /// PyTorch's state_dict order: this module's parameters, then its buffers,
  /// then each submodule's, in registration order.
  NamedParameters stateDict() const;
  NamedParameters namedParameters() const; // parameters only
  NamedParameters namedBuffers() const;    // buffers only
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>> &namedChildren() const {
    return children_;
  }

  /// Training mode (dropout, batch norm); applies to the submodules too.
  void train(bool on = true);
  void eval() { train(false); }
  bool isTraining() const { return training_; }

protected:
  Parameter *registerParameter(std::string name, Shape shape, Init init,
                               DType dtype = DType::F32);
  Parameter *registerBuffer(std::string name, Shape shape, Init init, DType dtype = DType::F32);
  template <typename M>
  std::shared_ptr<M> registerModule(std::string name, std::shared_ptr<M> module) {
    addChild(std::move(name), module);
    return module;
  }

private:
  void addChild(std::string name, std::shared_ptr<Module> module);
  Parameter *addParameter(Parameter p);
  void collect(const std::string &prefix, bool params, bool buffers, NamedParameters &out) const;

  std::string typeName_;
  bool training_ = true;
  std::vector<std::unique_ptr<Parameter>> params_; // parameters and buffers, in declaration order
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

/// torch.nn.Linear: weight [out, in], bias [out]; PyTorch's default init.
class Linear : public Module {
public:
  Linear(int64_t inFeatures, int64_t outFeatures, bool bias = true);
  Tensor forward(Tensor x) override;

  Parameter *weight;
  Parameter *bias = nullptr;
};

/// torch.nn.Conv2d: weight [out, in/groups, kh, kw], bias [out]; PyTorch's default init.
class Conv2d : public Module {
public:
  Conv2d(int64_t inChannels, int64_t outChannels, std::vector<int64_t> kernelSize,
         Conv2dOptions options = {}, bool bias = true);
  Conv2d(int64_t inChannels, int64_t outChannels, int64_t kernelSize, Conv2dOptions options = {},
         bool bias = true)
      : Conv2d(inChannels, outChannels, std::vector<int64_t>{kernelSize, kernelSize},
               std::move(options), bias) {}
  Tensor forward(Tensor x) override;

  Conv2dOptions options;
  Parameter *weight;
  Parameter *bias = nullptr;
};

/// torch.nn.LayerNorm over the trailing `normalizedShape`: weight ones, bias zeros.
class LayerNorm : public Module {
public:
  explicit LayerNorm(std::vector<int64_t> normalizedShape, double eps = 1e-5,
                     bool elementwiseAffine = true, bool bias = true);
  explicit LayerNorm(int64_t normalizedSize, double eps = 1e-5)
      : LayerNorm(std::vector<int64_t>{normalizedSize}, eps) {}
  Tensor forward(Tensor x) override;

  std::vector<int64_t> normalizedShape;
  double eps;
  Parameter *weight = nullptr;
  Parameter *bias = nullptr;
};

/// torch.nn.Embedding: weight [num, dim], initialized N(0, 1).
class Embedding : public Module {
public:
  Embedding(int64_t numEmbeddings, int64_t embeddingDim);
  Tensor forward(Tensor indices) override;

  Parameter *weight;
};

/// torch.nn.BatchNorm2d: weight, bias, and buffers running_mean, running_var,
/// num_batches_tracked (i64[]). Training forward updates the buffers.
class BatchNorm2d : public Module {
public:
  explicit BatchNorm2d(int64_t numFeatures, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(Tensor x) override;

  double eps, momentum;
  Parameter *weight, *bias, *runningMean, *runningVar, *numBatchesTracked;
};

/// A parameterless module around a function (torch::nn::Functional), e.g.
/// `std::make_shared<nn::Functional>(nn::relu)` as torch.nn.ReLU in a Sequential.
class Functional : public Module {
public:
  explicit Functional(std::function<Tensor(Tensor)> fn, std::string typeName = "Functional")
      : Module(std::move(typeName)), fn_(std::move(fn)) {}
  Tensor forward(Tensor x) override { return fn_(x); }

private:
  std::function<Tensor(Tensor)> fn_;
};

/// torch.nn.Sequential: submodules named "0", "1", ...; forward chains them.
class Sequential : public Module {
public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> module);
  size_t size() const { return namedChildren().size(); }
  Tensor forward(Tensor x) override;
};

/// torch.nn.ModuleList: submodules named "0", "1", ...; no forward of its own.
template <typename M> class ModuleList : public Module {
public:
  ModuleList() : Module("ModuleList") {}
  void push_back(std::shared_ptr<M> module) {
    modules_.push_back(registerModule(std::to_string(modules_.size()), std::move(module)));
  }
  size_t size() const { return modules_.size(); }
  M &operator[](size_t i) const { return *modules_.at(i); }
  auto begin() const { return modules_.begin(); }
  auto end() const { return modules_.end(); }

private:
  std::vector<std::shared_ptr<M>> modules_;
};

} // namespace kiln::nn
