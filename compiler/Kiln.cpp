// The public API of include/kiln/kiln.h: a graph (or its training step)
// through the default pipeline and a backend, behind feed/fetch by name.
#include "kiln/kiln.h"

#include "compiler/CpuBackend.h"
#include "compiler/TrainingStep.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Verifier.h"
#include "passes/PassManager.h"
#include "passes/memory/MemoryReport.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"
#ifdef KILN_HAVE_CPU_BACKEND
#include "runtime/cpu/Executable.h"
#include "runtime/cpu/Threads.h"
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <set>
#include <unordered_map>

namespace kiln {

std::vector<std::string> availableTargets() {
  if (cpuBackendAvailable())
    return {"cpu", "interp"};
  return {"interp"};
}

std::string defaultTarget() { return availableTargets().front(); }

namespace {

std::string joinNames(const std::vector<std::string> &names) {
  std::string out;
  for (const std::string &n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

std::string typeOf(const Argument &arg) { return arg.value.type.toString(); }

bool hasType(const HostTensor &t, const Argument &arg) {
  return t.dtype() == arg.value.type.dtype && t.shape() == arg.value.type.shape;
}

MemoryStats planStats(const Graph &planned) {
  nlohmann::json report = nlohmann::json::parse(memoryReport(planned, /*json=*/true));
  MemoryStats stats;
  if (report.value("planned", false)) {
    stats.arenaBytes = report.at("arena_bytes").get<int64_t>();
    stats.maxLiveBytes = report.at("max_live_bytes").get<int64_t>();
  }
  for (const auto &arg : planned.arguments())
    stats.argumentBytes += arg->value.type.numElements() * int64_t(dtypeSize(arg->value.type.dtype));
  return stats;
}

std::unique_ptr<Graph> planForCpu(const Graph &graph, bool verifyEach) {
  std::unique_ptr<Graph> planned = cloneGraph(graph);
  PassManagerOptions options;
  options.verifyEach = verifyEach;
  runPasses(*planned, parsePassPipeline(defaultPipeline()), options);
  return planned;
}

} // namespace

/// The state behind a CompiledProgram. `graph` is the program as the user
/// sees it (for a training step: the step, before any pass); argument names,
/// roles and types come from it whatever the target.
struct CompiledProgram::Impl {
  std::string where; // "@name", the location of every error about calls
  std::string target;
  bool verifyEach = false;
  int threads = 0;
  std::unique_ptr<Graph> graph;
  /// Values of inputs that have a `default` attribute (the learning rate).
  TensorMap inputDefaults;
  /// interp: the current value of every param and state argument.
  TensorMap persistent;
  /// cpu: the planned graph and its compiled program.
  std::unique_ptr<Graph> planned;
  std::shared_ptr<CpuCompiled> cpu;
  mutable std::optional<MemoryStats> memory;

  const Argument &persistentArgument(const std::string &name, const std::string &at) const {
    const Argument *arg = graph->findArgument(name);
    if (!arg || arg->role == ArgRole::Input) {
      std::vector<std::string> names;
      for (const auto &a : graph->arguments())
        if (a->role != ArgRole::Input)
          names.push_back(a->name);
      throwError(at, "no param or state named '" + name + "' in " + where +
                         " (it has: " + joinNames(names) + ")");
    }
    return *arg;
  }

  void checkPersistent(const NamedTensors &values, const std::string &at) const {
    for (const auto &[name, value] : values) {
      const Argument &arg = persistentArgument(name, at);
      if (!hasType(value, arg))
        throwError(at, "'" + name + "' has type " + value.typeString() + " but " + where +
                           " expects " + typeOf(arg));
    }
  }

  HostTensor get(const std::string &name) const {
#ifdef KILN_HAVE_CPU_BACKEND
    if (cpu)
      return cpu->executable->argument(name);
#endif
    return persistent.at(name);
  }

  void set(const std::string &name, const HostTensor &value) {
#ifdef KILN_HAVE_CPU_BACKEND
    if (cpu) {
      cpu->executable->setArgument(name, value);
      return;
    }
#endif
    persistent[name] = value;
  }

  TensorMap values(std::initializer_list<ArgRole> roles) const {
    TensorMap out;
    for (const auto &arg : graph->arguments())
      if (std::find(roles.begin(), roles.end(), arg->role) != roles.end())
        out[arg->name] = get(arg->name);
    return out;
  }

  /// Every input's value for one call: the feed, else the input's default
  /// (pointers into `feeds` and `inputDefaults`, no copies).
  std::vector<std::pair<const std::string *, const HostTensor *>>
  inputsFor(const NamedTensors &feeds) const {
    for (const auto &[name, value] : feeds) {
      const Argument *arg = graph->findArgument(name);
      if (!arg) {
        std::vector<std::string> inputs;
        for (const auto &a : graph->arguments())
          if (a->role == ArgRole::Input)
            inputs.push_back(a->name);
        throwError(where, "feed '" + name + "' is not an input (inputs: " + joinNames(inputs) + ")");
      }
      if (arg->role != ArgRole::Input)
        throwError(where, "feed '" + name + "' names a " +
                              (arg->role == ArgRole::Param ? "param" : "state") +
                              ", not an input (set it with setParam)");
      if (!hasType(value, *arg))
        throwError(where, "feed '" + name + "' has type " + value.typeString() +
                              " but the input expects " + typeOf(*arg));
    }
    std::vector<std::pair<const std::string *, const HostTensor *>> inputs;
    for (const auto &arg : graph->arguments()) {
      if (arg->role != ArgRole::Input)
        continue;
      auto fed = feeds.find(arg->name);
      auto fallback = inputDefaults.find(arg->name);
      if (fed != feeds.end())
        inputs.emplace_back(&arg->name, &fed->second);
      else if (fallback != inputDefaults.end())
        inputs.emplace_back(&arg->name, &fallback->second);
      else
        throwError(where, "no feed for input '" + arg->name + "' (" + typeOf(*arg) + ")");
    }
    return inputs;
  }

  NamedTensors execute(const NamedTensors &feeds) {
    auto inputs = inputsFor(feeds);
    NamedTensors results;
#ifdef KILN_HAVE_CPU_BACKEND
    if (cpu) {
      cpu::Executable &exe = *cpu->executable;
      if (threads > 0)
        cpu::setNumThreads(threads);
      for (const auto &[name, value] : inputs)
        exe.setArgument(*name, *value);
      exe.run();
      for (size_t i = 0; i < exe.numResults(); ++i)
        results[exe.program().results[i].name] = exe.result(i);
      return results;
    }
#endif
    TensorMap arguments = persistent;
    for (const auto &[name, value] : inputs)
      arguments[*name] = *value;
    InterpreterResult out = interpret(*graph, arguments, Precision::Native);
    for (auto &[name, value] : out.updated)
      persistent[name] = std::move(value);
    for (size_t i = 0; i < out.results.size(); ++i)
      results[graph->resultName(i)] = std::move(out.results[i]);
    return results;
  }
};

namespace {

/// Checks the options and the graph, gives every argument its initial value
/// and compiles `graph` for the target.
std::shared_ptr<CompiledProgram::Impl> buildProgram(std::unique_ptr<Graph> graph,
                                                    const CompileOptions &options) {
  const std::string where = "kiln::compile";
  std::vector<std::string> targets = availableTargets();
  if (options.target == "cpu" && !cpuBackendAvailable())
    throwError(where, "target 'cpu' is not in this build (configure with "
                      "-DKILN_ENABLE_CPU_BACKEND=ON); it has: " + joinNames(targets));
  if (std::find(targets.begin(), targets.end(), options.target) == targets.end())
    throwError(where, "unknown target '" + options.target + "' (this build has: " +
                          joinNames(targets) + ")");
  if (options.threads < 0)
    throwError(where, "threads must be 0 (the default) or more, got " +
                          std::to_string(options.threads));
  verifyGraph(*graph);
  std::set<std::string> resultNames;
  for (size_t i = 0; i < graph->results().size(); ++i)
    if (!resultNames.insert(graph->resultName(i)).second)
      throwError("@" + graph->name(), "two results are named '" + graph->resultName(i) +
                                          "': results are returned by name");

  auto impl = std::make_shared<CompiledProgram::Impl>();
  impl->where = "@" + graph->name();
  impl->target = options.target;
  impl->verifyEach = options.verifyEach;
  impl->threads = options.threads;
  for (const auto &arg : graph->arguments()) {
    if (arg->role != ArgRole::Input)
      impl->persistent[arg->name] = defaultArgumentValue(*arg, options.seed);
    else if (arg->attrs.find("default"))
      impl->inputDefaults[arg->name] = defaultArgumentValue(*arg, options.seed);
  }
  impl->graph = std::move(graph);
  if (options.target == "cpu") {
    impl->planned = planForCpu(*impl->graph, options.verifyEach);
    impl->cpu = compileForCpu(*impl->planned);
    impl->memory = planStats(*impl->planned);
    for (const auto &[name, value] : impl->persistent)
      impl->set(name, value);
    impl->persistent.clear(); // they live in the executable now
  }
  return impl;
}

} // namespace

CompiledProgram::CompiledProgram(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

const std::string &CompiledProgram::name() const { return impl_->graph->name(); }
const std::string &CompiledProgram::target() const { return impl_->target; }

namespace {
std::vector<std::string> namesWithRole(const Graph &graph, ArgRole role) {
  std::vector<std::string> names;
  for (const auto &arg : graph.arguments())
    if (arg->role == role)
      names.push_back(arg->name);
  return names;
}
} // namespace

std::vector<std::string> CompiledProgram::inputNames() const {
  return namesWithRole(*impl_->graph, ArgRole::Input);
}
std::vector<std::string> CompiledProgram::paramNames() const {
  return namesWithRole(*impl_->graph, ArgRole::Param);
}
std::vector<std::string> CompiledProgram::stateNames() const {
  return namesWithRole(*impl_->graph, ArgRole::State);
}
std::vector<std::string> CompiledProgram::resultNames() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < impl_->graph->results().size(); ++i)
    names.push_back(impl_->graph->resultName(i));
  return names;
}

HostTensor CompiledProgram::param(const std::string &name) const {
  impl_->persistentArgument(name, impl_->where);
  return impl_->get(name);
}

void CompiledProgram::setParam(const std::string &name, const HostTensor &value) {
  setParams(NamedTensors{{name, value}});
}

NamedTensors CompiledProgram::params() const { return impl_->values({ArgRole::Param}); }
NamedTensors CompiledProgram::state() const { return impl_->values({ArgRole::State}); }
NamedTensors CompiledProgram::stateDict() const {
  return impl_->values({ArgRole::Param, ArgRole::State});
}

void CompiledProgram::setParams(const NamedTensors &values) {
  impl_->checkPersistent(values, impl_->where); // all checked before any is set
  for (const auto &[name, value] : values)
    impl_->set(name, value);
}

void CompiledProgram::save(const std::string &path) const { writeSafetensors(path, stateDict()); }

size_t CompiledProgram::load(const std::string &path) {
  TensorMap values = readSafetensors(path);
  impl_->checkPersistent(values, path);
  for (const auto &[name, value] : values)
    impl_->set(name, value);
  return values.size();
}

MemoryStats CompiledProgram::memory() const {
  if (!impl_->memory)
    impl_->memory = planStats(*planForCpu(*impl_->graph, impl_->verifyEach));
  return *impl_->memory;
}

NamedTensors CompiledProgram::execute(const NamedTensors &feeds) { return impl_->execute(feeds); }

NamedTensors CompiledGraph::run(const NamedTensors &feeds) { return execute(feeds); }

NamedTensors CompiledTrainingStep::step(const NamedTensors &feeds) { return execute(feeds); }

const std::string &CompiledTrainingStep::lossName() const { return lossName_; }

double CompiledTrainingStep::learningRate() const {
  return impl_->inputDefaults.at("lr").getDouble(0);
}

void CompiledTrainingStep::setLearningRate(double lr) {
  impl_->inputDefaults.at("lr").setDouble(0, lr);
}

CompiledGraph compile(const Graph &graph, const CompileOptions &options) {
  return CompiledGraph(buildProgram(cloneGraph(graph), options));
}

namespace {

/// `graph`'s value that `tensor` refers to; a kiln::Error when it is not one.
const Value *findValue(const Graph &graph, const Tensor &tensor) {
  for (const auto &arg : graph.arguments())
    if (&arg->value == tensor.value())
      return tensor.value();
  for (const auto &node : graph.nodes())
    if (node->result() == tensor.value())
      return tensor.value();
  throwError("@" + graph.name(), "the loss tensor is not a value of this graph (it was built by "
                                 "another GraphBuilder)");
}

} // namespace

CompiledTrainingStep compileTrainingStep(const Graph &graph, const LossRef &loss,
                                         const OptimizerOptions &optimizer,
                                         const CompileOptions &options) {
  std::string lossName = loss.resultName();
  std::unique_ptr<Graph> model;
  if (loss.tensor().defined()) {
    const Value *value = findValue(graph, loss.tensor());
    std::unordered_map<const Value *, Value *> mapping;
    model = cloneGraph(graph, &mapping);
    Value *copy = mapping.at(value);
    const auto &results = model->results();
    auto it = std::find(results.begin(), results.end(), copy);
    if (it != results.end()) {
      lossName = model->resultName(size_t(it - results.begin()));
    } else {
      for (size_t i = 0; i < results.size(); ++i)
        if (model->resultName(i) == "loss")
          throwError("@" + graph.name(), "the loss tensor is not a result, and the name 'loss' is "
                                         "taken by another one: pass the loss by its result name");
      model->addResult(copy, "loss");
      lossName = "loss";
    }
  }
  std::unique_ptr<Graph> step = buildTrainingStep(model ? *model : graph, optimizer, lossName);
  if (lossName.empty())
    lossName = step->resultName(0);
  CompiledTrainingStep compiled(buildProgram(std::move(step), options));
  compiled.lossName_ = lossName;
  return compiled;
}

namespace optim {

OptimizerOptions sgd(double lr) {
  OptimizerOptions o;
  o.kind = OptimizerKind::Sgd;
  o.learningRate = lr;
  return o;
}

OptimizerOptions momentum(double lr, double momentum, bool nesterov) {
  OptimizerOptions o;
  o.kind = nesterov ? OptimizerKind::Nesterov : OptimizerKind::Momentum;
  o.learningRate = lr;
  o.momentum = momentum;
  return o;
}

OptimizerOptions adam(double lr) {
  OptimizerOptions o;
  o.kind = OptimizerKind::Adam;
  o.learningRate = lr;
  return o;
}

OptimizerOptions adamw(double lr, double weightDecay) {
  OptimizerOptions o;
  o.kind = OptimizerKind::AdamW;
  o.learningRate = lr;
  o.weightDecay = weightDecay;
  return o;
}

} // namespace optim

} // namespace kiln
