#include "frontend/GraphBuilder.h"

#include "ir/Verifier.h"
#include "runtime/Error.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kiln {

// ---- Tensor ------------------------------------------------------------------

GraphBuilder &Tensor::builder() const {
  if (!builder_ || !value_)
    throwError("", "an undefined kiln::Tensor was used");
  return *builder_;
}

const TensorType &Tensor::type() const {
  if (!value_)
    throwError("", "an undefined kiln::Tensor was used");
  return value_->type;
}

namespace {

/// `axis` counted from the end when negative; a kiln::Error when out of range.
int64_t normalizeAxis(const Tensor &x, int64_t axis, const std::string &what) {
  int64_t rank = int64_t(x.rank());
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    x.builder().fail(what + " axis " + std::to_string(axis) + " is out of range for " +
                     x.type().toString());
  return a;
}

std::vector<int64_t> normalizeAxes(const Tensor &x, std::vector<int64_t> axes,
                                   const std::string &what) {
  for (int64_t &a : axes)
    a = normalizeAxis(x, a, what);
  return axes;
}

} // namespace

int64_t Tensor::dim(int64_t axis) const {
  return shape()[size_t(normalizeAxis(*this, axis, "dim"))];
}

Tensor Tensor::reshape(std::vector<int64_t> dims) const { return kiln::reshape(*this, dims); }
Tensor Tensor::transpose(std::vector<int64_t> perm) const { return kiln::transpose(*this, perm); }
Tensor Tensor::cast(DType to) const { return kiln::cast(*this, to); }
Tensor Tensor::sum(std::vector<int64_t> axes, bool keepDims) const {
  return reduceSum(*this, std::move(axes), keepDims);
}
Tensor Tensor::mean(std::vector<int64_t> axes, bool keepDims) const {
  return reduceMean(*this, std::move(axes), keepDims);
}
Tensor Tensor::max(std::vector<int64_t> axes, bool keepDims) const {
  return reduceMax(*this, std::move(axes), keepDims);
}

// ---- GraphBuilder ------------------------------------------------------------

GraphBuilder::GraphBuilder(std::string graphName)
    : name_(std::move(graphName)), graph_(std::make_unique<Graph>(name_)) {}

GraphBuilder::~GraphBuilder() = default;

Graph &GraphBuilder::live() const {
  if (!graph_)
    throwError("@" + name_, "the graph builder was already finished");
  return *graph_;
}

const Graph &GraphBuilder::graph() const { return live(); }

void GraphBuilder::fail(OpKind kind, const std::string &message) const {
  size_t next = graph_ ? graph_->nodes().size() : 0;
  throwError("@" + name_ + ": %" + std::to_string(next) + " (" + std::string(opName(kind)) + ")",
             message);
}

void GraphBuilder::fail(const std::string &message) const { throwError("@" + name_, message); }

void GraphBuilder::checkOperand(const Tensor &t, const std::string &what) const {
  if (!t.defined())
    fail(what + " got an undefined kiln::Tensor");
  if (&t.builder() != this)
    fail(what + " got a value of another graph (@" + t.builder().name() + ")");
}

Argument *GraphBuilder::addArgument(const std::string &name, DType dtype, Shape shape,
                                    ArgRole role, AttrMap attrs) {
  Graph &g = live();
  if (g.findArgument(name))
    fail("argument '%" + name + "' is defined twice");
  TensorType type{dtype, std::move(shape)};
  std::string problem = checkType(type);
  if (!problem.empty())
    fail("argument '%" + name + "': " + problem);
  return g.addArgument(name, std::move(type), role, std::move(attrs));
}

