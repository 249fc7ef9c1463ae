// NaN and infinity checks shared by the backends (`--check-numerics`): they
// read the bits, so they hold under any floating-point mode.
#pragma once

#include "runtime/DType.h"
#include "runtime/Program.h"

#include <cstdint>

namespace kiln {

/// The index of the first NaN or infinity among the `elements` values of
/// dtype `dtype` at `data`, or -1 when all are finite (or the dtype is not a
/// float type).
int64_t firstNonFinite(DType dtype, const void *data, int64_t elements);
/// `nan`, `inf` or `-inf`: the kind of the non-finite element `index`.
const char *nonFiniteName(DType dtype, const void *data, int64_t index);

/// For result `r` of step `step` (0: `result`, then `extraResults`), whose
/// values (`Step::resultTypes[r]`) are at host address `data`: the
/// check-numerics error, located at the step's node, when one is not finite:
/// `a.kir:4:10: error: fusion (neg, exp) produced -inf at element 1 (check-numerics)`.
void checkStepResultFinite(const Program &program, size_t step, size_t r, const void *data);

} // namespace kiln
