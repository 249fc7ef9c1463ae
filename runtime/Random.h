// Counter-based random numbers (Philox-4x32-10, Salmon et al., SC'11): the
// same (key, counter) gives the same bits on every backend and thread count.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace kiln {

/// One Philox-4x32-10 block: four 32-bit words for `counter` under `key`.
std::array<uint32_t, 4> philox4x32(uint64_t key, uint64_t counter);

/// Uniform in [0, 1) from the first word of block `counter`: (w0 >> 8) * 2^-24,
/// exactly representable in f32. This is `rng_uniform`'s definition.
double uniformAt(uint64_t key, uint64_t counter);

/// Standard normal from block `counter` by Box-Muller on words 0 and 1.
double normalAt(uint64_t key, uint64_t counter);

/// A stable 64-bit hash (FNV-1a) of a name, used to derive per-param keys.
uint64_t hashName(const char *data, size_t size);

} // namespace kiln

/// `rng_uniform` for generated kernels (JIT and AOT): uniformAt(seed, counter) as f32.
extern "C" float kiln_rng_uniform(int64_t seed, int64_t counter);
