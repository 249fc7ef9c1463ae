#include "runtime/DType.h"

#include <cassert>
#include <cmath>
#include <limits>
#include <cstring>

namespace kiln {

std::string_view dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "f32";
  case DType::F64: return "f64";
  case DType::BF16: return "bf16";
  case DType::F16: return "f16";
  case DType::I32: return "i32";
  case DType::I64: return "i64";
  case DType::I1: return "i1";
  }
  return "?";
}

std::optional<DType> parseDType(std::string_view name) {
  for (DType t : kAllDTypes)
    if (dtypeName(t) == name)
      return t;
  return std::nullopt;
}

size_t dtypeSize(DType t) {
  switch (t) {
  case DType::F32: case DType::I32: return 4;
  case DType::F64: case DType::I64: return 8;
  case DType::BF16: case DType::F16: return 2;
  case DType::I1: return 1;
  }
  return 0;
}

bool isFloat(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::BF16 || t == DType::F16;
}

bool isInteger(DType t) { return t == DType::I32 || t == DType::I64; }

uint16_t floatToBFloat16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f))
    return uint16_t((bits >> 16) | 0x40); // keep sign, force a quiet NaN
  uint32_t roundingBias = 0x7fff + ((bits >> 16) & 1);
  return uint16_t((bits + roundingBias) >> 16);
}

float bfloat16ToFloat(uint16_t b) {
  uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absBits = x & 0x7fffffff;
  if (absBits >= 0x7f800000) // inf or nan
    return uint16_t(sign | 0x7c00 | (absBits > 0x7f800000 ? 0x200 : 0));
  if (absBits >= 0x477ff000) // rounds to >= 65520: overflow to inf
    return uint16_t(sign | 0x7c00);
  if (absBits < 0x38800000) { // subnormal half (or zero)
    float a;
    std::memcpy(&a, &absBits, 4);
    // Scale so that the half subnormal unit (2^-24) becomes 1, round to nearest even.
    float scaled = a * 16777216.0f;
    uint32_t m = uint32_t(std::nearbyint(scaled));
    return uint16_t(sign | m);
  }
  uint32_t mant = absBits & 0x7fffff;
  uint32_t exp = (absBits >> 23) - 127 + 15;
  uint32_t half = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
    ++half; // may carry into the exponent, which is still correct
  return uint16_t(sign | half);
}

float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    float f = std::ldexp(float(mant), -24);
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

namespace {

/// `v` rounded to float "to odd": toward zero, then the last bit set when
/// inexact. Rounding that float to nearest in a type with at least two fewer
/// significant bits (bf16: 8, f16: 11) equals rounding `v` there directly.
float roundToOddFloat(double v) {
  float f = float(v);
  if (std::isnan(v) || double(f) == v)
    return f;
  if (std::fabs(double(f)) > std::fabs(v))
    f = std::nextafter(f, 0.0f);
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits |= 1;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// The same at double's 53 bits for an int64, which may have up to 63.
double roundToOddDouble(int64_t v) {
  uint64_t magnitude = v < 0 ? 0 - uint64_t(v) : uint64_t(v);
  int shift = 0;
  while ((magnitude >> shift) >= (uint64_t(1) << 53))
    ++shift;
  if (shift == 0)
    return double(v);
  uint64_t mantissa = magnitude >> shift;
  if (magnitude & ((uint64_t(1) << shift) - 1))
    mantissa |= 1;
  double d = std::ldexp(double(mantissa), shift);
  return v < 0 ? -d : d;
}

} // namespace

double roundToDType(double v, DType t) {
  switch (t) {
  case DType::F64: return v;
  case DType::F32: return double(float(v));
  case DType::BF16: return bfloat16ToFloat(floatToBFloat16(roundToOddFloat(v)));
  case DType::F16: return halfToFloat(floatToHalf(roundToOddFloat(v)));
  case DType::I32: case DType::I64: case DType::I1: break;
  }
  assert(false && "roundToDType needs a float type");
  return v;
}

double intToReal(int64_t v, DType t) {
  if (t == DType::F64)
    return double(v);
  return roundToDType(roundToOddDouble(v), t);
}

int64_t wrapToDType(int64_t v, DType t) {
  switch (t) {
  case DType::I32: return int64_t(int32_t(uint32_t(uint64_t(v))));
  case DType::I64: return v;
  case DType::I1: return v != 0;
  case DType::F32: case DType::F64: case DType::BF16: case DType::F16: break;
  }
  assert(false && "wrapToDType needs an integer type");
  return v;
}

int64_t realToInt(double v, DType t) {
  if (t == DType::I1)
    return v != 0.0;
  if (std::isnan(v))
    return 0;
  bool i32 = t == DType::I32;
  double lo = i32 ? -2147483648.0 : -9223372036854775808.0;
  double hi = i32 ? 2147483647.0 : 9223372036854775807.0; // rounds to 2^63 for i64
  if (v <= lo)
    return i32 ? std::numeric_limits<int32_t>::min() : std::numeric_limits<int64_t>::min();
  if (v >= hi)
    return i32 ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int64_t>::max();
  return int64_t(std::trunc(v));
}

} // namespace kiln
