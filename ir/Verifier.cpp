#include "ir/Verifier.h"

#include "ir/ArgumentValues.h"
#include "runtime/Error.h"

#include <algorithm>
#include <cassert>
#include <cctype>
#include <set>
#include <unordered_map>

namespace kiln {

namespace {

std::string typeList(const std::vector<TensorType> &types) {
  std::string s;
  for (size_t i = 0; i < types.size(); ++i)
    s += (i ? " and " : "") + types[i].toString();
  return s;
}

bool attrHasKind(const Attribute &a, AttrKind kind) {
  switch (kind) {
  case AttrKind::Int: return a.isInt();
  case AttrKind::Ints: return a.isIntList();
  case AttrKind::Float: return a.isNumber();
  case AttrKind::Bool: return a.isBool();
  case AttrKind::DType: return a.isDType();
  case AttrKind::String: return a.isString();
  case AttrKind::Literal: return a.isNumber() || a.isIntList() || a.isFloatList();
  }
  return false;
}

/// Attribute lookup with OpKind.def defaults (attributes are already checked).
const Attribute &attrOf(OpKind kind, const AttrMap &attrs, const std::string &name) {
  if (const Attribute *a = attrs.find(name))
    return *a;
  return *opInfo(kind).findAttr(name)->defaultValue;
}

/// The spatial parameters shared by conv2d and pooling.
struct Window2d {
  int64_t kh, kw, sh, sw, ph, pw, dh = 1, dw = 1;
};

/// Output size of a sliding window; -1 when the window does not fit. All of
/// `in, k, s, p, d` are at most kMaxElements, so 128-bit products cannot overflow.
int64_t windowOut(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  __int128 span = __int128(d) * (k - 1) + 1;
  __int128 padded = __int128(in) + 2 * __int128(p);
  if (padded < span)
    return -1;
  return int64_t((padded - span) / s + 1);
}

/// Checks that `name` is a list of two integers each >= `min`.
bool pairAttr(OpKind kind, const AttrMap &attrs, const std::string &name, int64_t min,
              int64_t &a, int64_t &b, std::string &error) {
  const auto &v = attrOf(kind, attrs, name).asIntList();
  if (v.size() != 2 || v[0] < min || v[1] < min || v[0] > kMaxElements || v[1] > kMaxElements) {
    error = std::string(opName(kind)) + " expects '" + name + "' to be two integers in [" +
            std::to_string(min) + ", 2^40], got " + Attribute(v).toString();
    return false;
  }
  a = v[0];
  b = v[1];
  return true;
}

/// Which element types an elementwise op accepts.
enum class Accepts { Float, Numeric, NumericOrBool, Bool };

class TypeRules {
public:
  TypeRules(OpKind kind, const std::vector<TensorType> &operands, const AttrMap &attrs,
            const TensorType *given, std::string &error)
      : kind_(kind), ops_(operands), attrs_(attrs), given_(given), error_(error) {}

  std::optional<TensorType> infer();

private:
  std::string name() const { return std::string(opName(kind_)); }
  std::nullopt_t fail(const std::string &message) {
    error_ = message;
    return std::nullopt;
  }
  const Attribute &attr(const std::string &n) const { return attrOf(kind_, attrs_, n); }
  bool sameTypes() const {
    for (const TensorType &t : ops_)
      if (t != ops_[0])
        return false;
    return true;
  }
  std::optional<TensorType> elementwise(Accepts accepts);
  std::optional<TensorType> conv2d();
  std::optional<TensorType> pool();
  std::optional<Shape> convOutput(const Shape &x, const Shape &w);
  std::optional<Shape> poolOutput(const Shape &x);
  std::optional<TensorType> needGiven() {
    if (!given_)
      return fail(name() + " needs its result type written out");
    return *given_;
  }