Tensor GraphBuilder::input(const std::string &name, DType dtype, Shape shape,
                           std::optional<FeedRange> feedRange) {
  AttrMap attrs;
  if (feedRange) {
    if (!(feedRange->low < feedRange->high))
      fail("input '%" + name + "' needs a feed range with low < high, got [" +
           formatFloat(feedRange->low) + ", " + formatFloat(feedRange->high) + ")");
    if (isFloat(dtype)) {
      attrs.set("low", feedRange->low);
      attrs.set("high", feedRange->high);
    } else {
      if (std::trunc(feedRange->low) != feedRange->low ||
          std::trunc(feedRange->high) != feedRange->high)
        fail("input '%" + name + "' of integer type " + std::string(dtypeName(dtype)) +
             " needs an integer feed range, got [" + formatFloat(feedRange->low) + ", " +
             formatFloat(feedRange->high) + ")");
      attrs.set("low", int64_t(feedRange->low));
      attrs.set("high", int64_t(feedRange->high));
    }
  }
  return Tensor(this, &addArgument(name, dtype, std::move(shape), ArgRole::Input, attrs)->value);
}

Tensor GraphBuilder::param(const std::string &name, DType dtype, Shape shape, const Init &init) {
  return Tensor(this, &addArgument(name, dtype, std::move(shape), ArgRole::Param, init.attrs)->value);
}

Tensor GraphBuilder::state(const std::string &name, DType dtype, Shape shape, const Init &init) {
  return Tensor(this, &addArgument(name, dtype, std::move(shape), ArgRole::State, init.attrs)->value);
}

void GraphBuilder::output(Tensor t, std::string name) {
  checkOperand(t, "output '" + name + "'");
  for (size_t i = 0; !name.empty() && i < live().results().size(); ++i)
    if (live().hasResultName(i) && live().resultName(i) == name)
      fail("two results are named '" + name + "'");
  live().addResult(t.value(), std::move(name));
}

void GraphBuilder::update(Tensor target, Tensor value) {
  checkOperand(target, "update");
  checkOperand(value, "update");
  Argument *arg = target.value()->arg;
  if (!arg || arg->role == ArgRole::Input)
    fail("update target must be a param or state argument, got " +
         (arg ? "the input '%" + arg->name + "'" : std::string("a node result")));
  for (const Update &u : live().updates())
    if (u.target == arg)
      fail("'%" + arg->name + "' is updated twice");
  if (value.type() != target.type())
    fail("update of '%" + arg->name + "' (" + target.type().toString() +
         ") with a value of type " + value.type().toString());
  live().addUpdate(arg, value.value());
}

std::unique_ptr<Graph> GraphBuilder::finish() {
  live();
  verifyGraph(*graph_);
  return std::move(graph_);
}

TensorType GraphBuilder::check(OpKind kind, const std::vector<TensorType> &operandTypes,
                               const AttrMap &attrs, const std::optional<TensorType> &given) const {
  std::string error;
  std::optional<TensorType> type =
      inferType(kind, operandTypes, attrs, given ? &*given : nullptr, error);
  if (!type)
    fail(kind, error);
  return *type;
}

Tensor GraphBuilder::emit(OpKind kind, const std::vector<Tensor> &operands, AttrMap attrs,
                          const std::optional<TensorType> &given) {
  Graph &g = live();
  std::vector<Value *> values;
  std::vector<TensorType> types;
  for (const Tensor &t : operands) {
    checkOperand(t, std::string(opName(kind)));
    values.push_back(t.value());
    types.push_back(t.type());
  }
  TensorType type = check(kind, types, attrs, given);
  return Tensor(this, g.addNode(kind, std::move(values), std::move(attrs), std::move(type))->result());
}

Tensor GraphBuilder::constant(double value, DType dtype, Shape shape) {
  AttrMap attrs;
  if (isFloat(dtype)) {
    attrs.set("value", value);
  } else {
    if (std::trunc(value) != value)
      fail(OpKind::Constant, "the non-integer value " + formatFloat(value) +
                                 " cannot be a constant of type " + std::string(dtypeName(dtype)));
    attrs.set("value", int64_t(value));
  }
  return emit(OpKind::Constant, {}, std::move(attrs), TensorType{dtype, std::move(shape)});
}

Tensor GraphBuilder::constant(const std::vector<double> &values, DType dtype, Shape shape) {
  AttrMap attrs;
  if (isFloat(dtype)) {
    attrs.set("value", Attribute::FloatList(values));
  } else {
    Attribute::IntList ints;
    for (double v : values) {
      if (std::trunc(v) != v)
        fail(OpKind::Constant, "the non-integer value " + formatFloat(v) +
                                   " cannot be a constant of type " + std::string(dtypeName(dtype)));
      ints.push_back(int64_t(v));
    }
    attrs.set("value", std::move(ints));
  }
  return emit(OpKind::Constant, {}, std::move(attrs), TensorType{dtype, std::move(shape)});
}

