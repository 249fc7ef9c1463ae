// Building graphs from C++: `GraphBuilder` owns the graph under construction
// and `Tensor` is a cheap handle to one of its values.
//
// Every node's type comes from kiln::inferType (ir/Verifier.h), so the builder
// holds no type rules of its own; a mistake (shape mismatch, wrong dtype, bad
// attribute) throws kiln::Error located at the node it would have created:
//   @mlp: %3 (matmul): error: matmul contraction sizes differ: 784 and 512 (...)
// Binary elementwise ops broadcast numpy-style and insert explicit `broadcast`
// nodes, since elementwise ops in the IR take operands of identical shape.
// Scalars (`x * 0.5`, `1.0 - x`) become a `constant` splat of the other
// operand's type.
#pragma once

#include "frontend/Init.h"
#include "ir/Graph.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

class GraphBuilder;

/// A handle to a value of a graph under construction: a graph argument or a
/// node result. Copies refer to the same value. A default-constructed Tensor
/// refers to nothing (`defined()` is false), e.g. an absent bias.
class Tensor {
public:
  Tensor() = default;
  Tensor(GraphBuilder *builder, Value *value) : builder_(builder), value_(value) {}

  bool defined() const { return value_ != nullptr; }
  /// The builder this value belongs to; a kiln::Error for an undefined Tensor.
  GraphBuilder &builder() const;
  Value *value() const { return value_; }

  const TensorType &type() const;
  DType dtype() const { return type().dtype; }
  const Shape &shape() const { return type().shape; }
  size_t rank() const { return shape().rank(); }
  /// The size of dimension `axis`; a negative axis counts from the end.
  int64_t dim(int64_t axis) const;
  int64_t numElements() const { return type().numElements(); }

  // Conveniences for the free functions below.
  Tensor reshape(std::vector<int64_t> dims) const;
  Tensor transpose(std::vector<int64_t> perm) const;
  Tensor cast(DType to) const;
  Tensor sum(std::vector<int64_t> axes, bool keepDims = false) const;
  Tensor mean(std::vector<int64_t> axes, bool keepDims = false) const;
  Tensor max(std::vector<int64_t> axes, bool keepDims = false) const;

private:
  GraphBuilder *builder_ = nullptr;
  Value *value_ = nullptr;
};

/// The range random feeds of an input are drawn from (`{low = 0, high = 512}`):
/// [low, high) for integer inputs, so random token ids and labels are valid.
struct FeedRange {
  double low;
  double high;
};

/// Builds one graph. Arguments are created by input/param/state, nodes by the
/// free functions below (or `emit`), and `finish` verifies and hands over the graph.
class GraphBuilder {
public:
  explicit GraphBuilder(std::string graphName);
  ~GraphBuilder();
  GraphBuilder(const GraphBuilder &) = delete;
  GraphBuilder &operator=(const GraphBuilder &) = delete;

  const std::string &name() const { return name_; }

  /// A value fed by the caller at every call.
  Tensor input(const std::string &name, DType dtype, Shape shape,
               std::optional<FeedRange> feedRange = std::nullopt);
  /// A persistent, trainable value, initialized as `init` says.
  Tensor param(const std::string &name, DType dtype, Shape shape, const Init &init);
  /// A persistent value that is not trained (running stats, step counters, ...).
  Tensor state(const std::string &name, DType dtype, Shape shape, const Init &init = Init::zeros());

  /// Adds `t` to the graph's results, optionally named (`loss`).
  void output(Tensor t, std::string name = {});
  /// After the step, the param or state `target` holds `value` (same type).
  void update(Tensor target, Tensor value);
  /// Verifies the graph (verifyGraph) and hands it over; the builder is then spent.
  std::unique_ptr<Graph> finish();

  /// Appends one node of `kind`. Its type is inferred by kiln::inferType;
  /// `given` is the result type for ops whose type cannot be inferred
  /// (GivenType in OpKind.def). The primitive under every helper.
  Tensor emit(OpKind kind, const std::vector<Tensor> &operands, AttrMap attrs = {},
              const std::optional<TensorType> &given = std::nullopt);
  /// The type `emit` would give, or a kiln::Error as `emit` would throw; adds nothing.
  TensorType check(OpKind kind, const std::vector<TensorType> &operandTypes,
                   const AttrMap &attrs = {},
                   const std::optional<TensorType> &given = std::nullopt) const;