  OpKind kind_;
  const std::vector<TensorType> &ops_;
  const AttrMap &attrs_;
  const TensorType *given_;
  std::string &error_;
};

std::optional<TensorType> TypeRules::elementwise(Accepts accepts) {
  if (!sameTypes())
    return fail(name() + " expects operands of equal type, got " + typeList(ops_));
  DType t = ops_[0].dtype;
  switch (accepts) {
  case Accepts::Float:
    if (!isFloat(t))
      return fail(name() + " expects a float type, got " + ops_[0].toString());
    break;
  case Accepts::Numeric:
    if (isBool(t))
      return fail(name() + " expects a float or integer type, got " + ops_[0].toString());
    break;
  case Accepts::NumericOrBool:
    break;
  case Accepts::Bool:
    if (!isBool(t))
      return fail(name() + " expects i1, got " + ops_[0].toString());
    break;
  }
  return ops_[0];
}

std::optional<Shape> TypeRules::convOutput(const Shape &x, const Shape &w) {
  int64_t groups = attr("groups").asInt();
  Window2d win{};
  if (!pairAttr(kind_, attrs_, "stride", 1, win.sh, win.sw, error_) ||
      !pairAttr(kind_, attrs_, "padding", 0, win.ph, win.pw, error_) ||
      !pairAttr(kind_, attrs_, "dilation", 1, win.dh, win.dw, error_))
    return std::nullopt;
  if (groups < 1)
    return fail(name() + " expects 'groups' >= 1, got " + std::to_string(groups));
  if (x.rank() != 4 || w.rank() != 4)
    return fail(name() + " expects rank-4 input (NCHW) and filter (OIHW), got " + x.toString() +
                " and " + w.toString());
  if (x[1] % groups || w[0] % groups || w[1] * groups != x[1])
    return fail(name() + " expects filter " + w.toString() + " to match input channels " +
                std::to_string(x[1]) + " with groups = " + std::to_string(groups));
  int64_t oh = windowOut(x[2], w[2], win.sh, win.ph, win.dh);
  int64_t ow = windowOut(x[3], w[3], win.sw, win.pw, win.dw);
  if (oh < 1 || ow < 1)
    return fail(name() + " filter " + w.toString() + " does not fit input " + x.toString());
  return Shape{x[0], w[0], oh, ow};
}

std::optional<TensorType> TypeRules::conv2d() {
  // Operands: conv2d (x, w) -> y; grad_input (dy, w) -> x; grad_filter (x, dy) -> w.
  if (ops_[0].dtype != ops_[1].dtype || !isFloat(ops_[0].dtype))
    return fail(name() + " expects two operands of one float type, got " + typeList(ops_));
  if (kind_ == OpKind::Conv2d) {
    std::optional<Shape> y = convOutput(ops_[0].shape, ops_[1].shape);
    if (!y)
      return std::nullopt;
    return TensorType{ops_[0].dtype, *y};
  }
  if (!given_)
    return needGiven();
  if (given_->dtype != ops_[0].dtype)
    return fail(name() + " result type " + given_->toString() + " must have the operands' dtype");
  bool gradInput = kind_ == OpKind::Conv2dGradInput;
  const Shape &x = gradInput ? given_->shape : ops_[0].shape;
  const Shape &w = gradInput ? ops_[1].shape : given_->shape;
  const Shape &dy = gradInput ? ops_[0].shape : ops_[1].shape;
  std::optional<Shape> y = convOutput(x, w);
  if (!y)
    return std::nullopt;
  if (*y != dy)
    return fail(name() + ": conv2d of input " + x.toString() + " with filter " + w.toString() +
                " gives " + y->toString() + ", not the gradient's " + dy.toString());
  return *given_;
}

std::optional<Shape> TypeRules::poolOutput(const Shape &x) {
  Window2d win{};
  if (!pairAttr(kind_, attrs_, "window", 1, win.kh, win.kw, error_) ||
      !pairAttr(kind_, attrs_, "stride", 1, win.sh, win.sw, error_) ||
      !pairAttr(kind_, attrs_, "padding", 0, win.ph, win.pw, error_))
    return std::nullopt;
  if (x.rank() != 4)
    return fail(name() + " expects a rank-4 (NCHW) operand, got " + x.toString());
  if (2 * win.ph > win.kh || 2 * win.pw > win.kw)
    return fail(name() + " expects padding at most half the window, got padding " +
                attr("padding").toString() + " for window " + attr("window").toString());
  int64_t oh = windowOut(x[2], win.kh, win.sh, win.ph, 1);
  int64_t ow = windowOut(x[3], win.kw, win.sw, win.pw, 1);
  if (oh < 1 || ow < 1)
    return fail(name() + " window " + attr("window").toString() + " does not fit input " +
                x.toString());
  return Shape{x[0], x[1], oh, ow};
}

std::optional<TensorType> TypeRules::pool() {
  for (const TensorType &t : ops_)
    if (!isFloat(t.dtype) || t.dtype != ops_[0].dtype)
      return fail(name() + " expects operands of one float type, got " + typeList(ops_));
  switch (kind_) {
  case OpKind::MaxPool2d:
  case OpKind::AvgPool2d: {
    std::optional<Shape> y = poolOutput(ops_[0].shape);
    if (!y)
      return std::nullopt;
    return TensorType{ops_[0].dtype, *y};
  }
  case OpKind::MaxPool2dGrad: {
    std::optional<Shape> y = poolOutput(ops_[0].shape);
    if (!y)
      return std::nullopt;
    if (*y != ops_[1].shape)
      return fail(name() + ": pooling " + ops_[0].shape.toString() + " gives " + y->toString() +
                  ", not the gradient's " + ops_[1].shape.toString());
    return ops_[0];
  }
  default: { // AvgPool2dGrad
    if (!given_)
      return needGiven();
    if (given_->dtype != ops_[0].dtype)
      return fail(name() + " result type " + given_->toString() + " must have the operand's dtype");
    std::optional<Shape> y = poolOutput(given_->shape);
    if (!y)
      return std::nullopt;
    if (*y != ops_[0].shape)
      return fail(name() + ": pooling " + given_->shape.toString() + " gives " + y->toString() +
                  ", not the gradient's " + ops_[0].shape.toString());
    return *given_;
  }
  }
}

std::optional<TensorType> TypeRules::infer() {
  const TensorType *x = ops_.empty() ? nullptr : &ops_[0];
  switch (kind_) {
  case OpKind::Exp: case OpKind::Log: case OpKind::Sqrt: case OpKind::Rsqrt: case OpKind::Tanh:
  case OpKind::Logistic: case OpKind::Erf: case OpKind::Sin: case OpKind::Cos: case OpKind::Floor:
  case OpKind::Pow:
    return elementwise(Accepts::Float);
  case OpKind::Neg: case OpKind::Abs: case OpKind::Sign: case OpKind::Add: case OpKind::Sub:
  case OpKind::Mul: case OpKind::Div: case OpKind::Max: case OpKind::Min:
    return elementwise(Accepts::Numeric);
  case OpKind::Not: case OpKind::And: case OpKind::Or:
    return elementwise(Accepts::Bool);
  case OpKind::Eq: case OpKind::Ne: case OpKind::Lt: case OpKind::Le: case OpKind::Gt:
  case OpKind::Ge: {
    bool equality = kind_ == OpKind::Eq || kind_ == OpKind::Ne;
    if (!elementwise(equality ? Accepts::NumericOrBool : Accepts::Numeric))
      return std::nullopt;
    return TensorType{DType::I1, x->shape};
  }
  case OpKind::Cast:
    return TensorType{attr("to").asDType(), x->shape};
  case OpKind::Select:
    if (ops_[0].dtype != DType::I1)
      return fail("select expects an i1 condition, got " + ops_[0].toString());
    if (ops_[1] != ops_[2])
      return fail("select expects both choices of equal type, got " + ops_[1].toString() +
                  " and " + ops_[2].toString());
    if (ops_[0].shape != ops_[1].shape)
      return fail("select expects the condition shaped like the choices, got " +
                  ops_[0].toString() + " and " + ops_[1].toString());
    return ops_[1];
  case OpKind::Constant: {
    if (!given_)
      return needGiven();
    const Attribute &value = attr("value");
    if (value.isIntList() || value.isFloatList()) {
      size_t count = value.isIntList() ? value.asIntList().size() : value.asFloatList().size();
      if (int64_t(count) != given_->numElements())
        return fail("constant has " + std::to_string(count) + " values but " +
                    given_->toString() + " needs " + std::to_string(given_->numElements()));
    }
    if (!isFloat(given_->dtype) && (value.isFloat() || value.isFloatList()))
      return fail("constant of type " + given_->toString() + " needs integer values");
    return *given_;
  }
  case OpKind::Iota: {
    if (!given_)
      return needGiven();
    int64_t dim = attr("dim").asInt();
    if (isBool(given_->dtype))
      return fail("iota cannot produce i1");
    if (dim < 0 || dim >= int64_t(given_->shape.rank()))
      return fail("iota dim " + std::to_string(dim) + " is out of range for " + given_->toString());
    return *given_;
  }
  case OpKind::Broadcast: {
    if (!given_)
      return needGiven();
    const auto &dims = attr("dims").asIntList();
    if (given_->dtype != x->dtype)
      return fail("broadcast result " + given_->toString() + " must keep the operand's dtype " +
                  std::string(dtypeName(x->dtype)));
    if (dims.size() != x->shape.rank())
      return fail("broadcast 'dims' has " + std::to_string(dims.size()) +
                  " entries but the operand " + x->toString() + " has rank " +
                  std::to_string(x->shape.rank()));
    for (size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] < 0 || dims[i] >= int64_t(given_->shape.rank()) || (i && dims[i] <= dims[i - 1]))
        return fail("broadcast 'dims' " + attr("dims").toString() +
                    " must be increasing result dimensions of " + given_->toString());
      int64_t from = x->shape[i], to = given_->shape[size_t(dims[i])];
      if (from != to && from != 1)
        return fail("broadcast cannot stretch dimension " + std::to_string(i) + " of " +
                    x->toString() + " to " + std::to_string(to));
    }
    return *given_;
  }
  case OpKind::Reshape:
    if (!given_)
      return needGiven();
    if (given_->dtype != x->dtype || given_->numElements() != x->numElements())
      return fail("reshape cannot turn " + x->toString() + " into " + given_->toString());
    return *given_;
  case OpKind::Transpose: {
    const auto &perm = attr("perm").asIntList();
    std::vector<int64_t> sorted(perm);
    std::sort(sorted.begin(), sorted.end());
    bool isPerm = sorted.size() == x->shape.rank();
    for (size_t i = 0; isPerm && i < sorted.size(); ++i)
      isPerm = sorted[i] == int64_t(i);
    if (!isPerm)
      return fail("transpose 'perm' " + attr("perm").toString() +
                  " is not a permutation of the dimensions of " + x->toString());
    std::vector<int64_t> dims;
    for (int64_t p : perm)
      dims.push_back(x->shape[size_t(p)]);
    return TensorType{x->dtype, Shape(dims)};
  }
  case OpKind::Slice: {
    const auto &start = attr("start").asIntList(), &limit = attr("limit").asIntList(),
               &stride = attr("stride").asIntList();
    size_t rank = x->shape.rank();
    if (start.size() != rank || limit.size() != rank || stride.size() != rank)
      return fail("slice expects 'start', 'limit' and 'stride' of " + std::to_string(rank) +
                  " entries for " + x->toString());
    std::vector<int64_t> dims;
    for (size_t i = 0; i < rank; ++i) {
      if (start[i] < 0 || start[i] > limit[i] || limit[i] > x->shape[i] || stride[i] < 1)
        return fail("slice bounds start " + std::to_string(start[i]) + ", limit " +
                    std::to_string(limit[i]) + ", stride " + std::to_string(stride[i]) +
                    " are invalid for dimension " + std::to_string(i) + " of " + x->toString());
      dims.push_back(limit[i] == start[i] ? 0 : (limit[i] - start[i] - 1) / stride[i] + 1);
    }
    return TensorType{x->dtype, Shape(dims)};
  }
  case OpKind::Pad: {
    const auto &low = attr("low").asIntList(), &high = attr("high").asIntList();
    size_t rank = x->shape.rank();
    if (low.size() != rank || high.size() != rank)
      return fail("pad expects 'low' and 'high' of " + std::to_string(rank) + " entries for " +
                  x->toString());
    std::vector<int64_t> dims;
    for (size_t i = 0; i < rank; ++i) {
      if (low[i] < 0 || high[i] < 0 || low[i] > kMaxElements || high[i] > kMaxElements)
        return fail("pad amounts must be >= 0, got low " + attr("low").toString() + ", high " +
                    attr("high").toString());
      dims.push_back(x->shape[i] + low[i] + high[i]);
    }
    return TensorType{x->dtype, Shape(dims)};
  }
  case OpKind::Concat: {
    int64_t axis = attr("axis").asInt();
    if (axis < 0 || axis >= int64_t(x->shape.rank()))
      return fail("concat axis " + std::to_string(axis) + " is out of range for " + x->toString());
    std::vector<int64_t> dims = x->shape.dims();
    dims[size_t(axis)] = 0;
    for (const TensorType &t : ops_) {
      bool ok = t.dtype == x->dtype && t.shape.rank() == x->shape.rank();
      for (size_t i = 0; ok && i < dims.size(); ++i)
        ok = int64_t(i) == axis || t.shape[i] == x->shape[i];
      if (!ok)
        return fail("concat along axis " + std::to_string(axis) +
                    " expects operands equal in every other dimension, got " + typeList(ops_));
      dims[size_t(axis)] += t.shape[size_t(axis)];
    }
    return TensorType{x->dtype, Shape(dims)};
  }
  case OpKind::ReduceSum:
  case OpKind::ReduceMax: {
    if (isBool(x->dtype))
      return fail(name() + " expects a float or integer type, got " + x->toString());
    const auto &axes = attr("axes").asIntList();
    std::vector<bool> reduced(x->shape.rank(), false);
    for (int64_t a : axes) {
      if (a < 0 || a >= int64_t(x->shape.rank()) || reduced[size_t(a)])
        return fail(name() + " 'axes' " + attr("axes").toString() +
                    " must be distinct dimensions of " + x->toString());
      reduced[size_t(a)] = true;
    }
    std::vector<int64_t> dims;
    for (size_t i = 0; i < reduced.size(); ++i)
      if (!reduced[i])
        dims.push_back(x->shape[i]);
    return TensorType{x->dtype, Shape(dims)};
  }
  case OpKind::Argmax: {
    int64_t axis = attr("axis").asInt();
    if (isBool(x->dtype))
      return fail("argmax expects a float or integer type, got " + x->toString());
    if (axis < 0 || axis >= int64_t(x->shape.rank()) || x->shape[size_t(axis)] == 0)
      return fail("argmax axis " + std::to_string(axis) + " is out of range for " + x->toString());
    std::vector<int64_t> dims = x->shape.dims();
    dims.erase(dims.begin() + axis);
    return TensorType{DType::I32, Shape(dims)};
  }
  case OpKind::Matmul: {
    const TensorType &a = ops_[0], &b = ops_[1];
    if (a.dtype != b.dtype || !isFloat(a.dtype))
      return fail("matmul expects two operands of one float type, got " + typeList(ops_));
    size_t rank = a.shape.rank();
    if (rank < 2 || b.shape.rank() != rank)
      return fail("matmul expects operands of equal rank >= 2, got " + typeList(ops_));
    for (size_t i = 0; i + 2 < rank; ++i)
      if (a.shape[i] != b.shape[i])
        return fail("matmul expects equal batch dimensions, got " + typeList(ops_));
    bool ta = attr("transpose_a").asBool(), tb = attr("transpose_b").asBool();
    int64_t m = a.shape[rank - (ta ? 1 : 2)], ka = a.shape[rank - (ta ? 2 : 1)];
    int64_t kb = b.shape[rank - (tb ? 1 : 2)], n = b.shape[rank - (tb ? 2 : 1)];
    if (ka != kb)
      return fail("matmul contraction sizes differ: " + std::to_string(ka) + " and " +
                  std::to_string(kb) + " (operands " + typeList(ops_) + ")");
    std::vector<int64_t> dims(a.shape.dims().begin(), a.shape.dims().end() - 2);
    dims.push_back(m);
    dims.push_back(n);
    return TensorType{a.dtype, Shape(dims)};
  }
  case OpKind::Conv2d: case OpKind::Conv2dGradInput: case OpKind::Conv2dGradFilter:
    return conv2d();
  case OpKind::MaxPool2d: case OpKind::AvgPool2d: case OpKind::MaxPool2dGrad:
  case OpKind::AvgPool2dGrad:
    return pool();
  case OpKind::Gather: {
    const TensorType &table = ops_[0], &idx = ops_[1];
    int64_t axis = attr("axis").asInt();
    if (!isInteger(idx.dtype))
      return fail("gather expects i32 or i64 indices, got " + idx.toString());
    if (axis < 0 || axis >= int64_t(table.shape.rank()))
      return fail("gather axis " + std::to_string(axis) + " is out of range for " +
                  table.toString());
    std::vector<int64_t> dims(table.shape.dims().begin(), table.shape.dims().begin() + axis);
    dims.insert(dims.end(), idx.shape.dims().begin(), idx.shape.dims().end());
    dims.insert(dims.end(), table.shape.dims().begin() + axis + 1, table.shape.dims().end());
    return TensorType{table.dtype, Shape(dims)};
  }
  case OpKind::ScatterAdd: {
    if (!given_)
      return needGiven();
    const TensorType &idx = ops_[0], &upd = ops_[1];
    int64_t axis = attr("axis").asInt();
    if (!isInteger(idx.dtype))
      return fail("scatter_add expects i32 or i64 indices, got " + idx.toString());
    if (upd.dtype != given_->dtype || isBool(upd.dtype))
      return fail("scatter_add expects numeric updates of the result's dtype, got " +
                  upd.toString() + " for " + given_->toString());
    if (axis < 0 || axis >= int64_t(given_->shape.rank()))
      return fail("scatter_add axis " + std::to_string(axis) + " is out of range for " +
                  given_->toString());
    const auto &r = given_->shape.dims();
    std::vector<int64_t> dims(r.begin(), r.begin() + axis);
    dims.insert(dims.end(), idx.shape.dims().begin(), idx.shape.dims().end());
    dims.insert(dims.end(), r.begin() + axis + 1, r.end());
    if (Shape(dims) != upd.shape)
      return fail("scatter_add expects updates of shape " + Shape(dims).toString() + ", got " +
                  upd.toString());
    return *given_;
  }
  case OpKind::Fusion: {
    // The body is checked by verifyGraph; here only the kind.
    if (!given_)
      return needGiven();
    const std::string &k = attr("kind").asString();
    if (k != "loop" && k != "reduction" && k != "epilogue")
      return fail("fusion kind must be \"loop\", \"reduction\" or \"epilogue\", got \"" + k + "\"");
    return *given_;
  }
  case OpKind::RngUniform:
    if (!given_)
      return needGiven();
    if (x->dtype != DType::I64 || x->shape.rank() != 0)
      return fail("rng_uniform expects an i64[] seed, got " + x->toString());
    if (!isFloat(given_->dtype))
      return fail("rng_uniform produces a float type, not " + given_->toString());
    return *given_;
  }
  return fail("unknown op");
}

} // namespace

