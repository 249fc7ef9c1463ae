// The initial value of a program argument, as data the runtime can apply
// without the IR: an AOT executable initializes its params and random feeds
// with exactly the values `kiln run` gives them (ir/ArgumentValues.h maps an
// argument's attributes to an ArgumentInit).
#pragma once

#include "runtime/Tensor.h"

#include <cstdint>
#include <string>

namespace kiln {

struct ArgumentInit {
  enum class Kind : uint8_t {
    Uniform, // [a, b): floats as is, integers floored, i1 a fair coin (u < 0.5)
    Normal,  // mean a, standard deviation b
    Fill,    // every element a
  };
  Kind kind = Kind::Uniform;
  double a = -1, b = 1;
};

/// The Philox key of argument `name` under `seed`.
uint64_t argumentKey(uint64_t seed, const std::string &name);

/// The value of argument `name` of the given type under `seed`: element i uses
/// Philox block i under `argumentKey(seed, name)`.
HostTensor initialArgumentValue(const std::string &name, DType dtype, const Shape &shape,
                                const ArgumentInit &init, uint64_t seed);

} // namespace kiln
