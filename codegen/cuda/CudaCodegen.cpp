// One kernel (a fusion body or a single op) -> CUDA C++ source text.
//
// As in the CPU emitter (codegen/cpu/KernelEmitter.cpp), a body value is not
// stored: `at(value, coords)` writes the statements that compute its element
// at a coordinate vector, walking back through elementwise ops and index maps
// (broadcast, reshape, transpose, slice, pad, concat) to loads of the
// kernel's operands. Coordinates are C expressions, each with the depth of
// the scope that defines its variables; an element is computed in the scope
// of its deepest coordinate, so loop-invariant values (a row's maximum inside
// the loop over the row) are hoisted out of loops, and memoized per scope.
//
// A reduction's element is a loop over the reduced elements. Two kernel shapes:
// - "row": when a reduction reduces the innermost axes of its operand and
//   every result starts with the kept (leading) dimensions, e.g. softmax,
//   layer_norm and cross-entropy rows. One block per row (grid-stride over
//   rows); a reduction computed at row scope is block-wide: each thread
//   accumulates a strided share, then warp shuffles (__shfl_xor_sync) and
//   the warps' partials in warp order (kiln_block_reduce). Results are
//   written by a loop of the block's threads over the row's elements.
// - "loop": a grid-stride loop over the results' elements, one thread per
//   element; its reductions are loops of that thread (correct for any axes;
//   column sums read coalesced across threads).
// Both are deterministic (no atomics). Float sums accumulate in double (f64
// partials in the block tree), as the interpreter does; bf16/f16 compute in
// f32; integer ops wrap; integer division and float-to-int casts follow the
// interpreter (kiln_idiv, kiln_f2i32/64 in the preamble).
#include "codegen/cuda/CudaCodegen.h"
#include "codegen/cuda/CudaScalarOps.h"
#include "codegen/IndexMaps.h"

#include "ir/Graph.h"
#include "runtime/Error.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

namespace kiln {

namespace {

using namespace cuda; // the scalar side: CudaScalarOps.h

[[noreturn]] void unsupported(const Node &node, const std::string &why) {
  throwError(node.loc().known() ? node.loc().toString() : "",
             "the CUDA backend cannot compile " + std::string(opName(node.kind())) + ": " + why);
}

bool isReduction(OpKind kind) {
  return kind == OpKind::ReduceSum || kind == OpKind::ReduceMax || kind == OpKind::Argmax;
}


int64_t product(const std::vector<int64_t> &dims) {
  int64_t p = 1;
  for (int64_t d : dims)
    p *= d;
  return p;
}

/// A coordinate: a C expression of type kiln_idx and the depth of the
/// innermost scope whose variables it uses.
struct Coord {
  std::string expr;
  int depth = 0;
};
using Coords = std::vector<Coord>;

struct Scope {
  std::string header; // the loop's opening line; empty for the kernel's top
  std::string code;
  std::map<std::string, std::string> memo; // value@coords -> variable
  bool uniform = true; // every thread of the block runs it alike (block reductions allowed)
};

/// A loop kernel whose reductions reach this length splits them over a block
/// ("split" kernels).
constexpr int64_t kSplitReduction = 256;

class Emitter {
public:
  Emitter(const Node &node, std::string name) : node_(node), name_(std::move(name)) {}
  CudaKernel run();

private:
  // --- Scopes ----------------------------------------------------------------
  void line(int depth, const std::string &text) {
    chain_[size_t(depth)]->code += std::string(size_t(2 * depth + 2), ' ') + text + "\n";
  }
  std::string fresh(const char *prefix) { return prefix + std::to_string(counter_++); }
  std::string define(int depth, const std::string &type, const std::string &expr) {
    std::string name = fresh("v");
    line(depth, "const " + type + " " + name + " = " + expr + ";");
    return name;
  }
  /// Opens a loop inside scope `depth` (deeper open scopes are set aside
  /// until closeLoop): code emitted there now lands before them.
  int openLoop(int depth, const std::string &header, bool uniform = false) {
    suspended_.emplace_back();
    auto &saved = suspended_.back();
    for (size_t d = size_t(depth) + 1; d < chain_.size(); ++d)
      saved.push_back(std::move(chain_[d]));
    chain_.resize(size_t(depth) + 1);
    chain_.push_back(std::make_unique<Scope>());
    chain_.back()->header = header;
    chain_.back()->uniform = uniform && chain_[size_t(depth)]->uniform;
    return depth + 1;
  }
  void closeLoop() {
    std::unique_ptr<Scope> inner = std::move(chain_.back());
    chain_.pop_back();
    int depth = int(chain_.size()) - 1;
    line(depth, inner->header);
    chain_.back()->code += inner->code;
    line(depth, "}");
    for (auto &s : suspended_.back())
      chain_.push_back(std::move(s));
    suspended_.pop_back();
  }

