// Static tensor shapes.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace kiln {

/// A static shape: every dimension known, >= 0. Rank 0 is a scalar.
class Shape {
public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  size_t rank() const { return dims_.size(); }
  int64_t operator[](size_t i) const { return dims_[i]; }
  int64_t &operator[](size_t i) { return dims_[i]; }
  const std::vector<int64_t> &dims() const { return dims_; }
  /// Product of the dimensions (1 for a scalar).
  int64_t numElements() const;
  /// Row-major strides in elements.
  std::vector<int64_t> strides() const;
  /// `[4,8]`; a scalar is `[]`.
  std::string toString() const;

  bool operator==(const Shape &o) const { return dims_ == o.dims_; }
  bool operator!=(const Shape &o) const { return dims_ != o.dims_; }

private:
  std::vector<int64_t> dims_;
};

/// Largest element count Kiln accepts for one tensor (2^40): bounds every
/// allocation a file header can ask for and keeps products from overflowing.
inline constexpr int64_t kMaxElements = int64_t(1) << 40;

/// Product of `dims` if every dim is >= 0 and the product is <= kMaxElements; -1 otherwise.
int64_t checkedNumElements(const std::vector<int64_t> &dims);

} // namespace kiln