  /// A splat of `value` (integral for integer and i1 types).
  Tensor constant(double value, DType dtype, Shape shape = {});
  /// A literal of `values`, row-major, one per element of `shape`.
  Tensor constant(const std::vector<double> &values, DType dtype, Shape shape);
  /// result[idx] = idx[dim].
  Tensor iota(DType dtype, Shape shape, int64_t dim);
  /// `count` fresh counters of the rng_uniform stream: successive calls never
  /// overlap, so random ops of one graph draw independent numbers.
  int64_t reserveRngOffsets(int64_t count);

  /// The graph so far (for inspection; `finish` hands it over).
  const Graph &graph() const;
  /// Throws kiln::Error located at the node `kind` would create next.
  [[noreturn]] void fail(OpKind kind, const std::string &message) const;
  /// Throws kiln::Error located at the graph.
  [[noreturn]] void fail(const std::string &message) const;

private:
  Graph &live() const;
  Argument *addArgument(const std::string &name, DType dtype, Shape shape, ArgRole role,
                        AttrMap attrs);
  void checkOperand(const Tensor &t, const std::string &what) const;

  std::string name_;
  std::unique_ptr<Graph> graph_;
  int64_t nextRngOffset_ = 0;
};

// ---- Elementwise unary -------------------------------------------------------
Tensor neg(Tensor x);
Tensor abs(Tensor x);
Tensor exp(Tensor x);
Tensor log(Tensor x);
Tensor sqrt(Tensor x);
Tensor rsqrt(Tensor x);
Tensor tanh(Tensor x);
Tensor logistic(Tensor x);
Tensor erf(Tensor x);
Tensor sin(Tensor x);
Tensor cos(Tensor x);
Tensor sign(Tensor x);
Tensor floor(Tensor x);
Tensor logicalNot(Tensor x);
Tensor cast(Tensor x, DType to);

// ---- Elementwise binary, broadcasting numpy-style ----------------------------
// A scalar operand is a constant splat of the tensor operand's type.
#define KILN_BINARY_DECL(fn)                                                                     \
  Tensor fn(Tensor a, Tensor b);                                                                 \
  Tensor fn(Tensor a, double b);                                                                 \
  Tensor fn(double a, Tensor b);
KILN_BINARY_DECL(add)
KILN_BINARY_DECL(sub)
KILN_BINARY_DECL(mul)
KILN_BINARY_DECL(div)
KILN_BINARY_DECL(maximum)
KILN_BINARY_DECL(minimum)
KILN_BINARY_DECL(pow)
KILN_BINARY_DECL(eq)
KILN_BINARY_DECL(ne)
KILN_BINARY_DECL(lt)
KILN_BINARY_DECL(le)
KILN_BINARY_DECL(gt)
KILN_BINARY_DECL(ge)
KILN_BINARY_DECL(operator+)
KILN_BINARY_DECL(operator-)
KILN_BINARY_DECL(operator*)
KILN_BINARY_DECL(operator/)
#undef KILN_BINARY_DECL
Tensor operator-(Tensor x);
Tensor logicalAnd(Tensor a, Tensor b);
Tensor logicalOr(Tensor a, Tensor b);
/// cond ? a : b, the three broadcast to one shape.
Tensor select(Tensor cond, Tensor a, Tensor b);
Tensor select(Tensor cond, Tensor a, double b);
Tensor select(Tensor cond, double a, Tensor b);

// ---- Shape -------------------------------------------------------------------
/// numpy's broadcast of two shapes (trailing dims aligned; 1 stretches), or nullopt.
std::optional<Shape> broadcastShapes(const Shape &a, const Shape &b);
/// The `broadcast` op: operand dim i becomes result dim dims[i].
Tensor broadcast(Tensor x, Shape shape, std::vector<int64_t> dims);
/// numpy-style broadcast to `shape`; `x` itself when it already has that shape.
Tensor broadcastTo(Tensor x, const Shape &shape);
/// Row-major reshape; one dim may be -1 (inferred). `x` itself when the shape is unchanged.
Tensor reshape(Tensor x, std::vector<int64_t> dims);
/// Result dim i is operand dim perm[i].
Tensor transpose(Tensor x, std::vector<int64_t> perm);
/// Per-dim [start, limit) with stride (default 1).
Tensor slice(Tensor x, std::vector<int64_t> start, std::vector<int64_t> limit,
             std::vector<int64_t> stride = {});
