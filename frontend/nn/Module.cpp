#include "frontend/nn/Module.h"

#include "frontend/nn/Functional.h"
#include "runtime/Error.h"

namespace kiln::nn {

Tensor Parameter::value() const {
  if (!tensor.defined())
    throwError("", "parameter '" + (path.empty() ? name : path) +
                       "' is used before Module::bind created it in a graph");
  return tensor;
}

// ---- Module ------------------------------------------------------------------

Module::Module(std::string typeName) : typeName_(std::move(typeName)) {}

Module::~Module() = default;

Tensor Module::forward(Tensor) {
  throwError("", "module " + typeName_ + " has no one-input forward");
}

Parameter *Module::addParameter(Parameter p) {
  for (const auto &existing : params_)
    if (existing->name == p.name)
      throwError("", typeName_ + " registers '" + p.name + "' twice");
  for (const auto &[childName, child] : children_)
    if (childName == p.name)
      throwError("", typeName_ + " registers '" + p.name + "' as a parameter and a submodule");
  params_.push_back(std::make_unique<Parameter>(std::move(p)));
  return params_.back().get();
}

Parameter *Module::registerParameter(std::string name, Shape shape, Init init, DType dtype) {
  Parameter p;
  p.name = std::move(name);
  p.dtype = dtype;
  p.shape = std::move(shape);
  p.init = std::move(init);
  return addParameter(std::move(p));
}

Parameter *Module::registerBuffer(std::string name, Shape shape, Init init, DType dtype) {
  Parameter p;
  p.name = std::move(name);
  p.dtype = dtype;
  p.shape = std::move(shape);
  p.init = std::move(init);
  p.isBuffer = true;
  return addParameter(std::move(p));
}

void Module::addChild(std::string name, std::shared_ptr<Module> module) {
  if (!module)
    throwError("", typeName_ + " registers a null submodule '" + name + "'");
  bool clash = name.empty() || name.find('.') != std::string::npos;
  for (const auto &[childName, child] : children_)
    clash = clash || childName == name;
  for (const auto &p : params_)
    clash = clash || p->name == name;
  if (clash)
    throwError("", typeName_ + " cannot register a submodule named '" + name +
                       "': empty, dotted, or already taken");
  module->train(training_);
  children_.emplace_back(std::move(name), std::move(module));
}

void Module::collect(const std::string &prefix, bool params, bool buffers,
                     NamedParameters &out) const {
  for (bool wantBuffers : {false, true}) {
    if (wantBuffers ? !buffers : !params)
      continue;
    for (const auto &p : params_)
      if (p->isBuffer == wantBuffers)
        out.emplace_back(prefix + p->name, p.get());
  }
  for (const auto &[name, child] : children_)
    child->collect(prefix + name + ".", params, buffers, out);
}

NamedParameters Module::stateDict() const {
  NamedParameters out;
  collect("", true, true, out);
  return out;
}

NamedParameters Module::namedParameters() const {
  NamedParameters out;
  collect("", true, false, out);
  return out;
}

NamedParameters Module::namedBuffers() const {
  NamedParameters out;
  collect("", false, true, out);
  return out;
}

void Module::bind(GraphBuilder &builder, const std::string &prefix) {
  for (auto &[name, p] : stateDict()) {
    p->path = prefix + name;
    p->tensor = p->isBuffer ? builder.state(p->path, p->dtype, p->shape, p->init)
                            : builder.param(p->path, p->dtype, p->shape, p->init);
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto &[name, child] : children_)
    child->train(on);
}

// ---- Linear ------------------------------------------------------------------

Linear::Linear(int64_t inFeatures, int64_t outFeatures, bool withBias) : Module("Linear") {
  Shape w{outFeatures, inFeatures};
  weight = registerParameter("weight", w, torchDefaultWeightInit(w));
  if (withBias)
    bias = registerParameter("bias", {outFeatures}, torchDefaultBiasInit(w));
}

Tensor Linear::forward(Tensor x) {
  Tensor w = weight->value();
  return linear(x, w, bias ? bias->value() : Tensor());
}

// ---- Conv2d ------------------------------------------------------------------

Conv2d::Conv2d(int64_t inChannels, int64_t outChannels, std::vector<int64_t> kernelSize,
               Conv2dOptions convOptions, bool withBias)
    : Module("Conv2d"), options(std::move(convOptions)) {
  if (kernelSize.size() != 2 || options.groups < 1 || inChannels % options.groups ||
      outChannels % options.groups)
    throwError("", "Conv2d expects a [kh, kw] kernel and channels " + std::to_string(inChannels) +
                       " -> " + std::to_string(outChannels) + " divisible by groups " +
                       std::to_string(options.groups));
  Shape w{outChannels, inChannels / options.groups, kernelSize[0], kernelSize[1]};
  weight = registerParameter("weight", w, torchDefaultWeightInit(w));
  if (withBias)
    bias = registerParameter("bias", {outChannels}, torchDefaultBiasInit(w));
}

Tensor Conv2d::forward(Tensor x) {
  Tensor y = conv2d(x, weight->value(), options);
  if (!bias)
    return y;
  // The bias is per output channel: dim 1 of NCHW.
  return y + broadcast(bias->value(), y.shape(), {1});
}

// ---- LayerNorm ---------------------------------------------------------------

LayerNorm::LayerNorm(std::vector<int64_t> shape, double epsilon, bool elementwiseAffine,
                     bool withBias)
    : Module("LayerNorm"), normalizedShape(std::move(shape)), eps(epsilon) {
  if (elementwiseAffine) {
    weight = registerParameter("weight", Shape(normalizedShape), Init::ones());
    if (withBias)
      bias = registerParameter("bias", Shape(normalizedShape), Init::zeros());
  }
}

Tensor LayerNorm::forward(Tensor x) {
  int64_t rank = int64_t(normalizedShape.size());
  std::vector<int64_t> trailing;
  for (int64_t i = int64_t(x.rank()) - rank; i >= 0 && i < int64_t(x.rank()); ++i)
    trailing.push_back(x.shape()[size_t(i)]);
  if (trailing != normalizedShape)
    x.builder().fail("LayerNorm over " + Shape(normalizedShape).toString() +
                     " does not match the trailing dims of " + x.type().toString());
  return layerNorm(x, rank, weight ? weight->value() : Tensor(), bias ? bias->value() : Tensor(),
                   eps);
}

// ---- Embedding ---------------------------------------------------------------

Embedding::Embedding(int64_t numEmbeddings, int64_t embeddingDim) : Module("Embedding") {
  weight = registerParameter("weight", {numEmbeddings, embeddingDim}, Init::normal(0.0, 1.0));
}

Tensor Embedding::forward(Tensor indices) { return embedding(indices, weight->value()); }

// ---- BatchNorm2d -------------------------------------------------------------

BatchNorm2d::BatchNorm2d(int64_t numFeatures, double epsilon, double m)
    : Module("BatchNorm2d"), eps(epsilon), momentum(m) {
  weight = registerParameter("weight", {numFeatures}, Init::ones());
  bias = registerParameter("bias", {numFeatures}, Init::zeros());
  runningMean = registerBuffer("running_mean", {numFeatures}, Init::zeros());
  runningVar = registerBuffer("running_var", {numFeatures}, Init::ones());
  numBatchesTracked = registerBuffer("num_batches_tracked", {}, Init::zeros(), DType::I64);
}

Tensor BatchNorm2d::forward(Tensor x) {
  if (x.rank() != 4)
    x.builder().fail("BatchNorm2d expects NCHW input, got " + x.type().toString());
  BatchNormRunningStats running{runningMean->value(), runningVar->value(), momentum};
  if (isTraining()) {
    Tensor count = numBatchesTracked->value();
    x.builder().update(count, count + 1.0);
  }
  return batchNorm(x, weight->value(), bias->value(), isTraining(), &running, eps);
}

// ---- Sequential --------------------------------------------------------------

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules)
    : Module("Sequential") {
  for (const auto &m : modules)
    push_back(m);
}

void Sequential::push_back(std::shared_ptr<Module> module) {
  registerModule(std::to_string(size()), std::move(module));
}

Tensor Sequential::forward(Tensor x) {
  for (const auto &[name, module] : namedChildren())
    x = module->forward(x);
  return x;
}

} // namespace kiln::nn