std::string checkAttributes(OpKind kind, const AttrMap &attrs) {
  const OpInfo &info = opInfo(kind);
  for (const auto &[name, value] : attrs) {
    if (name == kBufferAttr) { // any op may carry its memory plan
      if (!value.isBufferSlice() && !value.isBufferList())
        return "attribute 'buffer' must be a buffer slice such as arena[0:64] (or a list of "
               "them, one per result), got " + value.toString();
      continue;
    }
    const AttrSpec *spec = info.findAttr(name);
    if (!spec)
      return std::string(info.name) + " has no attribute '" + name + "'";
    if (!attrHasKind(value, spec->kind))
      return std::string(info.name) + " attribute '" + name + "' must be " +
             std::string(attrKindName(spec->kind)) + ", got " + value.toString();
  }
  for (const AttrSpec &spec : info.attrs)
    if (!spec.defaultValue && !attrs.find(spec.name))
      return std::string(info.name) + " needs attribute '" + spec.name + "'";
  return {};
}

std::string checkType(const TensorType &type) {
  if (checkedNumElements(type.shape.dims()) < 0)
    return "type " + type.toString() + " has a negative or too large dimension";
  return {};
}

std::optional<TensorType> inferType(OpKind kind, const std::vector<TensorType> &operandTypes,
                                    const AttrMap &attrs, const TensorType *given,
                                    std::string &error) {
  const OpInfo &info = opInfo(kind);
  bool arityOk = info.arity >= 0    ? int(operandTypes.size()) == info.arity
                 : info.arity == -1 ? !operandTypes.empty()
                                    : true;
  if (!arityOk) {
    error = std::string(info.name) + " expects " +
            (info.arity >= 0 ? std::to_string(info.arity) : std::string("at least 1")) +
            " operand" + (info.arity == 1 || info.arity == -1 ? "" : "s") + ", got " +
            std::to_string(operandTypes.size());
    return std::nullopt;
  }
  error = checkAttributes(kind, attrs);
  if (!error.empty())
    return std::nullopt;
  if (given) {
    error = checkType(*given);
    if (!error.empty())
      return std::nullopt;
  }
  return TypeRules(kind, operandTypes, attrs, given, error).infer();
}