Tensor GraphBuilder::iota(DType dtype, Shape shape, int64_t dim) {
  AttrMap attrs;
  attrs.set("dim", dim);
  return emit(OpKind::Iota, {}, std::move(attrs), TensorType{dtype, std::move(shape)});
}

int64_t GraphBuilder::reserveRngOffsets(int64_t count) {
  int64_t first = nextRngOffset_;
  nextRngOffset_ += count;
  return first;
}

// ---- Elementwise -------------------------------------------------------------

namespace {

Tensor unary(OpKind kind, Tensor x) { return x.builder().emit(kind, {x}); }

GraphBuilder &builderOf(const Tensor &a, const Tensor &b) {
  return a.defined() ? a.builder() : b.builder();
}

/// Broadcasts both operands to their common shape and emits `kind`. The types
/// are checked before any node is added, so a failed op leaves the graph as it was.
Tensor binary(OpKind kind, Tensor a, Tensor b) {
  GraphBuilder &gb = builderOf(a, b);
  std::optional<Shape> shape = broadcastShapes(a.shape(), b.shape());
  if (!shape)
    gb.fail(kind, std::string(opName(kind)) + " cannot broadcast operands " +
                      a.type().toString() + " and " + b.type().toString() + " to one shape");
  gb.check(kind, {TensorType{a.dtype(), *shape}, TensorType{b.dtype(), *shape}});
  return gb.emit(kind, {broadcastTo(a, *shape), broadcastTo(b, *shape)});
}

/// The constant splat a scalar operand becomes: `like`'s type.
Tensor scalarLike(const Tensor &like, double value) {
  return like.builder().constant(value, like.dtype(), like.shape());
}

/// `t kind value` (or `value kind t`), checked before the constant is added.
Tensor binaryScalar(OpKind kind, Tensor t, double value, bool scalarFirst) {
  t.builder().check(kind, {t.type(), t.type()});
  Tensor s = scalarLike(t, value);
  return scalarFirst ? binary(kind, s, t) : binary(kind, t, s);
}

} // namespace

Tensor neg(Tensor x) { return unary(OpKind::Neg, x); }
Tensor abs(Tensor x) { return unary(OpKind::Abs, x); }
Tensor exp(Tensor x) { return unary(OpKind::Exp, x); }
Tensor log(Tensor x) { return unary(OpKind::Log, x); }
Tensor sqrt(Tensor x) { return unary(OpKind::Sqrt, x); }
Tensor rsqrt(Tensor x) { return unary(OpKind::Rsqrt, x); }
Tensor tanh(Tensor x) { return unary(OpKind::Tanh, x); }
Tensor logistic(Tensor x) { return unary(OpKind::Logistic, x); }
Tensor erf(Tensor x) { return unary(OpKind::Erf, x); }
Tensor sin(Tensor x) { return unary(OpKind::Sin, x); }
Tensor cos(Tensor x) { return unary(OpKind::Cos, x); }
Tensor sign(Tensor x) { return unary(OpKind::Sign, x); }
Tensor floor(Tensor x) { return unary(OpKind::Floor, x); }
Tensor logicalNot(Tensor x) { return unary(OpKind::Not, x); }
Tensor operator-(Tensor x) { return neg(x); }

Tensor cast(Tensor x, DType to) {
  AttrMap attrs;
  attrs.set("to", to);
  return x.builder().emit(OpKind::Cast, {x}, std::move(attrs));
}

#define KILN_BINARY_DEF(fn, kind)                                                                \
  Tensor fn(Tensor a, Tensor b) { return binary(OpKind::kind, a, b); }                           \
  Tensor fn(Tensor a, double b) { return binaryScalar(OpKind::kind, a, b, false); }              \
  Tensor fn(double a, Tensor b) { return binaryScalar(OpKind::kind, b, a, true); }
