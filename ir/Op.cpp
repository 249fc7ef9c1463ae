#include "ir/Op.h"

#include <cassert>
#include <cstdlib>
#include <sstream>

namespace kiln {

namespace {

std::optional<Attribute> parseDefault(AttrKind kind, const std::string &text) {
  switch (kind) {
  case AttrKind::Int: return Attribute(int64_t(std::strtoll(text.c_str(), nullptr, 10)));
  case AttrKind::Float: return Attribute(std::strtod(text.c_str(), nullptr));
  case AttrKind::Bool: return Attribute(text == "true");
  case AttrKind::Ints: {
    Attribute::IntList values;
    std::string inner = text.substr(1, text.size() - 2);
    std::stringstream ss(inner);
    std::string item;
    while (std::getline(ss, item, ','))
      values.push_back(std::strtoll(item.c_str(), nullptr, 10));
    return Attribute(values);
  }
  case AttrKind::DType:
  case AttrKind::String:
  case AttrKind::Literal:
    break;
  }
  assert(false && "OpKind.def gives a default of a kind that cannot have one");
  return std::nullopt;
}

AttrKind parseAttrKind(const std::string &s) {
  if (s == "int") return AttrKind::Int;
  if (s == "ints") return AttrKind::Ints;
  if (s == "float") return AttrKind::Float;
  if (s == "bool") return AttrKind::Bool;
  if (s == "dtype") return AttrKind::DType;
  if (s == "string") return AttrKind::String;
  assert(s == "literal" && "unknown attribute kind in OpKind.def");
  return AttrKind::Literal;
}

std::vector<AttrSpec> parseAttrSpecs(const char *text) {
  std::vector<AttrSpec> specs;
  std::stringstream ss(text);
  std::string word;
  while (ss >> word) {
    size_t colon = word.find(':');
    size_t eq = word.find('=');
    AttrSpec spec;
    spec.name = word.substr(0, colon);
    std::string kind = word.substr(colon + 1, eq == std::string::npos ? std::string::npos
                                                                       : eq - colon - 1);
    spec.kind = parseAttrKind(kind);
    if (eq != std::string::npos)
      spec.defaultValue = parseDefault(spec.kind, word.substr(eq + 1));
    specs.push_back(std::move(spec));
  }
  return specs;
}

std::vector<OpInfo> buildOpTable() {
  using namespace OpTrait;
  std::vector<OpInfo> table;
#define KILN_OP(Enum, Name, Arity, Traits, Attrs)                                              \
  table.push_back(OpInfo{OpKind::Enum, Name, Arity, unsigned(Traits), parseAttrSpecs(Attrs)});
#include "ir/OpKind.def"
  return table;
}

const std::vector<OpInfo> &opTable() {
  static const std::vector<OpInfo> table = buildOpTable();
  return table;
}

} // namespace

const AttrSpec *OpInfo::findAttr(std::string_view attrName) const {
  for (const AttrSpec &spec : attrs)
    if (spec.name == attrName)
      return &spec;
  return nullptr;
}

const OpInfo &opInfo(OpKind kind) { return opTable()[size_t(kind)]; }

std::optional<OpKind> parseOpName(std::string_view name) {
  for (const OpInfo &info : opTable())
    if (info.name == name)
      return info.kind;
  return std::nullopt;
}

const std::vector<OpKind> &allOpKinds() {
  static const std::vector<OpKind> kinds = [] {
    std::vector<OpKind> k;
    for (const OpInfo &info : opTable())
      k.push_back(info.kind);
    return k;
  }();
  return kinds;
}

std::string_view attrKindName(AttrKind kind) {
  switch (kind) {
  case AttrKind::Int: return "an integer";
  case AttrKind::Ints: return "a list of integers";
  case AttrKind::Float: return "a number";
  case AttrKind::Bool: return "a boolean";
  case AttrKind::DType: return "a dtype";
  case AttrKind::String: return "a string";
  case AttrKind::Literal: return "a number or a list of numbers";
  }
  return "?";
}

std::vector<std::pair<std::string, Attribute>> canonicalAttributes(OpKind kind,
                                                                   const AttrMap &attrs) {
  const OpInfo &info = opInfo(kind);
  std::vector<std::pair<std::string, Attribute>> out;
  for (const AttrSpec &spec : info.attrs) {
    const Attribute *a = attrs.find(spec.name);
    if (a && !(spec.defaultValue && *spec.defaultValue == *a))
      out.emplace_back(spec.name, *a);
  }
  for (const auto &[name, value] : attrs)
    if (!info.findAttr(name))
      out.emplace_back(name, value);
  return out;
}

} // namespace kiln