std::string describeNodeLocation(const Graph &graph, const Node &node) {
  if (node.loc().known() || !node.loc().file.empty())
    return node.loc().toString();
  size_t index = 0;
  while (index < graph.nodes().size() && graph.nodes()[index].get() != &node)
    ++index;
  return "@" + graph.name() + ": %" + std::to_string(index) + " (" + std::string(opName(node.kind())) +
         ")";
}

bool isIdentifier(const std::string &s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_'))
    return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'))
      return false;
  return true;
}

/// A fusion's body: arguments matching the operands (named arg0, arg1, ...,
/// role input), one result per node result of its type, no updates, no
/// nested fusion.
void verifyFusionBody(const Graph &graph, const Node &node) {
  std::string where = describeNodeLocation(graph, node);
  const Graph *body = node.body();
  if (!body)
    throwError(where, "fusion needs a body");
  if (body->arguments().size() != node.operands().size())
    throwError(where, "fusion body has " + std::to_string(body->arguments().size()) +
                          " arguments for " + std::to_string(node.operands().size()) + " operands");
  for (size_t i = 0; i < node.operands().size(); ++i) {
    const Argument &arg = *body->arguments()[i];
    if (arg.name != "arg" + std::to_string(i) || arg.role != ArgRole::Input)
      throwError(where, "fusion body argument " + std::to_string(i) + " must be input %arg" +
                            std::to_string(i));
    if (arg.value.type != node.operand(i)->type)
      throwError(where, "fusion operand " + std::to_string(i) + " has type " +
                            node.operand(i)->type.toString() + " but %arg" + std::to_string(i) +
                            " is " + arg.value.type.toString());
  }
  if (!body->updates().empty())
    throwError(where, "fusion body must update nothing");
  if (body->results().size() != node.numResults())
    throwError(where, "fusion body yields " + std::to_string(body->results().size()) +
                          (body->results().size() == 1 ? " value" : " values") + " for " +
                          std::to_string(node.numResults()) + " results");
  for (size_t r = 0; r < node.numResults(); ++r)
    if (body->results()[r]->type != node.result(r)->type)
      throwError(where, "fusion yields " + body->results()[r]->type.toString() +
                            (node.numResults() > 1 ? " as result " + std::to_string(r) : "") +
                            " but its type is " + node.result(r)->type.toString());
  for (const auto &inner : body->nodes())
    if (inner->kind() == OpKind::Fusion)
      throwError(describeNodeLocation(*body, *inner), "fusions do not nest");
  verifyGraph(*body);
}

