// Values of graph arguments that the caller did not provide: params and state
// from their initializer attribute, inputs as seeded random feeds.
#pragma once

#include "runtime/ArgumentInit.h"
#include "runtime/Tensor.h"

#include <cstdint>
#include <string>

namespace kiln {

struct Argument;

/// Checks an argument's attributes. Params and state accept an initializer:
///   {init = "zeros"} | {init = "ones"} | {init = "constant", value = V}
///   {init = "uniform", low = L, high = H} | {init = "normal", mean = M, std = S}
/// Inputs accept a random-feed range {low = L, high = H}, or a value used when
/// none is fed, {default = V} (e.g. the learning rate). Returns the problem,
/// or an empty string.
std::string checkArgumentAttributes(const Argument &arg);

/// The value `arg` gets when none is given. It depends only on `seed`, the
/// argument's name and its type: element i uses Philox block i under the key
/// `argumentKey(seed, name)`.
///   - params/state: their initializer; without one, params are uniform in
///     [-1, 1) and state is zeros;
///   - inputs: their `default` value if they have one, else uniform in [low, high) (default [-1, 1) for floats, [0, 10) for
///     integers, i1 is a fair coin); integers are floor of the uniform value.
HostTensor defaultArgumentValue(const Argument &arg, uint64_t seed);

/// What defaultArgumentValue does for `arg`, as data (runtime/ArgumentInit.h).
ArgumentInit argumentInit(const Argument &arg);

} // namespace kiln
