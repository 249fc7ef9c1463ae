// Host tensors: a dtype, a static shape and row-major bytes.
#pragma once

#include "runtime/DType.h"
#include "runtime/Shape.h"

#include <cassert>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

/// A dense row-major tensor in host memory. Owns its bytes; copies are deep.
class HostTensor {
public:
  HostTensor() = default;
  /// Zero-filled tensor of the given type.
  HostTensor(DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape &shape() const { return shape_; }
  int64_t numElements() const { return shape_.numElements(); }
  size_t byteSize() const { return bytes_.size(); }

  void *data() { return bytes_.data(); }
  const void *data() const { return bytes_.data(); }
  template <typename T> T *dataAs() { return reinterpret_cast<T *>(bytes_.data()); }
  template <typename T> const T *dataAs() const {
    return reinterpret_cast<const T *>(bytes_.data());
  }

  /// Element `i` converted to double (bf16/f16 widened, i1 as 0/1).
  double getDouble(int64_t i) const;
  /// Element `i` converted to int64 (floats truncated toward zero).
  int64_t getInt(int64_t i) const;
  /// Stores `v` converted to the element type as `cast` converts
  /// (runtime/DType.h: roundToDType, realToInt, intToReal, wrapToDType).
  void setDouble(int64_t i, double v);
  void setInt(int64_t i, int64_t v);

  /// All elements as doubles / int64 (copies).
  std::vector<double> toDoubles() const;
  static HostTensor fromDoubles(DType dtype, Shape shape, const std::vector<double> &values);

  /// `f32[4,8]`.
  std::string typeString() const;

private:
  /// Stores a value already converted to the element type.
  void storeReal(int64_t i, double v);
  void storeInt(int64_t i, int64_t v);

  DType dtype_ = DType::F32;
  Shape shape_;
  std::vector<uint8_t> bytes_;
};

} // namespace kiln