std::vector<BufferSlice> nodeBuffers(const Node &node) {
  const Attribute *buffer = node.attrs().find(kBufferAttr);
  if (buffer && buffer->isBufferSlice())
    return {buffer->asBufferSlice()};
  if (buffer && buffer->isBufferList())
    return buffer->asBufferList();
  return {};
}

void setNodeBuffers(Node &node, const std::vector<BufferSlice> &slices) {
  assert(slices.size() == node.numResults() && "one slice per result");
  if (slices.size() == 1)
    node.attrs().set(kBufferAttr, slices[0]);
  else
    node.attrs().set(kBufferAttr, slices);
}

namespace {

/// The `buffer` attribute: one slice per result (a list exactly when the node
/// has several), each large enough and inside the arena or an argument.
void verifyBuffers(const Graph &graph, const Node &node) {
  const Attribute *buffer = node.attrs().find(kBufferAttr);
  std::string where = describeNodeLocation(graph, node);
  if (node.numResults() > 1 && !buffer->isBufferList())
    throwError(where, "a node with " + std::to_string(node.numResults()) +
                          " results needs a list of buffer slices, one per result, got " +
                          buffer->toString());
  if (node.numResults() == 1 && !buffer->isBufferSlice())
    throwError(where, "a node with one result needs one buffer slice, got " + buffer->toString());
  std::vector<BufferSlice> slices = nodeBuffers(node);
  if (slices.size() != node.numResults())
    throwError(where, "buffer " + buffer->toString() + " has " + std::to_string(slices.size()) +
                          (slices.size() == 1 ? " slice" : " slices") + " for " +
                          std::to_string(node.numResults()) + " results");
  for (size_t r = 0; r < slices.size(); ++r) {
    const BufferSlice &slice = slices[r];
    const TensorType &type = node.result(r)->type;
    std::string text = Attribute(slice).toString();
    int64_t bytes = type.numElements() * int64_t(dtypeSize(type.dtype));
    if (slice.size() < bytes)
      throwError(where, "buffer " + text + " holds " + std::to_string(slice.size()) +
                            " bytes, but " + type.toString() + " needs " + std::to_string(bytes));
    if (slice.isArena())
      continue;
    const Argument *arg = graph.findArgument(slice.buffer.substr(1));
    if (!arg)
      throwError(where, "buffer " + text + " names no argument of @" + graph.name());
    int64_t argBytes = arg->value.type.numElements() * int64_t(dtypeSize(arg->value.type.dtype));
    if (slice.end > argBytes)
      throwError(where, "buffer " + text + " lies outside '%" + arg->name + "' (" +
                            std::to_string(argBytes) + " bytes)");
  }
}

} // namespace