KILN_BINARY_DEF(add, Add)
KILN_BINARY_DEF(sub, Sub)
KILN_BINARY_DEF(mul, Mul)
KILN_BINARY_DEF(div, Div)
KILN_BINARY_DEF(maximum, Max)
KILN_BINARY_DEF(minimum, Min)
KILN_BINARY_DEF(pow, Pow)
KILN_BINARY_DEF(eq, Eq)
KILN_BINARY_DEF(ne, Ne)
KILN_BINARY_DEF(lt, Lt)
KILN_BINARY_DEF(le, Le)
KILN_BINARY_DEF(gt, Gt)
KILN_BINARY_DEF(ge, Ge)
KILN_BINARY_DEF(operator+, Add)
KILN_BINARY_DEF(operator-, Sub)
KILN_BINARY_DEF(operator*, Mul)
KILN_BINARY_DEF(operator/, Div)
#undef KILN_BINARY_DEF

Tensor logicalAnd(Tensor a, Tensor b) { return binary(OpKind::And, a, b); }
Tensor logicalOr(Tensor a, Tensor b) { return binary(OpKind::Or, a, b); }

namespace {

/// The common shape of select's operands, checked (with inferType) before any node is added.
Shape selectShape(const Tensor &cond, const TensorType &a, const TensorType &b) {
  GraphBuilder &gb = cond.builder();
  std::optional<Shape> shape = broadcastShapes(a.shape, b.shape);
  if (shape)
    shape = broadcastShapes(cond.shape(), *shape);
  if (!shape)
    gb.fail(OpKind::Select, "select cannot broadcast condition " + cond.type().toString() +
                                " and choices " + a.toString() + " and " + b.toString() +
                                " to one shape");
  gb.check(OpKind::Select, {TensorType{cond.dtype(), *shape}, TensorType{a.dtype, *shape},
                            TensorType{b.dtype, *shape}});
  return *shape;
}

} // namespace

Tensor select(Tensor cond, Tensor a, Tensor b) {
  Shape shape = selectShape(cond, a.type(), b.type());
  return cond.builder().emit(OpKind::Select, {broadcastTo(cond, shape), broadcastTo(a, shape),
                                              broadcastTo(b, shape)});
}

Tensor select(Tensor cond, Tensor a, double b) {
  selectShape(cond, a.type(), a.type());
  return select(cond, a, scalarLike(a, b));
}

Tensor select(Tensor cond, double a, Tensor b) {
  selectShape(cond, b.type(), b.type());
  return select(cond, scalarLike(b, a), b);
}

// ---- Shape -------------------------------------------------------------------

std::optional<Shape> broadcastShapes(const Shape &a, const Shape &b) {
  size_t rank = std::max(a.rank(), b.rank());
  std::vector<int64_t> dims(rank);
  for (size_t i = 0; i < rank; ++i) {
    // Trailing dimensions align; a missing leading dimension acts as 1.
    int64_t da = i < rank - a.rank() ? 1 : a[i - (rank - a.rank())];
    int64_t db = i < rank - b.rank() ? 1 : b[i - (rank - b.rank())];
    if (da != db && da != 1 && db != 1)
      return std::nullopt;
    dims[i] = da == 1 ? db : da;
  }
  return Shape(dims);
}

Tensor broadcast(Tensor x, Shape shape, std::vector<int64_t> dims) {
  AttrMap attrs;
  attrs.set("dims", std::move(dims));
  return x.builder().emit(OpKind::Broadcast, {x}, std::move(attrs),
                          TensorType{x.dtype(), std::move(shape)});
}

Tensor broadcastTo(Tensor x, const Shape &shape) {
  if (x.shape() == shape)
    return x;
  std::optional<Shape> common = broadcastShapes(x.shape(), shape);
  if (!common || *common != shape)
    x.builder().fail(OpKind::Broadcast, "cannot broadcast " + x.type().toString() + " to " +
                                            shape.toString());
  std::vector<int64_t> dims(x.rank());
  std::iota(dims.begin(), dims.end(), int64_t(shape.rank() - x.rank()));
  return broadcast(x, shape, std::move(dims));
}

