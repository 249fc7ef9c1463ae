#include "runtime/ArgumentInit.h"

#include "runtime/Random.h"

#include <cmath>

namespace kiln {

uint64_t argumentKey(uint64_t seed, const std::string &name) {
  return (seed * 0x9E3779B97F4A7C15ull) ^ hashName(name.data(), name.size());
}

HostTensor initialArgumentValue(const std::string &name, DType dtype, const Shape &shape,
                                const ArgumentInit &init, uint64_t seed) {
  HostTensor t(dtype, shape);
  uint64_t key = argumentKey(seed, name);
  int64_t n = t.numElements();
  switch (init.kind) {
  case ArgumentInit::Kind::Uniform:
    for (int64_t i = 0; i < n; ++i) {
      double u = uniformAt(key, uint64_t(i));
      if (isBool(dtype))
        t.setInt(i, u < 0.5);
      else if (!isFloat(dtype))
        t.setInt(i, int64_t(std::floor(init.a + (init.b - init.a) * u)));
      else
        t.setDouble(i, init.a + (init.b - init.a) * u);
    }
    break;
  case ArgumentInit::Kind::Normal:
    for (int64_t i = 0; i < n; ++i)
      t.setDouble(i, init.a + init.b * normalAt(key, uint64_t(i)));
    break;
  case ArgumentInit::Kind::Fill:
    for (int64_t i = 0; i < n; ++i)
      t.setDouble(i, init.a);
    break;
  }
  return t;
}

} // namespace kiln