void verifyGraph(const Graph &graph) {
  auto where = [&](const Location &loc) {
    return loc.known() || !loc.file.empty() ? loc.toString() : "@" + graph.name();
  };
  bool graphNameOk = !graph.name().empty();
  for (char c : graph.name())
    graphNameOk = graphNameOk && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.');
  if (!graphNameOk)
    throwError(where(graph.loc()), "graph name '" + graph.name() +
                                       "' must be letters, digits, '_' or '.'");
  std::set<std::string> argNames;
  std::unordered_map<const Value *, bool> defined;
  for (const auto &arg : graph.arguments()) {
    bool plainNumber = !arg->name.empty() &&
                       arg->name.find_first_not_of("0123456789") == std::string::npos;
    bool nameOk = !arg->name.empty();
    for (char c : arg->name)
      nameOk = nameOk && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.');
    if (!nameOk || plainNumber)
      throwError(where(arg->loc), "argument name '" + arg->name +
                                      "' must be letters, digits, '_' or '.', and not a plain "
                                      "number (those name node results)");
    if (!argNames.insert(arg->name).second)
      throwError(where(arg->loc), "argument '%" + arg->name + "' is defined twice");
    std::string problem = checkType(arg->value.type);
    if (!problem.empty())
      throwError(where(arg->loc), "argument '%" + arg->name + "': " + problem);
    problem = checkArgumentAttributes(*arg);
    if (!problem.empty())
      throwError(where(arg->loc), problem);
    defined[&arg->value] = true;
  }
  for (const auto &node : graph.nodes()) {
    std::vector<TensorType> operandTypes;
    for (const Value *operand : node->operands()) {
      if (!defined.count(operand))
        throwError(describeNodeLocation(graph, *node),
                   std::string(opName(node->kind())) + " uses a value before it is defined");
      operandTypes.push_back(operand->type);
    }
    std::string error;
    bool given = node->info().has(OpTrait::GivenType);
    std::optional<TensorType> type =
        inferType(node->kind(), operandTypes, node->attrs(), given ? &node->type() : nullptr, error);
    if (!type)
      throwError(describeNodeLocation(graph, *node), error);
    if (node->numResults() > 1 && node->kind() != OpKind::Fusion)
      throwError(describeNodeLocation(graph, *node),
                 std::string(opName(node->kind())) + " has " + std::to_string(node->numResults()) +
                     " results; only a fusion may have several");
    if (node->attrs().find(kBufferAttr))
      verifyBuffers(graph, *node);
    if (node->kind() == OpKind::Fusion)
      verifyFusionBody(graph, *node);
    else if (node->body())
      throwError(describeNodeLocation(graph, *node), std::string(opName(node->kind())) +
                                                         " cannot have a body");
    for (size_t r = 0; r < node->numResults(); ++r) {
      std::string badType = checkType(node->result(r)->type);
      if (!badType.empty())
        throwError(describeNodeLocation(graph, *node), badType);
    }
    if (*type != node->type())
      throwError(describeNodeLocation(graph, *node),
                 std::string(opName(node->kind())) + " result type is " + type->toString() +
                     ", not the written " + node->type().toString());
    for (size_t r = 0; r < node->numResults(); ++r)
      defined[node->result(r)] = true;
  }
  for (const Value *result : graph.results())
    if (!defined.count(result))
      throwError(where(graph.loc()), "a result of @" + graph.name() + " is not defined in it");
  std::set<std::string> resultNames;
  for (size_t i = 0; i < graph.results().size(); ++i) {
    std::string name = graph.resultName(i);
    if (graph.hasResultName(i) && (!isIdentifier(name) || parseDType(name)))
      throwError(where(graph.loc()), "result name '" + name +
                                         "' must be an identifier ([A-Za-z_][A-Za-z0-9_.]*) "
                                         "other than a dtype");
    if (!resultNames.insert(name).second)
      throwError(where(graph.loc()), "result name '" + name + "' is used twice");
  }
  std::set<const Argument *> updated;
  for (const Update &u : graph.updates()) {
    if (u.target->role == ArgRole::Input)
      throwError(where(u.loc), "update target '%" + u.target->name +
                                   "' is an input; only a param or state can be updated");
    if (!updated.insert(u.target).second)
      throwError(where(u.loc), "'%" + u.target->name + "' is updated twice");
    if (!defined.count(u.source))
      throwError(where(u.loc), "update of '%" + u.target->name + "' uses an undefined value");
    if (u.source->type != u.target->value.type)
      throwError(where(u.loc), "update of '%" + u.target->name + "' (" +
                                   u.target->value.type.toString() + ") with a value of type " +
                                   u.source->type.toString());
  }
}

void verifyModule(const Module &module) {
  std::set<std::string> names;
  for (const auto &g : module.graphs) {
    if (!names.insert(g->name()).second)
      throwError(g->loc().known() ? g->loc().toString() : "",
                 "graph @" + g->name() + " is defined twice");
    verifyGraph(*g);
  }
}

} // namespace kiln