Tensor reshape(Tensor x, std::vector<int64_t> dims) {
  int64_t known = 1;
  int64_t inferred = -1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1 && inferred < 0)
      inferred = int64_t(i);
    else
      known *= dims[i];
  }
  if (inferred >= 0) {
    if (known <= 0 || x.numElements() % known != 0)
      x.builder().fail(OpKind::Reshape, "reshape cannot infer the -1 in " +
                                            Shape(dims).toString() + " for " + x.type().toString());
    dims[size_t(inferred)] = x.numElements() / known;
  }
  if (Shape(dims) == x.shape())
    return x;
  return x.builder().emit(OpKind::Reshape, {x}, {}, TensorType{x.dtype(), Shape(dims)});
}

Tensor transpose(Tensor x, std::vector<int64_t> perm) {
  AttrMap attrs;
  attrs.set("perm", std::move(perm));
  return x.builder().emit(OpKind::Transpose, {x}, std::move(attrs));
}

Tensor slice(Tensor x, std::vector<int64_t> start, std::vector<int64_t> limit,
             std::vector<int64_t> stride) {
  if (stride.empty())
    stride.assign(x.rank(), 1);
  AttrMap attrs;
  attrs.set("start", std::move(start));
  attrs.set("limit", std::move(limit));
  attrs.set("stride", std::move(stride));
  return x.builder().emit(OpKind::Slice, {x}, std::move(attrs));
}

Tensor sliceAxis(Tensor x, int64_t axis, int64_t start, int64_t limit, int64_t stride) {
  size_t a = size_t(normalizeAxis(x, axis, "slice"));
  std::vector<int64_t> starts(x.rank(), 0), limits = x.shape().dims(), strides(x.rank(), 1);
  starts[a] = start;
  limits[a] = limit;
  strides[a] = stride;
  return slice(x, std::move(starts), std::move(limits), std::move(strides));
}

Tensor pad(Tensor x, std::vector<int64_t> low, std::vector<int64_t> high, double value) {
  AttrMap attrs;
  attrs.set("low", std::move(low));
  attrs.set("high", std::move(high));
  attrs.set("value", value);
  return x.builder().emit(OpKind::Pad, {x}, std::move(attrs));
}

Tensor concat(const std::vector<Tensor> &parts, int64_t axis) {
  if (parts.empty())
    throwError("", "concat needs at least one operand");
  AttrMap attrs;
  attrs.set("axis", normalizeAxis(parts[0], axis, "concat"));
  return parts[0].builder().emit(OpKind::Concat, parts, std::move(attrs));
}

// ---- Reductions --------------------------------------------------------------

namespace {

Tensor reduce(OpKind kind, Tensor x, std::vector<int64_t> axes, bool keepDims) {
  axes = normalizeAxes(x, std::move(axes), std::string(opName(kind)));
  AttrMap attrs;
  attrs.set("axes", axes);
  Tensor r = x.builder().emit(kind, {x}, std::move(attrs));
  if (!keepDims)
    return r;
  std::vector<int64_t> kept = x.shape().dims();
  for (int64_t a : axes)
    kept[size_t(a)] = 1;
  return reshape(r, kept);
}

} // namespace

Tensor reduceSum(Tensor x, std::vector<int64_t> axes, bool keepDims) {
  return reduce(OpKind::ReduceSum, x, std::move(axes), keepDims);
}

Tensor reduceMax(Tensor x, std::vector<int64_t> axes, bool keepDims) {
  return reduce(OpKind::ReduceMax, x, std::move(axes), keepDims);
}

Tensor reduceMean(Tensor x, std::vector<int64_t> axes, bool keepDims) {
  int64_t count = 1;
  for (int64_t a : normalizeAxes(x, axes, "reduce_mean"))
    count *= x.shape()[size_t(a)];
  return reduceSum(x, std::move(axes), keepDims) / double(count);
}

Tensor argmax(Tensor x, int64_t axis) {
  AttrMap attrs;
  attrs.set("axis", normalizeAxis(x, axis, "argmax"));
  return x.builder().emit(OpKind::Argmax, {x}, std::move(attrs));
}

// ---- Contraction, convolution, pooling ---------------------------------------

