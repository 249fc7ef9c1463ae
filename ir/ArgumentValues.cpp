#include "ir/ArgumentValues.h"

#include "ir/Graph.h"

namespace kiln {

namespace {

double numberOr(const AttrMap &attrs, const char *name, double fallback) {
  const Attribute *a = attrs.find(name);
  return a ? a->asNumber() : fallback;
}

std::string checkNumbers(const AttrMap &attrs, std::initializer_list<const char *> allowed,
                         const std::string &what) {
  for (const auto &[name, value] : attrs) {
    if (name == "init")
      continue;
    bool known = false;
    for (const char *a : allowed)
      known = known || name == a;
    if (!known)
      return what + " takes no attribute '" + name + "'";
    if (!value.isNumber())
      return what + " attribute '" + name + "' must be a number, got " + value.toString();
  }
  return {};
}

/// The random-feed range of an input: its {low, high}, defaulting to [-1, 1)
/// for floats and i1, [0, 10) for integers.
std::pair<double, double> feedRange(const Argument &arg) {
  bool integer = isInteger(arg.value.type.dtype);
  return {numberOr(arg.attrs, "low", integer ? 0 : -1), numberOr(arg.attrs, "high", integer ? 10 : 1)};
}

} // namespace

std::string checkArgumentAttributes(const Argument &arg) {
  const AttrMap &attrs = arg.attrs;
  if (arg.role == ArgRole::Input) {
    if (attrs.find("init"))
      return "input '%" + arg.name + "' cannot have an initializer (only params and state do)";
    std::string problem =
        checkNumbers(attrs, {"low", "high", "default"}, "input '%" + arg.name + "'");
    if (!problem.empty())
      return problem;
    if (attrs.find("default") && (attrs.find("low") || attrs.find("high")))
      return "input '%" + arg.name + "' has a default value and a feed range; give one";
    auto [low, high] = feedRange(arg);
    if (!(low < high))
      return "input '%" + arg.name + "' feed range needs low < high, got [" + formatFloat(low) +
             ", " + formatFloat(high) + ")";
    return {};
  }
  const Attribute *init = attrs.find("init");
  std::string what = std::string(argRoleName(arg.role)) + " '%" + arg.name + "'";
  if (!init) {
    if (!attrs.empty())
      return what + " has attributes but no 'init'";
    return {};
  }
  if (!init->isString())
    return what + " 'init' must be a string, got " + init->toString();
  const std::string &kind = init->asString();
  if (kind == "zeros" || kind == "ones")
    return checkNumbers(attrs, {}, what + " with init \"" + kind + "\"");
  if (kind == "constant")
    return attrs.find("value") ? checkNumbers(attrs, {"value"}, what)
                               : what + " init \"constant\" needs 'value'";
  if (kind == "uniform") {
    std::string problem = checkNumbers(attrs, {"low", "high"}, what);
    if (problem.empty() && (!attrs.find("low") || !attrs.find("high")))
      return what + " init \"uniform\" needs 'low' and 'high'";
    if (problem.empty() && !(attrs.find("low")->asNumber() < attrs.find("high")->asNumber()))
      return what + " init \"uniform\" needs low < high";
    return problem;
  }
  if (kind == "normal") {
    std::string problem = checkNumbers(attrs, {"mean", "std"}, what);
    if (problem.empty() && !attrs.find("std"))
      return what + " init \"normal\" needs 'std'";
    if (problem.empty() && !(attrs.find("std")->asNumber() >= 0))
      return what + " init \"normal\" needs std >= 0";
    return problem;
  }
  return what + " has unknown init \"" + kind +
         "\" (expected zeros, ones, constant, uniform or normal)";
}

ArgumentInit argumentInit(const Argument &arg) {
  const AttrMap &attrs = arg.attrs;
  if (const Attribute *fixed = arg.role == ArgRole::Input ? attrs.find("default") : nullptr)
    return {ArgumentInit::Kind::Fill, fixed->asNumber(), 0};
  const Attribute *init = attrs.find("init");
  std::string kind = init ? init->asString() : arg.role == ArgRole::State ? "zeros" : "uniform";
  if (arg.role == ArgRole::Input || kind == "uniform") {
    auto [low, high] = feedRange(arg);
    return {ArgumentInit::Kind::Uniform, low, high};
  }
  if (kind == "normal")
    return {ArgumentInit::Kind::Normal, numberOr(attrs, "mean", 0), numberOr(attrs, "std", 1)};
  double fill = kind == "ones" ? 1 : kind == "constant" ? numberOr(attrs, "value", 0) : 0;
  return {ArgumentInit::Kind::Fill, fill, 0};
}

HostTensor defaultArgumentValue(const Argument &arg, uint64_t seed) {
  const TensorType &type = arg.value.type;
  return initialArgumentValue(arg.name, type.dtype, type.shape, argumentInit(arg), seed);
}

} // namespace kiln
