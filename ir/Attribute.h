// Attribute values of IR nodes and arguments.
#pragma once

#include "runtime/DType.h"

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace kiln {

/// Where a value lives after memory planning: bytes [begin, end) of the arena
/// (`arena[4096:266240]`) or of an argument's own buffer (`%fc1.weight[0:1024]`,
/// an update written in place).
struct BufferSlice {
  std::string buffer; // "arena", or "%" + argument name
  int64_t begin = 0;
  int64_t end = 0;
  bool isArena() const { return buffer == "arena"; }
  int64_t size() const { return end - begin; }
  bool operator==(const BufferSlice &o) const {
    return buffer == o.buffer && begin == o.begin && end == o.end;
  }
};

/// An attribute value: an integer, a float, a boolean, a string, a dtype, a
/// list of integers or of floats, a buffer slice, or a list of buffer slices
/// (one per result of a multi-output fusion). Integers and floats stay distinct so that
/// printing and parsing round-trip exactly.
class Attribute {
public:
  using IntList = std::vector<int64_t>;
  using FloatList = std::vector<double>;
  using BufferList = std::vector<BufferSlice>;

  Attribute() : value_(int64_t(0)) {}
  Attribute(int64_t v) : value_(v) {}
  Attribute(int v) : value_(int64_t(v)) {}
  Attribute(double v) : value_(v) {}
  Attribute(bool v) : value_(v) {}
  Attribute(std::string v) : value_(std::move(v)) {}
  Attribute(const char *v) : value_(std::string(v)) {}
  Attribute(DType v) : value_(v) {}
  Attribute(IntList v) : value_(std::move(v)) {}
  Attribute(FloatList v) : value_(std::move(v)) {}
  Attribute(BufferSlice v) : value_(std::move(v)) {}
  Attribute(BufferList v) : value_(std::move(v)) {}

  bool isInt() const { return std::holds_alternative<int64_t>(value_); }
  bool isFloat() const { return std::holds_alternative<double>(value_); }
  bool isBool() const { return std::holds_alternative<bool>(value_); }
  bool isString() const { return std::holds_alternative<std::string>(value_); }
  bool isDType() const { return std::holds_alternative<DType>(value_); }
  bool isIntList() const { return std::holds_alternative<IntList>(value_); }
  bool isFloatList() const { return std::holds_alternative<FloatList>(value_); }
  bool isBufferSlice() const { return std::holds_alternative<BufferSlice>(value_); }
  bool isBufferList() const { return std::holds_alternative<BufferList>(value_); }
  bool isNumber() const { return isInt() || isFloat(); }

  int64_t asInt() const { return std::get<int64_t>(value_); }
  double asFloat() const { return std::get<double>(value_); }
  /// An int or a float, as double.
  double asNumber() const { return isInt() ? double(asInt()) : asFloat(); }
  bool asBool() const { return std::get<bool>(value_); }
  const std::string &asString() const { return std::get<std::string>(value_); }
  DType asDType() const { return std::get<DType>(value_); }
  const IntList &asIntList() const { return std::get<IntList>(value_); }
  const FloatList &asFloatList() const { return std::get<FloatList>(value_); }
  const BufferSlice &asBufferSlice() const { return std::get<BufferSlice>(value_); }
  const BufferList &asBufferList() const { return std::get<BufferList>(value_); }
  /// A number or a list of numbers, as doubles.
  std::vector<double> asNumbers() const;

  /// The `.kir` spelling: `3`, `0.5`, `true`, `"s"`, `f32`, `[1, 2]`, `[0.5, 1.0]`,
  /// `arena[0:64]`, `[arena[0:64], %w[0:32]]`.
  std::string toString() const;

  bool operator==(const Attribute &o) const { return value_ == o.value_; }
  bool operator!=(const Attribute &o) const { return !(value_ == o.value_); }

private:
  std::variant<int64_t, double, bool, std::string, DType, IntList, FloatList, BufferSlice,
               BufferList>
      value_;
};

/// Shortest decimal text that reads back as exactly `v`, always with a `.` or
/// an exponent so it parses as a float (`1.0`, `0.1`, `1e-08`, `inf`, `nan`).
std::string formatFloat(double v);

/// Named attributes in insertion order (a handful per node).
class AttrMap {
public:
  const Attribute *find(const std::string &name) const;
  void set(const std::string &name, Attribute value);
  bool erase(const std::string &name);
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  bool operator==(const AttrMap &o) const { return entries_ == o.entries_; }

private:
  std::vector<std::pair<std::string, Attribute>> entries_;
};

} // namespace kiln
