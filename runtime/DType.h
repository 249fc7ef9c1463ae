// Element types of Kiln tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln {

enum class DType : uint8_t { F32, F64, BF16, F16, I32, I64, I1 };

inline constexpr DType kAllDTypes[] = {DType::F32, DType::F64, DType::BF16, DType::F16,
                                       DType::I32, DType::I64, DType::I1};

/// The IR spelling: `f32 f64 bf16 f16 i32 i64 i1`.
std::string_view dtypeName(DType t);
std::optional<DType> parseDType(std::string_view name);
/// Bytes per element in host memory (`i1` is one byte, 0 or 1).
size_t dtypeSize(DType t);
bool isFloat(DType t);
bool isInteger(DType t); // i32, i64 (not i1)
inline bool isBool(DType t) { return t == DType::I1; }

/// IEEE half and bfloat16 conversions, round to nearest even.
uint16_t floatToHalf(float f);
float halfToFloat(uint16_t h);
uint16_t floatToBFloat16(float f);
float bfloat16ToFloat(uint16_t b);

/// Kiln's conversions between element types, shared by HostTensor, the
/// interpreter and the backends:
/// `v` rounded to nearest even in the float type `t`, with one correct rounding
/// (also for bf16 and f16, which a plain float() step would round twice).
double roundToDType(double v, DType t);
/// An integer converted to the float type `t` with one correct rounding.
double intToReal(int64_t v, DType t);
/// Two's-complement wrap of `v` into the integer type `t` (i1: v != 0).
int64_t wrapToDType(int64_t v, DType t);
/// A double converted to the integer type `t`: truncation toward zero,
/// saturating at the type's bounds, NaN to 0 (i1: v != 0, so NaN is true).
int64_t realToInt(double v, DType t);

} // namespace kiln
