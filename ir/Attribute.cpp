#include "ir/Attribute.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace kiln {

std::string formatFloat(double v) {
  if (std::isnan(v))
    return "nan";
  if (std::isinf(v))
    return v < 0 ? "-inf" : "inf";
  // to_chars without a format is the shortest text that reads back exactly,
  // fixed or scientific, whichever is shorter (10.0 -> "10", 1e-08 -> "1e-08").
  char buf[64];
  std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".e") == std::string::npos)
    s += ".0";
  return s;
}

std::vector<double> Attribute::asNumbers() const {
  if (isInt())
    return {double(asInt())};
  if (isFloat())
    return {asFloat()};
  if (isIntList())
    return std::vector<double>(asIntList().begin(), asIntList().end());
  if (isFloatList())
    return asFloatList();
  return {};
}

std::string Attribute::toString() const {
  if (isInt())
    return std::to_string(asInt());
  if (isFloat())
    return formatFloat(asFloat());
  if (isBool())
    return asBool() ? "true" : "false";
  if (isDType())
    return std::string(dtypeName(asDType()));
  if (isString()) {
    std::string out = "\"";
    for (char c : asString()) {
      if (c == '"' || c == '\\')
        out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    return out + "\"";
  }
  if (isBufferSlice()) {
    const BufferSlice &b = asBufferSlice();
    return b.buffer + "[" + std::to_string(b.begin) + ":" + std::to_string(b.end) + "]";
  }
  std::string out = "[";
  if (isBufferList()) {
    for (size_t i = 0; i < asBufferList().size(); ++i)
      out += (i ? ", " : "") + Attribute(asBufferList()[i]).toString();
  } else if (isIntList()) {
    for (size_t i = 0; i < asIntList().size(); ++i)
      out += (i ? ", " : "") + std::to_string(asIntList()[i]);
  } else {
    for (size_t i = 0; i < asFloatList().size(); ++i)
      out += (i ? ", " : "") + formatFloat(asFloatList()[i]);
  }
  return out + "]";
}

const Attribute *AttrMap::find(const std::string &name) const {
  for (const auto &[key, value] : entries_)
    if (key == name)
      return &value;
  return nullptr;
}

void AttrMap::set(const std::string &name, Attribute value) {
  for (auto &[key, v] : entries_)
    if (key == name) {
      v = std::move(value);
      return;
    }
  entries_.emplace_back(name, std::move(value));
}

bool AttrMap::erase(const std::string &name) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->first == name) {
      entries_.erase(it);
      return true;
    }
  return false;
}

} // namespace kiln
