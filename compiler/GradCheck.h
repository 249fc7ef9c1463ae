// Checking autodiff against central finite differences (`kiln check-grad`).
#pragma once

#include "runtime/Safetensors.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kiln {

class Graph;

struct ParamGradCheck;

struct GradCheckOptions {
  /// Argument values by name; the others come from `seed` as in `kiln run`.
  TensorMap arguments;
  uint64_t seed = 0;
  std::string lossName; // empty: the first result
  /// Elements checked per param: all of a small param; otherwise the
  /// `elements` with the largest gradient and `elements` more at random.
  int64_t elements = 4;
  /// Relative step of the central differences: h = step * max(1, |x|); a
  /// difference is trusted when it agrees with the one at h / 4 and the
  /// second differences at h and h / 4 scale as on smooth ground (else h / 16
  /// and h / 64 are tried, else the element sits on a kink and is replaced).
  double step = 1e-4;
  /// The agreement asked of the two differences, relative to the gradient scale.
  double tolerance = 1e-6;
  /// Called as each param is done (progress for long checks).
  std::function<void(const ParamGradCheck &)> onParam;
};

struct ParamGradCheck {
  std::string name;
  int64_t checkedElements = 0;
  int64_t skippedElements = 0; // on a kink at every step size tried
  int64_t totalElements = 0;
  double worstRelativeError = 0;
  int64_t worstElement = -1;        // where |analytic - numeric| is largest
  double analytic = 0, numeric = 0; // at that element
};

/// For every float param of `model`: its gradient from the autodiff graph
/// versus central finite differences of the loss, everything in f64 through
/// the interpreter (the graph is promoted to f64 first). A param's relative
/// error is max |a - n| / max(|a|, |n|) over its checked elements (the max
/// norm), reported with the element where |a - n| is largest.
std::vector<ParamGradCheck> checkGradients(const Graph &model, const GradCheckOptions &options);

/// The two halves of `checkGradients`: the gradient of every float param by
/// name, from autodiff in f64; and the comparison of given gradients with
/// finite differences (so that a test can show a wrong gradient is caught).
TensorMap autodiffGradients(const Graph &model, const GradCheckOptions &options);
std::vector<ParamGradCheck> compareWithFiniteDifferences(const Graph &model,
                                                         const TensorMap &gradients,
                                                         const GradCheckOptions &options);

} // namespace kiln
