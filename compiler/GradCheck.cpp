#include "compiler/GradCheck.h"

#include "compiler/TrainingStep.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "passes/autodiff/Autodiff.h"
#include "runtime/Error.h"
#include "runtime/Random.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kiln {

namespace {

HostTensor toF64(const HostTensor &t) {
  if (!isFloat(t.dtype()) || t.dtype() == DType::F64)
    return t;
  return HostTensor::fromDoubles(DType::F64, t.shape(), t.toDoubles());
}

/// The elements to check: the largest gradients (best signal over rounding
/// noise) and a seeded random sample (no region left out by construction).
std::vector<int64_t> chooseElements(const HostTensor &grad, int64_t count, uint64_t key) {
  int64_t n = grad.numElements();
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  if (n <= 2 * count)
    return all;
  std::partial_sort(all.begin(), all.begin() + count, all.end(), [&](int64_t a, int64_t b) {
    return std::fabs(grad.getDouble(a)) > std::fabs(grad.getDouble(b));
  });
  std::vector<int64_t> chosen(all.begin(), all.begin() + count);
  for (uint64_t c = 0; int64_t(chosen.size()) < 2 * count; ++c) {
    int64_t e = int64_t(uniformAt(key, c) * double(n));
    if (std::find(chosen.begin(), chosen.end(), e) == chosen.end())
      chosen.push_back(e);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

/// The f64 image of a model and the values of its arguments for a check.
struct F64Setup {
  std::unique_ptr<Graph> graph;
  size_t lossIndex = 0;
  TensorMap args;
};

F64Setup prepare(const Graph &model, const GradCheckOptions &options) {
  findLoss(model, options.lossName); // a located error before any work
  F64Setup setup;
  setup.graph = promoteFloatsToF64(model);
  while (!options.lossName.empty() && setup.graph->resultName(setup.lossIndex) != options.lossName)
    ++setup.lossIndex;
  for (const auto &arg : model.arguments()) {
    auto given = options.arguments.find(arg->name);
    setup.args[arg->name] = toF64(given != options.arguments.end()
                                      ? given->second
                                      : defaultArgumentValue(*arg, options.seed));
  }
  return setup;
}

} // namespace

TensorMap autodiffGradients(const Graph &model, const GradCheckOptions &options) {
  F64Setup setup = prepare(model, options);
  std::vector<Argument *> params;
  for (const auto &arg : setup.graph->arguments())
    if (arg->role == ArgRole::Param && isFloat(arg->value.type.dtype))
      params.push_back(arg.get());
  Graph &g = *setup.graph;
  std::vector<Value *> grads = appendGradients(g, g.results()[setup.lossIndex], params);
  size_t firstGrad = g.results().size();
  for (Value *v : grads)
    g.addResult(v);
  InterpreterResult r = interpret(g, setup.args, Precision::F64);
  TensorMap out;
  for (size_t p = 0; p < params.size(); ++p)
    out[params[p]->name] = r.results[firstGrad + p];
  return out;
}

std::vector<ParamGradCheck> checkGradients(const Graph &model, const GradCheckOptions &options) {
  return compareWithFiniteDifferences(model, autodiffGradients(model, options), options);
}

std::vector<ParamGradCheck> compareWithFiniteDifferences(const Graph &model,
                                                         const TensorMap &gradients,
                                                         const GradCheckOptions &options) {
  F64Setup setup = prepare(model, options);
  const Graph &f64 = *setup.graph;
  const TensorMap &args = setup.args;
  size_t lossIndex = setup.lossIndex;
  auto lossAt = [&](const TensorMap &values) {
    return interpret(f64, values, Precision::F64).results[lossIndex].getDouble(0);
  };
  std::vector<const Argument *> params;
  for (const auto &arg : f64.arguments())
    if (arg->role == ArgRole::Param && isFloat(arg->value.type.dtype))
      params.push_back(arg.get());

  std::vector<ParamGradCheck> report;
  for (size_t p = 0; p < params.size(); ++p) {
    const std::string &name = params[p]->name;
    auto found = gradients.find(name);
    if (found == gradients.end())
      throwError("@" + model.name(), "no gradient given for param '" + name + "'");
    const HostTensor &grad = found->second;
    ParamGradCheck check;
    check.name = name;
    check.totalElements = grad.numElements();
    TensorMap perturbed = args;
    HostTensor &x = perturbed.at(name);
    // A central difference is trusted where it agrees with the one at a
    // quarter of the step: on smooth ground both are within O(h^2) of the
    // derivative; across a kink (relu, max, pooling) they disagree. Where two
    // step sizes both disagree the element is skipped and another is drawn.
    std::vector<int64_t> elements = chooseElements(grad, options.elements, argumentKey(options.seed, name));
    double scale = 0;
    for (int64_t e : elements)
      scale = std::max(scale, std::fabs(grad.getDouble(e)));
    // The loss at x +- h: a central difference and a second difference.
    struct Differences {
      double central, second;
    };
    const double base = lossAt(perturbed);
    auto differences = [&](int64_t e, double h) {
      double original = x.getDouble(e);
      x.setDouble(e, original + h);
      double up = lossAt(perturbed);
      x.setDouble(e, original - h);
      double down = lossAt(perturbed);
      x.setDouble(e, original);
      return Differences{(up - down) / (2 * h), up - 2 * base + down};
    };
    double worstDiff = 0;
    uint64_t replacement = 1000;
    for (size_t k = 0; k < elements.size(); ++k) {
      int64_t e = elements[k];
      double a = grad.getDouble(e), numeric = NAN;
      double h = options.step * std::max(1.0, std::fabs(x.getDouble(e)));
      for (int level = 0; level < 2 && std::isnan(numeric); ++level, h /= 16) {
        Differences coarse = differences(e, h), fine = differences(e, h / 4);
        double allowed = options.tolerance * std::max(scale, std::fabs(fine.central));
        if (std::fabs(coarse.central - fine.central) > allowed)
          continue; // a kink between the two steps
        // A kink very near x fools that test (both differences cross it and
        // agree). The one-sided differences then disagree by the kink's slope
        // change, and the second difference shrinks only 4x from h to h/4 (16x
        // on smooth ground, where the disagreement is curvature).
        double oneSided = std::fabs(fine.second) / (h / 4);
        double ratio = fine.second != 0 ? coarse.second / fine.second : 16;
        if (oneSided <= allowed || (ratio > 10 && ratio < 22))
          numeric = fine.central;
      }
      if (std::isnan(numeric)) {
        ++check.skippedElements;
        if (replacement < 1000 + 8 * uint64_t(options.elements) && grad.numElements() > 1)
          elements.push_back(int64_t(uniformAt(argumentKey(options.seed, name), replacement++) *
                                     double(grad.numElements())));
        else
          ++replacement;
        continue;
      }
      double diff = std::fabs(a - numeric);
      if (std::isnan(diff))
        diff = INFINITY;
      scale = std::max({scale, std::fabs(a), std::fabs(numeric)});
      if (check.worstElement < 0 || diff > worstDiff) {
        worstDiff = diff;
        check.worstElement = e;
        check.analytic = a;
        check.numeric = numeric;
      }
      ++check.checkedElements;
    }
    // Relative error in the max norm over the checked elements: the largest
    // |analytic - numeric| over the largest gradient magnitude. Elementwise
    // relative errors of tiny gradients would measure only the rounding noise
    // of the differences (about eps * |loss| / h), not autodiff.
    check.worstRelativeError = worstDiff == 0 ? 0 : worstDiff / std::max(scale, 1e-300);
    if (options.onParam)
      options.onParam(check);
    report.push_back(check);
  }
  return report;
}

} // namespace kiln