  // --- Coordinates -----------------------------------------------------------
  // Index arithmetic is `kiln_idx` (a typedef in each kernel): int when every
  // tensor of the kernel has fewer than 2^30 elements (64-bit division is many
  // instructions on a GPU), else long long.
  std::string ll(int64_t v) const { return std::to_string(v) + (narrow_ ? "" : "LL"); }
  std::string zero() const { return narrow_ ? "0" : "0LL"; }
  Coords zeros(size_t rank) const { return Coords(rank, Coord{zero(), 0}); }
  static int depthOf(const Coords &c) {
    int d = 0;
    for (const Coord &x : c)
      d = std::max(d, x.depth);
    return d;
  }
  Coord linear(const Coords &c, const std::vector<int64_t> &strides) const {
    std::string sum;
    int depth = 0;
    for (size_t d = 0; d < c.size(); ++d) {
      if (c[d].expr == zero())
        continue;
      std::string term = strides[d] == 1 ? c[d].expr : c[d].expr + " * " + ll(strides[d]);
      sum = sum.empty() ? term : sum + " + " + term;
      depth = std::max(depth, c[d].depth);
    }
    return sum.empty() ? Coord{zero(), 0} : Coord{"(" + sum + ")", depth};
  }
  Coords unflatten(const Coord &flat, const std::vector<int64_t> &dims) {
    Coords c(dims.size());
    int64_t stride = 1;
    for (size_t d = dims.size(); d-- > 0;) {
      if (dims[d] == 1) {
        c[d] = Coord{zero(), 0};
      } else {
        std::string e = stride == 1 ? flat.expr : "(" + flat.expr + " / " + ll(stride) + ")";
        if (d != 0)
          e = e + " % " + ll(dims[d]);
        std::string name = fresh("i");
        line(flat.depth, "const kiln_idx " + name + " = " + e + ";");
        c[d] = Coord{name, flat.depth};
      }
      stride *= dims[d];
    }
    return c;
  }

  // --- Elements --------------------------------------------------------------
  std::string at(const Value *v, Coords coords);
  std::string compute(const Node &node, const Coords &c, int depth);
  std::string reduction(const Node &node, const Coords &c, int depth);
  void markUniform(const std::vector<const Node *> &nodes);

