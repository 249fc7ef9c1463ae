#include "runtime/Numerics.h"

#include "runtime/Error.h"

#include <cstring>
#include <string>

namespace kiln {

namespace {

/// The bits of a float format: `Bits` its storage, exponent and mantissa masks.
template <typename Bits, Bits kExponent, Bits kMantissa, Bits kSign> struct FloatBits {
  static Bits at(const void *data, int64_t i) {
    Bits b;
    std::memcpy(&b, static_cast<const uint8_t *>(data) + i * int64_t(sizeof(Bits)), sizeof b);
    return b;
  }
  static int64_t first(const void *data, int64_t n) {
    const Bits *p = static_cast<const Bits *>(data);
    for (int64_t i = 0; i < n; ++i)
      if ((p[i] & kExponent) == kExponent)
        return i;
    return -1;
  }
  static const char *name(const void *data, int64_t i) {
    Bits b = at(data, i);
    return (b & kMantissa) ? "nan" : (b & kSign) ? "-inf" : "inf";
  }
};
using F32Bits = FloatBits<uint32_t, 0x7F800000u, 0x007FFFFFu, 0x80000000u>;
using F64Bits = FloatBits<uint64_t, 0x7FF0000000000000ull, 0x000FFFFFFFFFFFFFull,
                          0x8000000000000000ull>;
using BF16Bits = FloatBits<uint16_t, 0x7F80, 0x007F, 0x8000>;
using F16Bits = FloatBits<uint16_t, 0x7C00, 0x03FF, 0x8000>;

} // namespace

int64_t firstNonFinite(DType dtype, const void *data, int64_t elements) {
  switch (dtype) {
  case DType::F32: return F32Bits::first(data, elements);
  case DType::F64: return F64Bits::first(data, elements);
  case DType::BF16: return BF16Bits::first(data, elements);
  case DType::F16: return F16Bits::first(data, elements);
  default: return -1;
  }
}

const char *nonFiniteName(DType dtype, const void *data, int64_t index) {
  switch (dtype) {
  case DType::F32: return F32Bits::name(data, index);
  case DType::F64: return F64Bits::name(data, index);
  case DType::BF16: return BF16Bits::name(data, index);
  case DType::F16: return F16Bits::name(data, index);
  default: return "finite";
  }
}

void checkStepResultFinite(const Program &program, size_t index, size_t r, const void *data) {
  const Step &step = program.steps[index];
  DType dtype = step.resultTypes[r];
  const BufferRef &ref = r ? step.extraResults[r - 1] : step.result;
  int64_t bad = firstNonFinite(dtype, data, ref.bytes / int64_t(dtypeSize(dtype)));
  if (bad < 0)
    return;
  std::string what = step.what.empty() ? "step " + step.name : step.what;
  if (step.extraResults.size() > 0)
    what += " (result " + std::to_string(r) + ")";
  throwError(step.where.empty() ? "@" + program.name : step.where,
             what + " produced " + nonFiniteName(dtype, data, bad) + " at element " + std::to_string(bad) +
                 " (check-numerics)");
}

} // namespace kiln
