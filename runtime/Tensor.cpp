#include "runtime/Tensor.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace kiln {

HostTensor::HostTensor(DType dtype, Shape shape)
    : dtype_(dtype), shape_(std::move(shape)),
      bytes_(size_t(shape_.numElements()) * dtypeSize(dtype), 0) {}

double HostTensor::getDouble(int64_t i) const {
  const uint8_t *p = bytes_.data() + size_t(i) * dtypeSize(dtype_);
  switch (dtype_) {
  case DType::F32: { float v; std::memcpy(&v, p, 4); return v; }
  case DType::F64: { double v; std::memcpy(&v, p, 8); return v; }
  case DType::BF16: { uint16_t v; std::memcpy(&v, p, 2); return bfloat16ToFloat(v); }
  case DType::F16: { uint16_t v; std::memcpy(&v, p, 2); return halfToFloat(v); }
  case DType::I32: { int32_t v; std::memcpy(&v, p, 4); return v; }
  case DType::I64: { int64_t v; std::memcpy(&v, p, 8); return double(v); }
  case DType::I1: return *p ? 1.0 : 0.0;
  }
  return 0;
}

int64_t HostTensor::getInt(int64_t i) const {
  const uint8_t *p = bytes_.data() + size_t(i) * dtypeSize(dtype_);
  switch (dtype_) {
  case DType::I32: { int32_t v; std::memcpy(&v, p, 4); return v; }
  case DType::I64: { int64_t v; std::memcpy(&v, p, 8); return v; }
  case DType::I1: return *p ? 1 : 0;
  case DType::F32: case DType::F64: case DType::BF16: case DType::F16:
    return realToInt(getDouble(i), DType::I64);
  }
  return 0;
}

void HostTensor::setDouble(int64_t i, double v) {
  if (isFloat(dtype_))
    storeReal(i, roundToDType(v, dtype_));
  else
    storeInt(i, realToInt(v, dtype_));
}

void HostTensor::setInt(int64_t i, int64_t v) {
  if (isFloat(dtype_))
    storeReal(i, intToReal(v, dtype_));
  else
    storeInt(i, wrapToDType(v, dtype_));
}

void HostTensor::storeReal(int64_t i, double v) {
  uint8_t *p = bytes_.data() + size_t(i) * dtypeSize(dtype_);
  switch (dtype_) {
  case DType::F32: { float f = float(v); std::memcpy(p, &f, 4); return; }
  case DType::F64: std::memcpy(p, &v, 8); return;
  case DType::BF16: { uint16_t h = floatToBFloat16(float(v)); std::memcpy(p, &h, 2); return; }
  case DType::F16: { uint16_t h = floatToHalf(float(v)); std::memcpy(p, &h, 2); return; }
  case DType::I32: case DType::I64: case DType::I1: break;
  }
  assert(false && "storeReal needs a float tensor");
}

void HostTensor::storeInt(int64_t i, int64_t v) {
  uint8_t *p = bytes_.data() + size_t(i) * dtypeSize(dtype_);
  switch (dtype_) {
  case DType::I32: { int32_t x = int32_t(v); std::memcpy(p, &x, 4); return; }
  case DType::I64: std::memcpy(p, &v, 8); return;
  case DType::I1: *p = v != 0; return;
  case DType::F32: case DType::F64: case DType::BF16: case DType::F16: break;
  }
  assert(false && "storeInt needs an integer tensor");
}

std::vector<double> HostTensor::toDoubles() const {
  std::vector<double> out(static_cast<size_t>(numElements()));
  for (int64_t i = 0; i < numElements(); ++i)
    out[size_t(i)] = getDouble(i);
  return out;
}

HostTensor HostTensor::fromDoubles(DType dtype, Shape shape, const std::vector<double> &values) {
  HostTensor t(dtype, std::move(shape));
  assert(int64_t(values.size()) == t.numElements() && "value count must match the shape");
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.setDouble(i, values[size_t(i)]);
  return t;
}

std::string HostTensor::typeString() const {
  return std::string(dtypeName(dtype_)) + shape_.toString();
}

} // namespace kiln
