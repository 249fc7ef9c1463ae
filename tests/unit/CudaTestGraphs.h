// Graphs shared by the CUDA code generator's tests.
#pragma once

namespace kiln {

/// bf16 and f16 storage with f32 arithmetic, a bf16 row sum and an i1 result
/// (no conformance case has these dtypes).
inline const char *kHalfPrecisionGraph = R"(
graph @halfs(%x: f32[4,33] input, %y: bf16[4,33] input, %z: f16[4,33] input) -> (bf16[4], f16[4,33], f32[4,33], i1[4,33]) {
  %0 = cast %x {to = bf16} : bf16[4,33]
  %1 = mul %0, %y : bf16[4,33]
  %2 = reduce_sum %1 {axes = [1]} : bf16[4]
  %3 = cast %1 {to = f16} : f16[4,33]
  %4 = add %3, %z : f16[4,33]
  %5 = tanh %4 : f16[4,33]
  %6 = cast %5 {to = f32} : f32[4,33]
  %7 = gt %5, %3 : i1[4,33]
  return %2, %5, %6, %7
}
)";

} // namespace kiln
