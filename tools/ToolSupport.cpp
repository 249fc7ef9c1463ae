#include "ToolSupport.h"

#include "runtime/Error.h"
#include "runtime/Feeds.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>

namespace kiln {
namespace cli {

std::string summarize(const std::string &name, const HostTensor &t) {
  char buf[256];
  if (t.numElements() == 1) {
    std::snprintf(buf, sizeof buf, "%s: %s = %.9g", name.c_str(), t.typeString().c_str(),
                  t.getDouble(0));
    return buf;
  }
  if (t.numElements() == 0)
    return name + ": " + t.typeString() + " (empty)";
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  int64_t nonFinite = 0;
  for (int64_t i = 0; i < t.numElements(); ++i) {
    double v = t.getDouble(i);
    if (!std::isfinite(v)) {
      ++nonFinite;
      continue;
    }
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  std::snprintf(buf, sizeof buf, "%s: %s min %.6g mean %.6g max %.6g", name.c_str(),
                t.typeString().c_str(), lo, sum / double(t.numElements() - nonFinite), hi);
  std::string s = buf;
  if (nonFinite)
    s += " (" + std::to_string(nonFinite) + " non-finite)";
  return s;
}

const kiln::Graph &selectGraph(const kiln::Module &module, const std::string &name,
                               const std::string &file) {
  if (name.empty()) {
    if (module.graphs.size() > 1)
      kiln::throwError(file, "holds " + std::to_string(module.graphs.size()) +
                                 " graphs; choose one with --graph=NAME");
    return *module.graphs[0];
  }
  for (const auto &g : module.graphs)
    if (g->name() == name)
      return *g;
  kiln::throwError(file, "has no graph @" + name);
}

void checkFeeds(const kiln::Graph &graph, const TensorMap &tensors, const std::string &source) {
  for (const auto &[name, t] : tensors) {
    const kiln::Argument *arg = graph.findArgument(name);
    if (!arg) {
      std::string names;
      for (const auto &a : graph.arguments())
        names += (names.empty() ? "" : ", ") + a->name;
      kiln::throwError(source, "tensor '" + name + "' is not an argument of @" + graph.name() +
                                   " (its arguments: " + names + ")");
    }
    if (t.dtype() != arg->value.type.dtype || t.shape() != arg->value.type.shape)
      kiln::throwError(source, "tensor '" + name + "' has type " + t.typeString() + " but @" +
                                   graph.name() + " expects " + arg->value.type.toString());
  }
}

TensorMap loadFeeds(const kiln::Graph &graph, const std::string &spec) {
  return kiln::readFeedList(spec, [&](const TensorMap &tensors, const std::string &source) {
    checkFeeds(graph, tensors, source);
  });
}

double getDouble(const kiln::CommandLine &cl, const std::string &name, double fallback) {
  if (!cl.has(name))
    return fallback;
  std::string text = cl.get(name);
  char *end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end || !std::isfinite(v))
    kiln::throwError("", "option '" + name + "' expects a number, got '" + text + "'");
  return v;
}

kiln::OptimizerOptions optimizerOptions(const kiln::CommandLine &cl) {
  std::string name = cl.get("--optimizer", "sgd");
  std::optional<kiln::OptimizerKind> kind = kiln::parseOptimizerKind(name);
  if (!kind)
    kiln::throwError("", "unknown optimizer '" + name +
                             "' (expected sgd, momentum, nesterov, adam or adamw)");
  kiln::OptimizerOptions options;
  options.kind = *kind;
  options.learningRate = getDouble(cl, "--lr", options.learningRate);
  options.momentum = getDouble(cl, "--momentum", options.momentum);
  if (cl.has("--weight-decay"))
    options.weightDecay = getDouble(cl, "--weight-decay", 0);
  options.clipNorm = getDouble(cl, "--clip-norm", 0);
  if (options.clipNorm < 0)
    kiln::throwError("", "--clip-norm must be >= 0");
  return options;
}

} // namespace cli
} // namespace kiln
