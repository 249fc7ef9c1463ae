#include "runtime/Random.h"

#include <cmath>

namespace kiln {

std::array<uint32_t, 4> philox4x32(uint64_t key, uint64_t counter) {
  constexpr uint32_t kMul0 = 0xD2511F53, kMul1 = 0xCD9E8D57;
  constexpr uint32_t kWeyl0 = 0x9E3779B9, kWeyl1 = 0xBB67AE85;
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(kMul0) * c0, p1 = uint64_t(kMul1) * c2;
    uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = uint32_t(p1);
    uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = uint32_t(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {c0, c1, c2, c3};
}

double uniformAt(uint64_t key, uint64_t counter) {
  return double(philox4x32(key, counter)[0] >> 8) * (1.0 / 16777216.0);
}

double normalAt(uint64_t key, uint64_t counter) {
  std::array<uint32_t, 4> w = philox4x32(key, counter);
  double u1 = (double(w[0]) + 1.0) * (1.0 / 4294967296.0); // (0, 1]
  double u2 = double(w[1]) * (1.0 / 4294967296.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

uint64_t hashName(const char *data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i) {
    h ^= uint8_t(data[i]);
    h *= 0x100000001b3ull;
  }
  return h;
}

} // namespace kiln

extern "C" float kiln_rng_uniform(int64_t seed, int64_t counter) {
  return float(kiln::uniformAt(uint64_t(seed), uint64_t(counter)));
}