  const Node &node_;
  std::string name_;
  int counter_ = 0;
  std::vector<std::unique_ptr<Scope>> chain_;
  std::vector<std::vector<std::unique_ptr<Scope>>> suspended_;
  std::unordered_map<const Value *, size_t> inputs_; // value -> parameter index
  std::set<const Value *> uniform_;                   // the same element everywhere
  // The element the loop computes: its flat index and coordinates in
  // `rootShape_`. An input of that shape read there is read at the flat
  // index (no index arithmetic), or from a vector loaded before the lanes.
  const Shape *rootShape_ = nullptr;
  std::string rootIndex_;
  Coords rootCoords_;
  std::map<size_t, std::string> lanes_; // parameter index -> its float4/int4 of this iteration
  std::string globals_;                               // literal tables
  bool rowMode_ = false;
  bool narrow_ = false; // int index arithmetic
  int64_t maxReduced_ = 1; // the largest reduction extent (row kernels' block size)
  bool splitMode_ = false; // a "split" kernel: 32 outputs per block, their reductions over 8 warps
};

void Emitter::markUniform(const std::vector<const Node *> &nodes) {
  for (const auto &[v, index] : inputs_)
    if (v->type.shape.rank() == 0)
      uniform_.insert(v);
  for (const Node *n : nodes) {
    bool uniform;
    if (n->kind() == OpKind::Constant)
      uniform = n->attr("value").isNumber();
    else if (n->info().has(OpTrait::Elementwise) || n->kind() == OpKind::Broadcast ||
             n->kind() == OpKind::Reshape || n->kind() == OpKind::Transpose || n->kind() == OpKind::Slice)
      uniform = true;
    else
      uniform = false;
    for (const Value *v : n->operands())
      uniform = uniform && uniform_.count(v);
    if (uniform)
      uniform_.insert(n->result());
  }
}

std::string Emitter::at(const Value *v, Coords coords) {
  if (uniform_.count(v))
    coords = zeros(v->type.shape.rank());
  int depth = depthOf(coords);
  std::string key = std::to_string(reinterpret_cast<uintptr_t>(v));
  for (const Coord &c : coords)
    key += "," + c.expr;
  auto &memo = chain_[size_t(depth)]->memo;
  if (auto hit = memo.find(key); hit != memo.end())
    return hit->second;
  std::string result;
  if (auto in = inputs_.find(v); in != inputs_.end()) {
    // (A root of one element has no coordinate to match: any read is a scalar's.)
    bool root = rootShape_ && v->type.shape == *rootShape_ && depthOf(rootCoords_) > 0 &&
                coords.size() == rootCoords_.size() &&
                std::equal(coords.begin(), coords.end(), rootCoords_.begin(),
                           [](const Coord &a, const Coord &b) { return a.expr == b.expr; });
    std::string element = "p" + std::to_string(in->second) + "[" +
                          (root ? rootIndex_ : linear(coords, v->type.shape.strides()).expr) + "]";
    if (root && lanes_.count(in->second))
      element = "(&" + lanes_.at(in->second) + ".x)[u]";
    result = define(depth, computeType(v->type.dtype), loadExpr(element, v->type.dtype));
  } else if (v->node) {
    result = compute(*v->node, coords, depth);
  } else {
    throwError("", "internal error: a CUDA kernel reads a value that is neither an operand nor computed");
  }
  chain_[size_t(depth)]->memo[key] = result;
  return result;
}

std::string Emitter::compute(const Node &node, const Coords &c, int depth) {
  const TensorType &type = node.type();
  const Shape &shape = type.shape;
  std::string T = computeType(type.dtype);
  if (node.info().has(OpTrait::Elementwise) && node.kind() != OpKind::Constant) {
    std::vector<std::string> x;
    for (const Value *operand : node.operands())
      x.push_back(at(operand, c));
    return define(depth, T, elementwiseExpr(node, x));
  }
  switch (node.kind()) {
  case OpKind::Constant: {
    const Attribute &value = node.attr("value");
    if (value.isNumber())
      return literal(value.asNumber(), type.dtype);
    std::string table = name_ + "_literal" + std::to_string(counter_++);
    globals_ += "__device__ const " + T + " " + table + "[] = {";
    std::vector<double> numbers = value.asNumbers();
    for (size_t i = 0; i < numbers.size(); ++i)
      globals_ += (i ? ", " : "") + literal(numbers[i], type.dtype);
    globals_ += "};\n";
    return define(depth, T, table + "[" + linear(c, shape.strides()).expr + "]");
  }
  case OpKind::Iota: {
    const Coord &k = c[size_t(node.intAttr("dim"))];
    return define(depth, T, castExpr(k.expr, DType::I64, type.dtype));
  }
  case OpKind::Broadcast: {
    const Value *x = node.operand(0);
    const auto &dims = node.intsAttr("dims");
    Coords source(dims.size());
    for (size_t k = 0; k < dims.size(); ++k)
      source[k] = x->type.shape[k] == 1 ? Coord{zero(), 0} : c[size_t(dims[k])];
    return at(x, source);
  }
  case OpKind::Reshape: {
    // Equal leading and trailing dimensions keep their coordinates; the
    // middle goes through a flat index (codegen/IndexMaps.h).
    const Shape &in = node.operand(0)->type.shape;
    size_t ro = shape.rank(), ri = in.rank();
    ReshapeSplit split = reshapeSplit(shape, in);
    size_t l = split.leading, t = split.trailing;
    Coords source(ri);
    for (size_t i = 0; i < l; ++i)
      source[i] = c[i];
    for (size_t j = 0; j < t; ++j)
      source[ri - 1 - j] = c[ro - 1 - j];
    std::vector<int64_t> outMiddle(shape.dims().begin() + long(l), shape.dims().end() - long(t));
    std::vector<int64_t> inMiddle(in.dims().begin() + long(l), in.dims().end() - long(t));
    if (!inMiddle.empty()) {
      Coords middle(c.begin() + long(l), c.end() - long(t));
      Coords unflat = unflatten(linear(middle, Shape(outMiddle).strides()), inMiddle);
      for (size_t i = 0; i < inMiddle.size(); ++i)
        source[l + i] = unflat[i];
    }
    return at(node.operand(0), source);
  }
  case OpKind::Transpose: {
    const auto &perm = node.intsAttr("perm");
    Coords source(perm.size());
    for (size_t k = 0; k < perm.size(); ++k)
      source[size_t(perm[k])] = c[k];
    return at(node.operand(0), source);
  }
  case OpKind::Slice: {
    const auto &start = node.intsAttr("start"), &stride = node.intsAttr("stride");
    Coords source = c;
    for (size_t d = 0; d < source.size(); ++d) {
      std::string e = source[d].expr;
      if (stride[d] != 1)
        e = e + " * " + ll(stride[d]);
      if (start[d] != 0)
        e = e + " + " + ll(start[d]);
      if (e != source[d].expr)
        source[d].expr = "(" + e + ")";
    }
    return at(node.operand(0), source);
  }
  case OpKind::Pad: {
    const auto &low = node.intsAttr("low");
    const Shape &xs = node.operand(0)->type.shape;
    std::string inside;
    Coords source(c.size());
    for (size_t d = 0; d < c.size(); ++d) {
      if (low[d] == 0 && xs[d] == shape[d]) {
        source[d] = c[d];
        continue;
      }
      // Unsigned compare: coord - low < dim covers both bounds at once.
      std::string shifted = low[d] == 0 ? c[d].expr : "(" + c[d].expr + " - " + ll(low[d]) + ")";
      std::string ok = define(c[d].depth, "bool", "((kiln_u64)" + shifted + " < (kiln_u64)" + ll(xs[d]) + ")");
      inside = inside.empty() ? ok : inside + " && " + ok;
      source[d] = Coord{"(" + ok + " ? " + shifted + " : " + zero() + ")", c[d].depth};
    }
    std::string v = at(node.operand(0), source);
    if (inside.empty())
      return v;
    std::string fill = literal(node.attr("value").asNumber(), type.dtype);
    return define(depth, T, "((" + inside + ") ? " + v + " : " + fill + ")");
  }
  case OpKind::Concat: {
    // Every operand's element at a clamped coordinate, then the one whose
    // range holds the coordinate is selected.
    size_t axis = size_t(node.intAttr("axis"));
    std::string chosen;
    int64_t offset = shape[axis];
    for (size_t i = node.operands().size(); i-- > 0;) {
      const Value *x = node.operand(i);
      int64_t extent = x->type.shape[axis];
      offset -= extent;
      if (extent == 0)
        continue;
      Coords source = c;
      std::string shifted = offset == 0 ? c[axis].expr : "(" + c[axis].expr + " - " + ll(offset) + ")";
      source[axis].expr = "min(max(" + shifted + ", " + zero() + "), " + ll(extent - 1) + ")";
      std::string v = at(x, source);
      chosen = chosen.empty() ? v : "(" + c[axis].expr + " < " + ll(offset + extent) + " ? " + v + " : " + chosen + ")";
    }
    return define(depth, T, chosen);
  }
  case OpKind::RngUniform: {
    const Value *seed = node.operand(0);
    std::string key = at(seed, zeros(seed->type.shape.rank()));
    Coord index = linear(c, shape.strides());
    std::string u = "kiln_rng_uniform((kiln_u64)" + key + ", (kiln_u64)((long long)" + index.expr + " + " +
                    std::to_string(node.intAttr("offset")) + "LL))";
    return define(depth, T, castExpr(u, DType::F32, type.dtype));
  }
  case OpKind::ReduceSum:
  case OpKind::ReduceMax:
  case OpKind::Argmax:
    return reduction(node, c, depth);
  default:
    unsupported(node, "it is a library op, which is not generated inside a kernel");
  }
}

std::string Emitter::reduction(const Node &node, const Coords &c, int depth) {
  const Value *x = node.operand(0);
  const Shape &in = x->type.shape;
  std::vector<bool> reduced(in.rank(), false);
  if (node.kind() == OpKind::Argmax)
    reduced[size_t(node.intAttr("axis"))] = true;
  else
    for (int64_t a : node.intsAttr("axes"))
      reduced[size_t(a)] = true;
  std::vector<int64_t> reducedDims;
  for (size_t d = 0; d < in.rank(); ++d)
    if (reduced[d])
      reducedDims.push_back(in[d]);
  int64_t count = product(reducedDims);
  DType t = x->type.dtype;
  bool sum = node.kind() == OpKind::ReduceSum, argmax = node.kind() == OpKind::Argmax;
  // Float sums in double (as the interpreter), integer sums wrap in 64 bits.
  std::string acc = sum ? (isFloat(t) ? "double" : "kiln_u64") : computeType(t);
  std::string init;
  if (sum)
    init = isFloat(t) ? "0.0" : "0ull";
  else if (isFloat(t))
    init = isDouble(t) ? "(-KILN_INF_D)" : "(-KILN_INF_F)";
  else
    init = t == DType::I32 ? "(-2147483647 - 1)" : "(-9223372036854775807LL - 1)";
  // Block-wide only where every thread of the block runs alike: the kernel's
  // top and the row loop, not inside another reduction's or a row's loop.
  bool cooperative = (rowMode_ || splitMode_) && chain_[size_t(depth)]->uniform;
  std::string a = fresh("acc"), best = fresh("arg");
  line(depth, acc + " " + a + " = " + init + ";");
  if (argmax)
    line(depth, "long long " + best + " = 9223372036854775807LL;");
  std::string k = fresh("k");
  std::string header = "for (kiln_idx " + k + " = 0; " + k + " < " + ll(count) + "; ++" + k + ") {";
  if (cooperative && rowMode_)
    header = "for (kiln_idx " + k + " = threadIdx.x; " + k + " < " + ll(count) + "; " + k + " += blockDim.x) {";
  else if (cooperative) // split: warp w sums elements w, w + warps, ...
    header = "for (kiln_idx " + k + " = (kiln_idx)(threadIdx.x >> 5); " + k + " < " + ll(count) + "; " + k +
             " += (kiln_idx)(blockDim.x >> 5)) {";
  int inner = openLoop(depth, header);
  Coords r = unflatten(Coord{k, inner}, reducedDims);
  Coords full(in.rank());
  for (size_t d = 0, kept = 0, red = 0; d < in.rank(); ++d)
    full[d] = reduced[d] ? r[red++] : c[kept++];
  std::string v = at(x, full);
  if (sum)
    line(inner, a + " += (" + acc + ")" + v + ";");
  else if (argmax)
    line(inner, "kiln_arg_combine(" + a + ", " + best + ", " + v + ", " + k + ");");
  else
    line(inner, a + " = kiln_max(" + a + ", " + v + ");");
  closeLoop();
  if (cooperative && splitMode_) // (no argmax in split kernels)
    line(depth, a + " = kiln_split_reduce(" + a + (sum ? ", KilnSum());" : ", KilnMax());"));
  else if (cooperative) {
    if (argmax)
      line(depth, "kiln_block_argmax(" + a + ", " + best + ");");
    else
      line(depth, a + " = kiln_block_reduce(" + a + (sum ? ", KilnSum());" : ", KilnMax());"));
  }
  DType out = node.type().dtype;
  if (argmax)
    return define(depth, computeType(out),
                  castExpr("(" + best + " == 9223372036854775807LL ? 0LL : " + best + ")", DType::I64, out));
  if (sum && !isFloat(t))
    return define(depth, computeType(out), "(" + computeType(out) + ")(long long)" + a);
  return define(depth, computeType(out), castExpr(a, sum ? DType::F64 : t, out));
}

CudaKernel Emitter::run() {
  const Graph *body = node_.body();
  std::vector<const Value *> inputs, yields;
  std::vector<const Node *> nodes;
  if (body) {
    for (const auto &arg : body->arguments())
      inputs.push_back(&arg->value);
    for (const auto &inner : body->nodes())
      nodes.push_back(inner.get());
    yields.assign(body->results().begin(), body->results().end());
  } else {
    inputs.assign(node_.operands().begin(), node_.operands().end());
    nodes.push_back(&node_);
    yields.push_back(node_.result());
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    inputs_.emplace(inputs[i], i);
  for (const Node *n : nodes)
    if (n->info().has(OpTrait::Library))
      unsupported(*n, "it is a library op, which is not generated inside a kernel");
  markUniform(nodes);
  int64_t largest = 0;
  for (const Value *v : inputs)
    largest = std::max(largest, v->type.numElements());
  for (const Node *n : nodes)
    largest = std::max(largest, n->type().numElements());
  narrow_ = largest < (int64_t(1) << 30);

  // Row kernel: a reduction over the innermost axes whose kept (leading)
  // dimensions start every result's shape.
  std::vector<int64_t> rowDims;
  for (const Node *n : nodes) {
    if (!isReduction(n->kind()))
      continue;
    const Shape &in = n->operand(0)->type.shape;
    std::vector<int64_t> axes = n->kind() == OpKind::Argmax ? std::vector<int64_t>{n->intAttr("axis")}
                                                            : n->intsAttr("axes");
    std::sort(axes.begin(), axes.end());
    bool suffix = true;
    for (size_t i = 0; i < axes.size(); ++i)
      suffix = suffix && axes[i] == int64_t(in.rank() - axes.size() + i);
    int64_t count = 1;
    for (int64_t a : axes)
      count *= in[size_t(a)];
    maxReduced_ = std::max(maxReduced_, count);
    if (suffix && !rowMode_) {
      rowDims.assign(in.dims().begin(), in.dims().end() - long(axes.size()));
      rowMode_ = true;
    }
  }
  for (const Value *y : yields) {
    const auto &dims = y->type.shape.dims();
    if (dims.size() < rowDims.size() || !std::equal(rowDims.begin(), rowDims.end(), dims.begin()))
      rowMode_ = false;
  }

  chain_.push_back(std::make_unique<Scope>());
  std::string signature = "extern \"C\" __global__ void ";
  CudaKernel kernel;
  // Results of one shape are computed together, before any is stored (an
  // operand may share a result's buffer); several shapes share one loop over
  // the largest, each at a clamped index with a guarded store.
  std::vector<std::vector<size_t>> groups;
  for (size_t r = 0; r < yields.size(); ++r) {
    bool placed = false;
    for (auto &g : groups)
      if (yields[g[0]]->type.shape == yields[r]->type.shape)
        g.push_back(r), placed = true;
    if (!placed)
      groups.push_back({r});
  }
  auto store = [&](int depth, size_t r, const std::string &index, const std::string &value) {
    line(depth, "r" + std::to_string(r) + "[" + index + "] = " + storeExpr(value, yields[r]->type.dtype) + ";");
  };
  if (rowMode_) {
    int64_t rows = product(rowDims), widest = 1;
    for (const Value *y : yields)
      widest = std::max(widest, rows ? y->type.numElements() / rows : 0);
    int64_t block = std::clamp<int64_t>((std::max(widest, maxReduced_) + 31) / 32 * 32, 32, 256);
    kernel.launch.block = block;
    kernel.launch.grid = std::clamp<int64_t>(rows, 1, 65535);
    kernel.strategy = "row";
    signature += "__launch_bounds__(" + std::to_string(block) + ") ";
    int d = openLoop(0, "for (kiln_idx row = blockIdx.x; row < " + ll(rows) + "; row += gridDim.x) {", true);
    Coords rowCoords = unflatten(Coord{"row", d}, rowDims);
    // Per-row results (the shape is the row dims, maybe with trailing 1s):
    // computed by the block, stored by thread 0 after the row's other results.
    std::vector<std::pair<size_t, std::string>> perRow;
    std::vector<std::vector<size_t>> wide;
    for (const auto &g : groups) {
      if (yields[g[0]]->type.numElements() == rows) {
        for (size_t r : g) {
          Coords coords = rowCoords;
          coords.resize(yields[r]->type.shape.rank(), Coord{zero(), 0});
          perRow.emplace_back(r, castExpr(at(yields[r], coords), yields[r]->type.dtype, yields[r]->type.dtype));
        }
      } else if (yields[g[0]]->type.numElements() > 0) {
        wide.push_back(g);
      }
    }
    if (!wide.empty()) {
      int64_t most = 0;
      for (const auto &g : wide)
        most = std::max(most, yields[g[0]]->type.numElements() / rows);
      std::string j = fresh("j");
      int e = openLoop(d, "for (kiln_idx " + j + " = threadIdx.x; " + j + " < " + ll(most) + "; " + j +
                              " += blockDim.x) {");
      std::vector<std::pair<size_t, std::string>> values;
      std::vector<std::string> indices, guards;
      for (const auto &g : wide) {
        const Shape &shape = yields[g[0]]->type.shape;
        int64_t width = shape.numElements() / rows;
        std::string index = j;
        if (width < most)
          index = define(e, "kiln_idx", "min(" + j + ", " + ll(width - 1) + ")");
        std::vector<int64_t> innerDims(shape.dims().begin() + long(rowDims.size()), shape.dims().end());
        Coords coords = rowCoords;
        for (const Coord &x : unflatten(Coord{index, e}, innerDims))
          coords.push_back(x);
        for (size_t r : g)
          values.emplace_back(r, at(yields[r], coords));
        indices.push_back("row * " + ll(width) + " + " + index);
        guards.push_back(width < most ? j + " < " + ll(width) : "");
      }
      size_t v = 0;
      for (size_t gi = 0; gi < wide.size(); ++gi) {
        if (!guards[gi].empty())
          line(e, "if (" + guards[gi] + ") {");
        for (size_t n = 0; n < wide[gi].size(); ++n, ++v)
          store(e, values[v].first, indices[gi], values[v].second);
        if (!guards[gi].empty())
          line(e, "}");
      }
      closeLoop();
    }
    if (!perRow.empty()) {
      // Every thread has read the row's operands before thread 0 writes the
      // row's results (which the plan may have placed in an operand's buffer).
      line(d, "__syncthreads();");
      line(d, "if (threadIdx.x == 0) {");
      for (const auto &[r, value] : perRow)
        store(d, r, "row", value);
      line(d, "}");
    }
    closeLoop();
  } else {
    int64_t most = 0;
    for (const auto &g : groups)
      most = std::max(most, yields[g[0]]->type.numElements());
    kernel.launch.block = 256;
    kernel.strategy = "loop";
    signature += "__launch_bounds__(256) ";
    // Long reductions to few outputs (a bias gradient's column sums over every
    // token): one thread per output would leave the GPU idle, so 32 outputs
    // share a block and each output's reduction is split over its 8 warps.
    bool argmax = std::any_of(nodes.begin(), nodes.end(), [](const Node *n) { return n->kind() == OpKind::Argmax; });
    bool split = !argmax && maxReduced_ >= kSplitReduction && groups.size() == 1 && most > 0;
    // 16-byte loads and stores: one shape of 4-byte results, a multiple of 4
    // elements; each thread computes 4 consecutive elements (lanes) from the
    // float4/int4 of every input of that shape.
    auto vectorType = [](DType t) { return t == DType::F32 ? "float4" : t == DType::I32 ? "int4" : ""; };
    bool vector = !split && groups.size() == 1 && most >= 4 && most % 4 == 0 &&
                  std::all_of(yields.begin(), yields.end(), [&](const Value *y) { return *vectorType(y->type.dtype); });
    if (split) {
      kernel.strategy = "split";
      splitMode_ = true;
      const Shape &shape = yields[groups[0][0]]->type.shape;
      int64_t tiles = (most + 31) / 32;
      kernel.launch.grid = std::clamp<int64_t>(tiles, 1, 65535);
      int d = openLoop(0, "for (kiln_idx tile = blockIdx.x; tile < " + ll(tiles) + "; tile += gridDim.x) {", true);
      // Every thread of the block runs the tile (the reductions synchronize):
      // a lane past the end computes the last output again and stores nothing.
      line(d, "const kiln_idx i = min(tile * 32 + (kiln_idx)(threadIdx.x & 31u), " + ll(most - 1) + ");");
      rootShape_ = &shape, rootIndex_ = "i", rootCoords_ = unflatten(Coord{"i", d}, shape.dims());
      std::vector<std::string> values;
      for (size_t r : groups[0])
        values.push_back(at(yields[r], rootCoords_));
      rootShape_ = nullptr;
      line(d, "if ((threadIdx.x >> 5) == 0u && tile * 32 + (kiln_idx)(threadIdx.x & 31u) < " + ll(most) + ") {");
      for (size_t n = 0; n < groups[0].size(); ++n)
        store(d, groups[0][n], "i", values[n]);
      line(d, "}");
      closeLoop();
    } else if (vector) {
      const Shape &shape = yields[0]->type.shape;
      int64_t quads = most / 4;
      kernel.launch.grid = std::clamp<int64_t>((quads + 255) / 256, 1, 65535);
      kernel.launch.alignment = 16;
      int d = openLoop(0, "for (kiln_idx q = blockIdx.x * (kiln_idx)blockDim.x + threadIdx.x; q < " + ll(quads) +
                              "; q += (kiln_idx)gridDim.x * (kiln_idx)blockDim.x) {");
      for (size_t i = 0; i < inputs.size(); ++i) {
        const char *type = vectorType(inputs[i]->type.dtype);
        if (!*type || inputs[i]->type.shape != shape || uniform_.count(inputs[i]))
          continue;
        lanes_[i] = fresh("x");
        line(d, "const " + std::string(type) + " " + lanes_[i] + " = reinterpret_cast<const " + type + "*>(p" +
                    std::to_string(i) + ")[q];");
      }
      for (size_t r : groups[0])
        line(d, std::string(vectorType(yields[r]->type.dtype)) + " y" + std::to_string(r) + ";");
      int e = openLoop(d, "#pragma unroll\n" + std::string(size_t(2 * d + 2), ' ') + "for (int u = 0; u < 4; ++u) {");
      line(e, "const kiln_idx i = q * 4 + u;");
      rootShape_ = &shape, rootIndex_ = "i", rootCoords_ = unflatten(Coord{"i", e}, shape.dims());
      std::vector<std::string> values;
      for (size_t r : groups[0])
        values.push_back(at(yields[r], rootCoords_));
      for (size_t n = 0; n < groups[0].size(); ++n) {
        size_t r = groups[0][n];
        line(e, "(&y" + std::to_string(r) + ".x)[u] = " + storeExpr(values[n], yields[r]->type.dtype) + ";");
      }
      closeLoop();
      for (size_t r : groups[0])
        line(d, "reinterpret_cast<" + std::string(vectorType(yields[r]->type.dtype)) + "*>(r" + std::to_string(r) +
                    ")[q] = y" + std::to_string(r) + ";");
      closeLoop();
    } else {
      kernel.launch.grid = std::clamp<int64_t>((most + 255) / 256, 1, 65535);
      int d = openLoop(0, "for (kiln_idx i = blockIdx.x * (kiln_idx)blockDim.x + threadIdx.x; i < " + ll(most) +
                              "; i += (kiln_idx)gridDim.x * (kiln_idx)blockDim.x) {");
      std::vector<std::pair<size_t, std::string>> values;
      std::vector<std::string> indices, guards;
      std::vector<const std::vector<size_t> *> live;
      for (const auto &g : groups) {
        const Shape &shape = yields[g[0]]->type.shape;
        int64_t total = shape.numElements();
        if (total == 0)
          continue;
        std::string index = total < most ? define(d, "kiln_idx", "min(i, " + ll(total - 1) + ")") : "i";
        Coords coords = unflatten(Coord{index, d}, shape.dims());
        rootShape_ = &shape, rootIndex_ = index, rootCoords_ = coords;
        for (size_t r : g)
          values.emplace_back(r, at(yields[r], coords));
        indices.push_back(index);
        guards.push_back(total < most ? "i < " + ll(total) : "");
        live.push_back(&g);
      }
      rootShape_ = nullptr;
      size_t v = 0;
      for (size_t gi = 0; gi < live.size(); ++gi) {
        if (!guards[gi].empty())
          line(d, "if (" + guards[gi] + ") {");
        for (size_t n = 0; n < live[gi]->size(); ++n, ++v)
          store(d, values[v].first, indices[gi], values[v].second);
        if (!guards[gi].empty())
          line(d, "}");
      }
      closeLoop();
    }
  }

  std::string params;
  for (size_t i = 0; i < inputs.size(); ++i)
    params += (i ? ", const " : "const ") + cudaStorageType(inputs[i]->type.dtype) + "* p" + std::to_string(i);
  for (size_t r = 0; r < yields.size(); ++r)
    params += (params.empty() ? "" : ", ") + cudaStorageType(yields[r]->type.dtype) + "* r" + std::to_string(r);
  kernel.launch.kernel = name_;
  kernel.launch.parameters = int64_t(inputs.size() + yields.size());
  kernel.source = "// " + std::string(opName(node_.kind())) +
                  (body ? " (" + node_.attr("kind").asString() + ")" : std::string()) + ": " + kernel.strategy +
                  " kernel\n" + globals_ + signature + name_ + "(" + params + ") {\n  typedef " +
                  (narrow_ ? "int" : "long long") + " kiln_idx;\n" + chain_[0]->code + "}\n";
  return kernel;
}

} // namespace

std::string cudaStorageType(DType t) {
  switch (t) {
  case DType::F32: return "float";
  case DType::F64: return "double";
  case DType::BF16: case DType::F16: return "unsigned short";
  case DType::I32: return "int";
  case DType::I64: return "long long";
  case DType::I1: return "unsigned char";
  }
  return "float";
}

CudaKernel generateCudaKernel(const Node &node, const std::string &name) {
  return Emitter(node, name).run();
}

} // namespace kiln
