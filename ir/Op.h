// Op kinds and their traits, generated from OpKind.def.
#pragma once

#include "ir/Attribute.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

enum class OpKind : uint16_t {
#define KILN_OP(Enum, Name, Arity, Traits, Attrs) Enum,
#include "ir/OpKind.def"
};

namespace OpTrait {
enum : unsigned {
  Elementwise = 1u << 0,
  Reduction = 1u << 1,
  Differentiable = 1u << 2,
  GivenType = 1u << 3,
  Comparison = 1u << 4,
  Library = 1u << 5,
};
} // namespace OpTrait

/// The kind of value an attribute holds.
enum class AttrKind : uint8_t { Int, Ints, Float, Bool, DType, String, Literal };

/// One attribute an op accepts, from OpKind.def.
struct AttrSpec {
  std::string name;
  AttrKind kind;
  std::optional<Attribute> defaultValue; // none: the attribute is required
};

struct OpInfo {
  OpKind kind;
  std::string_view name;
  int arity; // -1: one or more, -2: any number
  unsigned traits;
  std::vector<AttrSpec> attrs;

  bool has(unsigned trait) const { return (traits & trait) != 0; }
  const AttrSpec *findAttr(std::string_view attrName) const;
};

const OpInfo &opInfo(OpKind kind);
inline std::string_view opName(OpKind kind) { return opInfo(kind).name; }
std::optional<OpKind> parseOpName(std::string_view name);
/// Every op kind in OpKind.def order.
const std::vector<OpKind> &allOpKinds();
std::string_view attrKindName(AttrKind kind);

/// The attributes a printer shows: in OpKind.def order (unknown names after,
/// as given), without those equal to the op's default. Both the `.kir` and the
/// JSON printer use it, so either form is canonical.
std::vector<std::pair<std::string, Attribute>> canonicalAttributes(OpKind kind,
                                                                   const AttrMap &attrs);

} // namespace kiln
