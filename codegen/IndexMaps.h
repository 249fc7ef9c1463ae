// Index arithmetic shared by the code generators (codegen/cpu, codegen/cuda),
// independent of how each represents a coordinate.
#pragma once

#include "runtime/Shape.h"

#include <cstddef>

namespace kiln {

/// How a reshape reads its operand: the result's first `leading` and last
/// `trailing` dimensions equal the operand's and keep their coordinates (so
/// an innermost loop stays unit-stride); the dimensions between go through a
/// flat index (result middle -> linear -> operand middle).
struct ReshapeSplit {
  size_t leading = 0, trailing = 0;
};

inline ReshapeSplit reshapeSplit(const Shape &result, const Shape &operand) {
  size_t ro = result.rank(), ri = operand.rank();
  ReshapeSplit split;
  while (split.trailing < ro && split.trailing < ri &&
         result[ro - 1 - split.trailing] == operand[ri - 1 - split.trailing])
    ++split.trailing;
  while (split.leading + split.trailing < ro && split.leading + split.trailing < ri &&
         result[split.leading] == operand[split.leading])
    ++split.leading;
  return split;
}

} // namespace kiln