/// A slice along one axis (negative counts from the end), the others whole.
Tensor sliceAxis(Tensor x, int64_t axis, int64_t start, int64_t limit, int64_t stride = 1);
Tensor pad(Tensor x, std::vector<int64_t> low, std::vector<int64_t> high, double value = 0.0);
Tensor concat(const std::vector<Tensor> &parts, int64_t axis);

// ---- Reductions (negative axes count from the end) ---------------------------
Tensor reduceSum(Tensor x, std::vector<int64_t> axes, bool keepDims = false);
Tensor reduceMax(Tensor x, std::vector<int64_t> axes, bool keepDims = false);
/// reduceSum divided by the number of elements reduced.
Tensor reduceMean(Tensor x, std::vector<int64_t> axes, bool keepDims = false);
/// i32 index of the first maximum along `axis`, which is removed.
Tensor argmax(Tensor x, int64_t axis);

// ---- Contraction, convolution, pooling ---------------------------------------
/// [..., M, K] x [..., K, N] -> [..., M, N]; the flags transpose the last two dims.
Tensor matmul(Tensor a, Tensor b, bool transposeA = false, bool transposeB = false);

/// conv2d attributes, each [h, w]; padding is symmetric per side as in PyTorch.
struct Conv2dOptions {
  std::vector<int64_t> stride{1, 1};
  std::vector<int64_t> padding{0, 0};
  std::vector<int64_t> dilation{1, 1};
  int64_t groups = 1;

  Conv2dOptions() = default;
  /// Square stride, padding and dilation.
  Conv2dOptions(int64_t stride, int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1)
      : stride{stride, stride}, padding{padding, padding}, dilation{dilation, dilation},
        groups(groups) {}
  AttrMap toAttrs() const;
};
/// NCHW input, OIHW filter [O, C/groups, KH, KW].
Tensor conv2d(Tensor x, Tensor w, const Conv2dOptions &options = {});
/// The gradient w.r.t. the input of shape `xShape`.
Tensor conv2dGradInput(Tensor dy, Tensor w, const Shape &xShape, const Conv2dOptions &options = {});
/// The gradient w.r.t. the filter of shape `wShape`.
Tensor conv2dGradFilter(Tensor x, Tensor dy, const Shape &wShape,
                        const Conv2dOptions &options = {});

/// Pooling attributes, each [h, w]; an empty stride means stride = window (as in PyTorch).
struct Pool2dOptions {
  std::vector<int64_t> window;
  std::vector<int64_t> stride;
  std::vector<int64_t> padding{0, 0};

  Pool2dOptions(int64_t window, int64_t stride = 0, int64_t padding = 0);
  Pool2dOptions(std::vector<int64_t> window, std::vector<int64_t> stride = {},
                std::vector<int64_t> padding = {0, 0});
  AttrMap toAttrs() const;
};
Tensor maxPool2d(Tensor x, const Pool2dOptions &options);
Tensor avgPool2d(Tensor x, const Pool2dOptions &options);
Tensor maxPool2dGrad(Tensor x, Tensor dy, const Pool2dOptions &options);
Tensor avgPool2dGrad(Tensor dy, const Shape &xShape, const Pool2dOptions &options);

// ---- Indexing and random -----------------------------------------------------
/// numpy.take(table, idx, axis): shape table[:axis] + idx.shape + table[axis+1:].
Tensor gather(Tensor table, Tensor idx, int64_t axis = 0);
/// Zeros of `resultShape` (updates' dtype) plus each update added at its index along `axis`.
Tensor scatterAdd(Tensor idx, Tensor updates, const Shape &resultShape, int64_t axis = 0);
/// Uniform [0, 1) from an i64[] seed; element i uses counter offset + i. Without
/// an offset, the builder reserves a fresh range (reserveRngOffsets).
Tensor rngUniform(Tensor seed, DType dtype, Shape shape,
                  std::optional<int64_t> offset = std::nullopt);

} // namespace kiln