Tensor matmul(Tensor a, Tensor b, bool transposeA, bool transposeB) {
  AttrMap attrs;
  if (transposeA)
    attrs.set("transpose_a", true);
  if (transposeB)
    attrs.set("transpose_b", true);
  return a.builder().emit(OpKind::Matmul, {a, b}, std::move(attrs));
}

AttrMap Conv2dOptions::toAttrs() const {
  AttrMap attrs;
  attrs.set("stride", stride);
  attrs.set("padding", padding);
  attrs.set("dilation", dilation);
  attrs.set("groups", groups);
  return attrs;
}

Tensor conv2d(Tensor x, Tensor w, const Conv2dOptions &options) {
  return x.builder().emit(OpKind::Conv2d, {x, w}, options.toAttrs());
}

Tensor conv2dGradInput(Tensor dy, Tensor w, const Shape &xShape, const Conv2dOptions &options) {
  return dy.builder().emit(OpKind::Conv2dGradInput, {dy, w}, options.toAttrs(),
                           TensorType{dy.dtype(), xShape});
}

Tensor conv2dGradFilter(Tensor x, Tensor dy, const Shape &wShape, const Conv2dOptions &options) {
  return x.builder().emit(OpKind::Conv2dGradFilter, {x, dy}, options.toAttrs(),
                          TensorType{x.dtype(), wShape});
}

Pool2dOptions::Pool2dOptions(int64_t window, int64_t stride, int64_t padding)
    : window{window, window}, stride{stride ? stride : window, stride ? stride : window},
      padding{padding, padding} {}

Pool2dOptions::Pool2dOptions(std::vector<int64_t> window, std::vector<int64_t> stride,
                             std::vector<int64_t> padding)
    : window(std::move(window)), stride(std::move(stride)), padding(std::move(padding)) {
  if (this->stride.empty())
    this->stride = this->window;
}

AttrMap Pool2dOptions::toAttrs() const {
  AttrMap attrs;
  attrs.set("window", window);
  attrs.set("stride", stride);
  attrs.set("padding", padding);
  return attrs;
}

Tensor maxPool2d(Tensor x, const Pool2dOptions &options) {
  return x.builder().emit(OpKind::MaxPool2d, {x}, options.toAttrs());
}

Tensor avgPool2d(Tensor x, const Pool2dOptions &options) {
  return x.builder().emit(OpKind::AvgPool2d, {x}, options.toAttrs());
}

Tensor maxPool2dGrad(Tensor x, Tensor dy, const Pool2dOptions &options) {
  return x.builder().emit(OpKind::MaxPool2dGrad, {x, dy}, options.toAttrs());
}

Tensor avgPool2dGrad(Tensor dy, const Shape &xShape, const Pool2dOptions &options) {
  return dy.builder().emit(OpKind::AvgPool2dGrad, {dy}, options.toAttrs(),
                           TensorType{dy.dtype(), xShape});
}

// ---- Indexing and random -----------------------------------------------------

Tensor gather(Tensor table, Tensor idx, int64_t axis) {
  AttrMap attrs;
  attrs.set("axis", normalizeAxis(table, axis, "gather"));
  return table.builder().emit(OpKind::Gather, {table, idx}, std::move(attrs));
}

Tensor scatterAdd(Tensor idx, Tensor updates, const Shape &resultShape, int64_t axis) {
  AttrMap attrs;
  attrs.set("axis", axis);
  return idx.builder().emit(OpKind::ScatterAdd, {idx, updates}, std::move(attrs),
                            TensorType{updates.dtype(), resultShape});
}

Tensor rngUniform(Tensor seed, DType dtype, Shape shape, std::optional<int64_t> offset) {
  GraphBuilder &gb = seed.builder();
  TensorType type{dtype, std::move(shape)};
  AttrMap attrs;
  attrs.set("offset", int64_t(0));
  gb.check(OpKind::RngUniform, {seed.type()}, attrs, type);
  attrs.set("offset", offset ? *offset : gb.reserveRngOffsets(type.numElements()));
  return gb.emit(OpKind::RngUniform, {seed}, std::move(attrs), type);
}

} // namespace kiln
