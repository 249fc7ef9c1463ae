// Initializers of params and state, recorded as attributes on the argument.
//
// The IR is the single source of a model's starting point: `param` and `state`
// arguments carry exactly one of these attribute sets, materialized from a
// seed by ir/ArgumentValues:
//   {init = "zeros"} | {init = "ones"} | {init = "constant", value = 0.5}
//   {init = "uniform", low = -0.1, high = 0.1} | {init = "normal", mean = 0.0, std = 0.02}
// Kaiming, Xavier and PyTorch's default Linear/Conv2d initializers are helpers
// that compute the bounds from the shape (PyTorch's fan and gain conventions,
// torch.nn.init) and emit "uniform" or "normal".
#pragma once

#include "ir/Attribute.h"
#include "runtime/Shape.h"

#include <optional>

namespace kiln {

/// The initializer of a param or state argument: its attributes, in the
/// canonical spellings above. Build one with the static functions.
struct Init {
  AttrMap attrs;

  static Init zeros();
  static Init ones();
  static Init constant(double value);
  static Init uniform(double low, double high);
  static Init normal(double mean, double std);
};

/// torch.nn.init's `mode`: which fan scales the variance.
enum class FanMode { FanIn, FanOut };

/// torch.nn.init.calculate_gain's nonlinearities.
enum class Nonlinearity { Linear, Conv, Sigmoid, Tanh, Relu, LeakyRelu, Selu };

/// PyTorch's fans (`_calculate_fan_in_and_fan_out`): for a shape [out, in, k...]
/// fanIn = in * prod(k), fanOut = out * prod(k). Rank < 2 is a kiln::Error.
struct Fans {
  int64_t fanIn;
  int64_t fanOut;
};
Fans computeFans(const Shape &shape);

/// torch.nn.init.calculate_gain: 1 (linear, conv, sigmoid), 5/3 (tanh),
/// sqrt(2) (relu), sqrt(2 / (1 + slope^2)) (leaky_relu; slope defaults to 0.01),
/// 3/4 (selu).
double calculateGain(Nonlinearity nonlinearity, std::optional<double> param = std::nullopt);

/// kaiming_uniform_: U(-b, b), b = gain * sqrt(3 / fan), gain = calculateGain(nl, a).
Init kaimingUniform(const Shape &shape, double a = 0.0, FanMode mode = FanMode::FanIn,
                    Nonlinearity nonlinearity = Nonlinearity::LeakyRelu);
/// kaiming_normal_: N(0, std^2), std = gain / sqrt(fan).
Init kaimingNormal(const Shape &shape, double a = 0.0, FanMode mode = FanMode::FanIn,
                   Nonlinearity nonlinearity = Nonlinearity::LeakyRelu);
/// xavier_uniform_: U(-b, b), b = gain * sqrt(6 / (fanIn + fanOut)).
Init xavierUniform(const Shape &shape, double gain = 1.0);
/// xavier_normal_: N(0, std^2), std = gain * sqrt(2 / (fanIn + fanOut)).
Init xavierNormal(const Shape &shape, double gain = 1.0);

/// PyTorch's default weight init of nn.Linear and nn.Conv2d:
/// kaiming_uniform_(a = sqrt(5)), i.e. U(-1/sqrt(fanIn), 1/sqrt(fanIn)) up to rounding.
Init torchDefaultWeightInit(const Shape &weightShape);
/// PyTorch's default bias init of nn.Linear and nn.Conv2d, from the weight's
/// shape: U(-1/sqrt(fanIn), 1/sqrt(fanIn)) (zero bound when fanIn is 0).
Init torchDefaultBiasInit(const Shape &weightShape);

} // namespace kiln
