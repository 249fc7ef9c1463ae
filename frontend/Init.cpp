#include "frontend/Init.h"

#include "runtime/Error.h"

#include <cmath>

namespace kiln {

Init Init::zeros() {
  Init init;
  init.attrs.set("init", "zeros");
  return init;
}

Init Init::ones() {
  Init init;
  init.attrs.set("init", "ones");
  return init;
}

Init Init::constant(double value) {
  Init init;
  init.attrs.set("init", "constant");
  init.attrs.set("value", value);
  return init;
}

Init Init::uniform(double low, double high) {
  if (!(low <= high))
    throwError("", "uniform initializer needs low <= high, got low " + formatFloat(low) +
                       ", high " + formatFloat(high));
  Init init;
  init.attrs.set("init", "uniform");
  init.attrs.set("low", low);
  init.attrs.set("high", high);
  return init;
}

Init Init::normal(double mean, double std) {
  if (!(std >= 0))
    throwError("", "normal initializer needs std >= 0, got " + formatFloat(std));
  Init init;
  init.attrs.set("init", "normal");
  init.attrs.set("mean", mean);
  init.attrs.set("std", std);
  return init;
}

Fans computeFans(const Shape &shape) {
  if (shape.rank() < 2)
    throwError("", "fan in and fan out cannot be computed for shape " + shape.toString() +
                       " with fewer than 2 dimensions");
  int64_t receptive = 1;
  for (size_t i = 2; i < shape.rank(); ++i)
    receptive *= shape[i];
  return Fans{shape[1] * receptive, shape[0] * receptive};
}

double calculateGain(Nonlinearity nonlinearity, std::optional<double> param) {
  switch (nonlinearity) {
  case Nonlinearity::Linear:
  case Nonlinearity::Conv:
  case Nonlinearity::Sigmoid:
    return 1.0;
  case Nonlinearity::Tanh:
    return 5.0 / 3;
  case Nonlinearity::Relu:
    return std::sqrt(2.0);
  case Nonlinearity::LeakyRelu: {
    double slope = param.value_or(0.01);
    return std::sqrt(2.0 / (1 + slope * slope));
  }
  case Nonlinearity::Selu:
    return 3.0 / 4;
  }
  return 1.0;
}

namespace {

/// kaiming's std, computed in PyTorch's order of operations so the bounds match
/// torch.nn.init bit for bit.
double kaimingStd(const Shape &shape, double a, FanMode mode, Nonlinearity nonlinearity) {
  Fans fans = computeFans(shape);
  int64_t fan = mode == FanMode::FanIn ? fans.fanIn : fans.fanOut;
  if (fan <= 0)
    throwError("", "kaiming initialization of the zero-element shape " + shape.toString());
  return calculateGain(nonlinearity, a) / std::sqrt(double(fan));
}

double xavierStd(const Shape &shape, double gain) {
  Fans fans = computeFans(shape);
  if (fans.fanIn + fans.fanOut <= 0)
    throwError("", "xavier initialization of the zero-element shape " + shape.toString());
  return gain * std::sqrt(2.0 / double(fans.fanIn + fans.fanOut));
}

} // namespace

Init kaimingUniform(const Shape &shape, double a, FanMode mode, Nonlinearity nonlinearity) {
  double bound = std::sqrt(3.0) * kaimingStd(shape, a, mode, nonlinearity);
  return Init::uniform(-bound, bound);
}

Init kaimingNormal(const Shape &shape, double a, FanMode mode, Nonlinearity nonlinearity) {
  return Init::normal(0.0, kaimingStd(shape, a, mode, nonlinearity));
}

Init xavierUniform(const Shape &shape, double gain) {
  double bound = std::sqrt(3.0) * xavierStd(shape, gain);
  return Init::uniform(-bound, bound);
}

Init xavierNormal(const Shape &shape, double gain) {
  return Init::normal(0.0, xavierStd(shape, gain));
}

Init torchDefaultWeightInit(const Shape &weightShape) {
  return kaimingUniform(weightShape, std::sqrt(5.0));
}

Init torchDefaultBiasInit(const Shape &weightShape) {
  int64_t fanIn = computeFans(weightShape).fanIn;
  double bound = fanIn > 0 ? 1 / std::sqrt(double(fanIn)) : 0.0;
  return Init::uniform(-bound, bound);
}

} // namespace kiln
