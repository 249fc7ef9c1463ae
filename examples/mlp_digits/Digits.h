// The digits data set (examples/data/README.md): loading, a seeded split into
// train and held-out test rows, and batches as the graph's input tensors.
#pragma once

#include "runtime/Tensor.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::examples {

/// Images of 8x8 pixels scaled to [0, 1], with their labels 0..9.
struct DigitsDataset {
  static constexpr int64_t kPixels = 64;
  static constexpr int64_t kClasses = 10;

  std::vector<float> pixels;   // row-major [size, kPixels]
  std::vector<int32_t> labels; // [size]

  int64_t size() const { return int64_t(labels.size()); }
};

/// examples/data/digits.csv.gz in the source tree.
std::string defaultDigitsPath();

/// Reads a gzip-compressed (or plain) CSV of rows `p0,...,p63,label`: pixels
/// 0..16, divided by 16, and a label 0..9. Throws kiln::Error located at the
/// offending line (`digits.csv.gz:12: error: ...`) for an unreadable file or a
/// malformed row.
DigitsDataset loadDigits(const std::string &path);

struct DigitsSplit {
  DigitsDataset train;
  DigitsDataset test;
};

/// A uniform random split with `testSize` rows held out, the same for the same
/// `seed` on every platform (Philox, not <random>'s distributions).
DigitsSplit splitDigits(const DigitsDataset &all, int64_t testSize, uint64_t seed);

/// The Philox key of one use (`split`, `epoch 3`) of the random stream of `seed`.
uint64_t digitsKey(uint64_t seed, const std::string &purpose);

/// 0..n-1 in an order that depends only on (n, key): Fisher-Yates over Philox.
std::vector<int64_t> shuffledIndices(int64_t n, uint64_t key);

/// f32[count, 64] of rows[0..count) of `data`.
HostTensor gatherImages(const DigitsDataset &data, const int64_t *rows, int64_t count);
/// i32[count] of rows[0..count) of `data`.
HostTensor gatherLabels(const DigitsDataset &data, const int64_t *rows, int64_t count);

} // namespace kiln::examples
