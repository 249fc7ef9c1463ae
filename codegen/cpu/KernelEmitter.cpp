// Lowering of one kernel (a fusion body or a single op) to an MLIR function
// over flat memrefs. See KernelEmitter.h.
//
// A kernel is fused loops, not one loop per op. Most body values are never
// stored: `at(value, coords)` builds the value's element at a coordinate
// vector as SSA code, walking back through elementwise ops and index maps
// (broadcast, transpose, reshape, slice, pad, concat) to loads of the kernel's
// operands. Only a few values are materialized into buffers, each by a loop
// nest of its own: reductions and argmax (their operand's elements built
// inline in the nest's inner loops) and the operands of expanding broadcasts
// (so an expensive element is not recomputed for every copy). The results
// are then written by one nest over their shape. Innermost loops walk the
// innermost dimension with unit stride, so LLVM's loop vectorizer turns them
// into vector code (math ops use MLIR's polynomial approximations, which
// vectorize; float sums are marked reassociable).
//
// Parallelism: the kernel's outermost loop over dimension 0 of its results
// runs [begin, end) (the runtime splits [0, N) over its threads). A buffer
// materialized inside the kernel is computed only for those rows when every
// read of it is at the row being computed; the emitter checks each read and,
// when one is elsewhere, makes that buffer full (every call computes all of
// it) and emits the kernel again. Results never depend on the split.
#include "codegen/cpu/KernelEmitter.h"
#include "codegen/cpu/ScalarOps.h"
#include "codegen/IndexMaps.h"

#include "ir/Graph.h"
#include "runtime/Error.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

namespace kiln {

using namespace mlir;

namespace {

// Inside the code generator, Value and Location are MLIR's; the IR's are
// spelled kiln::Value, kiln::TensorType, kiln::Attribute.
using mlir::Location;
using mlir::Type;
using mlir::Value;
using Coords = std::vector<Value>;

/// Temporaries up to this size live on the stack.
constexpr int64_t kStackBytes = 64 * 1024;


bool isReduction(OpKind kind) {
  return kind == OpKind::ReduceSum || kind == OpKind::ReduceMax || kind == OpKind::Argmax;
}

/// A value whose elements live in memory: a kernel operand, a result, or a
/// buffer materialized inside the kernel. Elements are stored as `storage`
/// (f64 for the accumulator of an f32 sum) and read as `type.dtype`.
struct Buffer {
  Value memory;
  kiln::TensorType type;
  DType storage;
  bool rowsOnly = false; // only the rows [begin, end) of dimension 0 are written
};

/// The choices one emission of a kernel is made with; a failed attempt
/// changes them and the kernel is emitted again.
struct Attempt {
  bool serial = false;                  // no row split: every nest runs in full
  std::set<const kiln::Value *> full;   // materialized values every call computes whole
};

class KernelEmitter {
public:
  KernelEmitter(OpBuilder &b, ModuleOp module, Location loc)
      : b_(b), module_(module), loc_(loc), scalar_(b, loc) {}

  KernelSchedule emit(const KernelRequest &request);

private:
  // --- Types and scalar ops (ScalarOps.h) ------------------------------------
  Type storageType(DType t) { return scalar_.storageType(t); }
  Type computeType(DType t) { return scalar_.computeType(t); }
  Value constantOf(double v, DType t) { return scalar_.constant(v, t); }
  Value castValue(Value v, DType from, DType to) { return scalar_.cast(v, from, to); }
  Value elementwise(const Node &node, const std::vector<Value> &x) { return scalar_.elementwise(node, x); }
  MemRefType memrefType(int64_t elements, DType t) {
    return MemRefType::get({std::max<int64_t>(elements, 1)}, storageType(t));
  }
  MemRefType memrefType(const kiln::TensorType &t) { return memrefType(t.numElements(), t.dtype); }

  // --- Index arithmetic ----------------------------------------------------
  Value index(int64_t v) { return b_.create<arith::ConstantIndexOp>(loc_, v); }
  Value linear(const Coords &coords, const std::vector<int64_t> &strides);
  Coords unflatten(Value flat, const std::vector<int64_t> &dims);

  // --- Loops ---------------------------------------------------------------
  /// Loops over `extents`, outermost first, calling `body` with the induction
  /// variables in the innermost loop. Loop `rowLoop` (if >= 0) runs
  /// [begin, end) instead of [0, extent) and its variable is the nest's row.
  void nest(const std::vector<int64_t> &extents, int rowLoop, const std::function<void(const Coords &)> &body);
  /// Loops over `extents` carrying `init` values; `body(ivs, carried)` returns
  /// the next values. Returns the final values.
  std::vector<Value> carriedNest(const std::vector<int64_t> &extents, std::vector<Value> init,
                                 const std::function<std::vector<Value>(const Coords &, const std::vector<Value> &)> &body);

  // --- Elements ------------------------------------------------------------
  /// The element of `v` at `coords`, in the compute type of its dtype.
  Value at(const kiln::Value *v, const Coords &coords);
  Value compute(const Node &node, const Coords &coords);
  Value load(const kiln::Value *v, const Buffer &buffer, const Coords &coords);
  void store(const Buffer &buffer, Value flatIndex, Value element);

  // --- Materialized values -------------------------------------------------
  void materialize(const Node &node, const Buffer &into);
  void reduceRows(const Node &node, const Buffer &into);
  void reduceColumns(const Node &node, const Buffer &into);
  Buffer newBuffer(const kiln::TensorType &type, DType storage, bool rowsOnly);
  bool canSplitRows(const kiln::TensorType &type) const {
    return !attempt_.serial && type.shape.rank() > 0 && type.shape[0] == rows_;
  }

  /// One emission of the kernel; false when a read crossed rows (attempt_ changed).
  bool emitOnce(const KernelRequest &request, func::FuncOp &fn, KernelSchedule &schedule);

  OpBuilder &b_;
  ModuleOp module_;
  Location loc_;
  ScalarOps scalar_;

  // Per kernel.
  Attempt attempt_;
  int64_t rows_ = 0;   // the extent of dimension 0 of the results: the split loop
  Value begin_, end_;  // the rows this call computes
  Value row_;          // the current nest's row variable, null outside a split nest
  const kiln::Value *crossed_ = nullptr; // a rows-only buffer read at another row
  bool crossedResult_ = false;
  std::unordered_map<const kiln::Value *, Buffer> buffers_;
  std::unordered_map<const kiln::Value *, Value> scalars_;
  std::map<std::vector<const void *>, Value> memo_; // (value, coords) -> element, per innermost body
  std::vector<Value> heapBuffers_;
  Block *entry_ = nullptr;
  int64_t work_ = 0; // elements visited by all nests
  int globals_ = 0;
};

Value KernelEmitter::linear(const Coords &coords, const std::vector<int64_t> &strides) {
  Value sum;
  for (size_t d = 0; d < coords.size(); ++d) {
    if (!coords[d])
      continue;
    Value term = strides[d] == 1 ? coords[d] : b_.create<arith::MulIOp>(loc_, coords[d], index(strides[d])).getResult();
    sum = sum ? b_.create<arith::AddIOp>(loc_, sum, term).getResult() : term;
  }
  return sum ? sum : index(0);
}

Coords KernelEmitter::unflatten(Value flat, const std::vector<int64_t> &dims) {
  Coords coords(dims.size());
  int64_t stride = 1;
  for (size_t d = dims.size(); d-- > 0;) {
    Value c = stride == 1 ? flat : b_.create<arith::DivUIOp>(loc_, flat, index(stride)).getResult();
    if (d != 0)
      c = b_.create<arith::RemUIOp>(loc_, c, index(dims[d]));
    coords[d] = c;
    stride *= dims[d];
  }
  return coords;
}

void KernelEmitter::nest(const std::vector<int64_t> &extents, int rowLoop,
                         const std::function<void(const Coords &)> &body) {
  int64_t elements = 1;
  for (int64_t e : extents)
    elements *= e;
  work_ += elements;
  Coords ivs;
  Value savedRow = row_;
  std::function<void(size_t)> level = [&](size_t k) {
    if (k == extents.size()) {
      memo_.clear();
      body(ivs);
      memo_.clear();
      return;
    }
    bool split = int(k) == rowLoop;
    auto loop = b_.create<scf::ForOp>(loc_, split ? begin_ : index(0), split ? end_ : index(extents[k]), index(1));
    OpBuilder::InsertionGuard guard(b_);
    b_.setInsertionPointToStart(loop.getBody());
    ivs.push_back(loop.getInductionVar());
    if (split)
      row_ = loop.getInductionVar();
    level(k + 1);
    ivs.pop_back();
  };
  row_ = Value();
  level(0);
  row_ = savedRow;
}

std::vector<Value> KernelEmitter::carriedNest(
    const std::vector<int64_t> &extents, std::vector<Value> init,
    const std::function<std::vector<Value>(const Coords &, const std::vector<Value> &)> &body) {
  Coords ivs;
  std::function<std::vector<Value>(size_t, std::vector<Value>)> level = [&](size_t k, std::vector<Value> carried) {
    if (k == extents.size())
      return body(ivs, carried);
    auto loop = b_.create<scf::ForOp>(loc_, index(0), index(extents[k]), index(1), carried);
    {
      OpBuilder::InsertionGuard guard(b_);
      b_.setInsertionPointToStart(loop.getBody());
      ivs.push_back(loop.getInductionVar());
      std::vector<Value> inner(loop.getRegionIterArgs().begin(), loop.getRegionIterArgs().end());
      std::vector<Value> next = level(k + 1, inner);
      b_.create<scf::YieldOp>(loc_, next);
      ivs.pop_back();
    }
    return std::vector<Value>(loop.getResults().begin(), loop.getResults().end());
  };
  return level(0, std::move(init));
}

Value KernelEmitter::load(const kiln::Value *v, const Buffer &buffer, const Coords &coords) {
  if (buffer.rowsOnly && (coords.empty() || !row_ || coords[0] != row_) && !crossed_)
    crossed_ = v;
  Value element = b_.create<memref::LoadOp>(loc_, buffer.memory, ValueRange{linear(coords, buffer.type.shape.strides())});
  if (computeType(buffer.storage) != storageType(buffer.storage))
    element = b_.create<arith::ExtFOp>(loc_, computeType(buffer.storage), element);
  return castValue(element, buffer.storage, buffer.type.dtype);
}

void KernelEmitter::store(const Buffer &buffer, Value flatIndex, Value element) {
  if (computeType(buffer.storage) != storageType(buffer.storage))
    element = b_.create<arith::TruncFOp>(loc_, storageType(buffer.storage), element);
  b_.create<memref::StoreOp>(loc_, element, buffer.memory, ValueRange{flatIndex});
}

Value KernelEmitter::at(const kiln::Value *v, const Coords &coords) {
  if (auto s = scalars_.find(v); s != scalars_.end())
    return s->second;
  if (auto m = buffers_.find(v); m != buffers_.end())
    return load(v, m->second, coords);
  std::vector<const void *> key{v};
  for (Value c : coords)
    key.push_back(c.getAsOpaquePointer());
  if (auto hit = memo_.find(key); hit != memo_.end())
    return hit->second;
  Value element = compute(*v->node, coords);
  memo_[key] = element;
  return element;
}

Value KernelEmitter::compute(const Node &node, const Coords &c) {
  const kiln::TensorType &type = node.type();
  const Shape &shape = type.shape;
  if (node.info().has(OpTrait::Elementwise) && node.kind() != OpKind::Constant) {
    std::vector<Value> x;
    for (const kiln::Value *operand : node.operands())
      x.push_back(at(operand, c));
    return elementwise(node, x);
  }
  switch (node.kind()) {
  case OpKind::Constant: { // a literal: a private constant global, read like a buffer
    std::vector<double> numbers = node.attr("value").asNumbers();
    Type element = storageType(type.dtype);
    std::vector<mlir::Attribute> elements;
    for (double d : numbers) {
      if (isFloat(type.dtype))
        elements.push_back(b_.getFloatAttr(element, d));
      else
        elements.push_back(b_.getIntegerAttr(element, type.dtype == DType::I1 ? int64_t(d != 0) : int64_t(d)));
    }
    MemRefType mt = memrefType(type);
    std::string name = "kiln_literal_" + std::to_string(globals_++);
    while (module_.lookupSymbol(name))
      name = "kiln_literal_" + std::to_string(globals_++);
    Value global;
    {
      OpBuilder::InsertionGuard guard(b_);
      b_.setInsertionPointToStart(module_.getBody());
      b_.create<memref::GlobalOp>(loc_, name, b_.getStringAttr("private"), mt,
                                  DenseElementsAttr::get(RankedTensorType::get(mt.getShape(), element), elements),
                                  /*constant=*/true, IntegerAttr());
      b_.setInsertionPointToStart(entry_);
      global = b_.create<memref::GetGlobalOp>(loc_, mt, name);
    }
    buffers_[node.result()] = Buffer{global, type, type.dtype};
    return load(node.result(), buffers_[node.result()], c);
  }
  case OpKind::Iota: {
    Value asInt = b_.create<arith::IndexCastOp>(loc_, b_.getI64Type(), c[size_t(node.intAttr("dim"))]);
    return castValue(asInt, DType::I64, type.dtype);
  }
  case OpKind::Broadcast: {
    const kiln::Value *x = node.operand(0);
    const auto &dims = node.intsAttr("dims");
    Coords source(dims.size());
    for (size_t k = 0; k < dims.size(); ++k)
      source[k] = x->type.shape[k] == 1 ? index(0) : c[size_t(dims[k])];
    return at(x, source);
  }
  case OpKind::Reshape: {
    // Equal leading and trailing dimensions keep their coordinates (so the
    // innermost loop stays unit-stride: codegen/IndexMaps.h); the middle goes
    // through a flat index.
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
      Value flat = linear(middle, Shape(outMiddle).strides());
      Coords unflat = unflatten(flat, inMiddle);
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
      if (stride[d] != 1)
        source[d] = b_.create<arith::MulIOp>(loc_, source[d], index(stride[d]));
      if (start[d] != 0)
        source[d] = b_.create<arith::AddIOp>(loc_, source[d], index(start[d]));
    }
    return at(node.operand(0), source);
  }
  case OpKind::Pad: {
    const auto &low = node.intsAttr("low");
    const Shape &xs = node.operand(0)->type.shape;
    Value fill = castValue(constantOf(node.attr("value").asNumber(), DType::F64), DType::F64, type.dtype);
    Value inside;
    Coords source(c.size());
    for (size_t d = 0; d < c.size(); ++d) {
      if (low[d] == 0 && xs[d] == shape[d]) {
        source[d] = c[d];
        continue;
      }
      // Unsigned compare: coord - low < dim covers both bounds at once.
      Value shifted = low[d] == 0 ? c[d] : b_.create<arith::SubIOp>(loc_, c[d], index(low[d])).getResult();
      Value ok = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::ult, shifted, index(xs[d]));
      inside = inside ? b_.create<arith::AndIOp>(loc_, inside, ok).getResult() : ok;
      source[d] = b_.create<arith::SelectOp>(loc_, ok, shifted, index(0));
    }
    Value v = at(node.operand(0), source);
    return inside ? b_.create<arith::SelectOp>(loc_, inside, v, fill).getResult() : v;
  }
  case OpKind::Concat: {
    // Every operand's element at a clamped coordinate, then the one whose
    // range holds the coordinate is selected.
    size_t axis = size_t(node.intAttr("axis"));
    Value chosen;
    int64_t offset = shape[axis];
    for (size_t i = node.operands().size(); i-- > 0;) {
      const kiln::Value *x = node.operand(i);
      int64_t extent = x->type.shape[axis];
      offset -= extent;
      Coords source = c;
      Value shifted = offset == 0 ? c[axis] : b_.create<arith::SubIOp>(loc_, c[axis], index(offset)).getResult();
      Value clamped = b_.create<arith::MaxSIOp>(loc_, shifted, index(0));
      source[axis] = b_.create<arith::MinSIOp>(loc_, clamped, index(extent - 1));
      Value v = at(x, source);
      if (!chosen) {
        chosen = v;
        continue;
      }
      Value here = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::slt, c[axis], index(offset + extent));
      chosen = b_.create<arith::SelectOp>(loc_, here, v, chosen);
    }
    return chosen;
  }
  case OpKind::RngUniform: {
    auto fnType = b_.getFunctionType({b_.getI64Type(), b_.getI64Type()}, {b_.getF32Type()});
    if (!module_.lookupSymbol<func::FuncOp>("kiln_rng_uniform")) {
      OpBuilder::InsertionGuard guard(b_);
      b_.setInsertionPointToStart(module_.getBody());
      b_.create<func::FuncOp>(loc_, "kiln_rng_uniform", fnType).setPrivate();
    }
    const kiln::Value *seedValue = node.operand(0);
    Value seed = at(seedValue, Coords(seedValue->type.shape.rank(), index(0)));
    Value counter = b_.create<arith::AddIOp>(loc_, b_.create<arith::IndexCastOp>(loc_, b_.getI64Type(), linear(c, shape.strides())),
                                             b_.create<arith::ConstantOp>(loc_, b_.getI64IntegerAttr(node.intAttr("offset"))));
    Value u = b_.create<func::CallOp>(loc_, "kiln_rng_uniform", TypeRange{b_.getF32Type()}, ValueRange{seed, counter}).getResult(0);
    return castValue(u, DType::F32, type.dtype);
  }
  default:
    if (isReduction(node.kind()))
      unsupportedOp(node, "internal error: a reduction was not materialized");
    unsupportedOp(node, "it is a library op, which the runtime runs");
  }
}

Buffer KernelEmitter::newBuffer(const kiln::TensorType &type, DType storage, bool rowsOnly) {
  MemRefType mt = memrefType(type.numElements(), storage);
  int64_t bytes = std::max<int64_t>(type.numElements(), 1) * int64_t(dtypeSize(storage));
  OpBuilder::InsertionGuard guard(b_);
  b_.setInsertionPointToStart(entry_);
  Value memory;
  if (bytes <= kStackBytes) {
    memory = b_.create<memref::AllocaOp>(loc_, mt);
  } else {
    memory = b_.create<memref::AllocOp>(loc_, mt);
    heapBuffers_.push_back(memory);
  }
  return Buffer{memory, type, storage, rowsOnly};
}

void KernelEmitter::materialize(const Node &node, const Buffer &into) {
  if (node.kind() == OpKind::Argmax || node.kind() == OpKind::ReduceMax)
    return reduceRows(node, into);
  if (node.kind() == OpKind::ReduceSum) {
    const Shape &in = node.operand(0)->type.shape;
    const auto &axes = node.intsAttr("axes");
    bool innermostReduced = in.rank() == 0 || std::count(axes.begin(), axes.end(), int64_t(in.rank() - 1));
    return innermostReduced ? reduceRows(node, into) : reduceColumns(node, into);
  }
  // An elementwise or index-mapping value, written out.
  const Shape &shape = node.type().shape;
  nest(shape.dims(), into.rowsOnly ? 0 : -1, [&](const Coords &ivs) {
    store(into, linear(ivs, shape.strides()), at(node.result(), ivs));
  });
}

/// Kept dimensions outer (the first one split into rows), the reduced ones
/// inner with the accumulator carried in registers: for reductions over the
/// innermost dimension (softmax, layer_norm, cross-entropy rows) and argmax.
void KernelEmitter::reduceRows(const Node &node, const Buffer &into) {
  const kiln::Value *x = node.operand(0);
  const Shape &in = x->type.shape;
  std::vector<bool> reduced(in.rank(), false);
  if (node.kind() == OpKind::Argmax)
    reduced[size_t(node.intAttr("axis"))] = true;
  else
    for (int64_t a : node.intsAttr("axes"))
      reduced[size_t(a)] = true;
  std::vector<int64_t> keptExtents, reducedExtents;
  for (size_t d = 0; d < in.rank(); ++d)
    (reduced[d] ? reducedExtents : keptExtents).push_back(in[d]);
  DType t = x->type.dtype;
  bool sum = node.kind() == OpKind::ReduceSum, argmax = node.kind() == OpKind::Argmax;
  // f32/bf16/f16 sums accumulate in f64, as the reference interpreter does.
  DType acc = sum && isFloat(t) ? DType::F64 : t;
  std::vector<int64_t> outStrides = node.type().shape.strides();
  nest(keptExtents, into.rowsOnly ? 0 : -1, [&](const Coords &kept) {
    auto inputCoords = [&](const Coords &inner) {
      Coords coords(in.rank());
      for (size_t d = 0, k = 0, r = 0; d < in.rank(); ++d)
        coords[d] = reduced[d] ? inner[r++] : kept[k++];
      return coords;
    };
    std::vector<Value> init;
    if (sum)
      init = {constantOf(0, acc)};
    else if (isFloat(t))
      init = {constantOf(-INFINITY, t)};
    else
      init = {constantOf(t == DType::I32 ? double(INT32_MIN) : -9.2233720368547758e18, t)};
    if (argmax)
      init.push_back(index(0));
    auto flags = arith::FastMathFlagsAttr::get(b_.getContext(), arith::FastMathFlags::reassoc);
    std::vector<Value> result = carriedNest(reducedExtents, init, [&](const Coords &inner, const std::vector<Value> &carried) {
      Value v = at(x, inputCoords(inner));
      Value old = carried[0];
      if (sum) {
        v = castValue(v, t, acc);
        return std::vector<Value>{isFloat(acc) ? b_.create<arith::AddFOp>(loc_, old, v, flags).getResult()
                                               : b_.create<arith::AddIOp>(loc_, old, v).getResult()};
      }
      if (!argmax)
        return std::vector<Value>{isFloat(t) ? b_.create<arith::MaximumFOp>(loc_, old, v).getResult()
                                             : b_.create<arith::MaxSIOp>(loc_, old, v).getResult()};
      // The first maximum wins; a NaN beats everything but an earlier NaN.
      Value k = inner[0];
      Value first = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::eq, k, index(0));
      Value better;
      if (isFloat(t)) {
        Value vNan = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::UNO, v, v);
        Value oldNan = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::UNO, old, old);
        Value greater = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::OGT, v, old);
        Value notOldNan = b_.create<arith::XOrIOp>(loc_, oldNan, b_.create<arith::ConstantOp>(loc_, b_.getBoolAttr(true)));
        better = b_.create<arith::AndIOp>(loc_, notOldNan, b_.create<arith::OrIOp>(loc_, greater, vNan));
      } else {
        better = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::sgt, v, old);
      }
      Value take = b_.create<arith::OrIOp>(loc_, first, better);
      return std::vector<Value>{b_.create<arith::SelectOp>(loc_, take, v, old),
                                b_.create<arith::SelectOp>(loc_, take, k, carried[1])};
    });
    Value out = argmax ? castValue(b_.create<arith::IndexCastOp>(loc_, b_.getI64Type(), result[1]), DType::I64, node.type().dtype)
                       : castValue(result[0], acc, into.storage);
    store(into, linear(kept, outStrides), out);
  });
}

/// Sums over outer dimensions: the input visited in memory order, each
/// element added to its slot of the accumulator buffer, so the innermost loop
/// is unit-stride on both. The split rows are those of the result's dimension 0.
void KernelEmitter::reduceColumns(const Node &node, const Buffer &into) {
  const kiln::Value *x = node.operand(0);
  const Shape &in = x->type.shape;
  const kiln::TensorType &type = node.type();
  std::vector<bool> reduced(in.rank(), false);
  for (int64_t a : node.intsAttr("axes"))
    reduced[size_t(a)] = true;
  DType t = x->type.dtype;
  DType acc = isFloat(t) ? DType::F64 : t;
  Buffer accumulator = into.storage == acc ? into : newBuffer(kiln::TensorType{type.dtype, type.shape}, acc, into.rowsOnly);
  const Shape &out = type.shape;
  nest(out.dims(), into.rowsOnly ? 0 : -1, [&](const Coords &ivs) {
    store(accumulator, linear(ivs, out.strides()), constantOf(0, acc));
  });
  int rowLoop = -1;
  if (into.rowsOnly)
    for (size_t d = 0; d < in.rank() && rowLoop < 0; ++d)
      if (!reduced[d])
        rowLoop = int(d);
  std::vector<int64_t> keptStrides(in.rank(), 0), outStrides = out.strides();
  for (size_t d = 0, k = 0; d < in.rank(); ++d)
    if (!reduced[d])
      keptStrides[d] = outStrides[k++];
  nest(in.dims(), rowLoop, [&](const Coords &ivs) {
    Coords slot;
    for (size_t d = 0; d < in.rank(); ++d)
      if (!reduced[d])
        slot.push_back(ivs[d]);
    Value i = linear(slot, out.strides());
    Value v = castValue(at(x, ivs), t, acc);
    Value old = b_.create<memref::LoadOp>(loc_, accumulator.memory, ValueRange{i});
    store(accumulator, i, isFloat(acc) ? b_.create<arith::AddFOp>(loc_, old, v).getResult()
                                       : b_.create<arith::AddIOp>(loc_, old, v).getResult());
  });
  if (accumulator.memory != into.memory)
    nest(out.dims(), into.rowsOnly ? 0 : -1, [&](const Coords &ivs) {
      Value i = linear(ivs, out.strides());
      Value v = b_.create<memref::LoadOp>(loc_, accumulator.memory, ValueRange{i});
      store(into, i, castValue(v, acc, into.storage));
    });
}

bool KernelEmitter::emitOnce(const KernelRequest &request, func::FuncOp &fn, KernelSchedule &schedule) {
  const Node &node = *request.node;
  const Graph *body = node.body();
  // The kernel as a list of nodes over inputs, yielding some of their values.
  std::vector<const kiln::Value *> inputs, yields;
  std::vector<const Node *> nodes;
  if (body) {
    for (const auto &arg : body->arguments())
      inputs.push_back(&arg->value);
    for (const auto &inner : body->nodes())
      nodes.push_back(inner.get());
    yields.assign(body->results().begin(), body->results().end());
  } else {
    inputs.assign(node.operands().begin(), node.operands().end());
    nodes.push_back(&node);
    yields.push_back(node.result());
  }

  buffers_.clear();
  scalars_.clear();
  memo_.clear();
  heapBuffers_.clear();
  crossed_ = nullptr;
  work_ = 0;
  row_ = Value();
  rows_ = yields[0]->type.shape.rank() > 0 ? yields[0]->type.shape[0] : 0;
  if (rows_ < 2)
    attempt_.serial = true;

  std::vector<Type> argTypes{b_.getIndexType(), b_.getIndexType()};
  for (const kiln::Value *v : inputs)
    argTypes.push_back(memrefType(v->type));
  for (const kiln::Value *v : yields)
    argTypes.push_back(memrefType(v->type));
  fn = b_.create<func::FuncOp>(loc_, request.name, b_.getFunctionType(argTypes, {}));
  entry_ = fn.addEntryBlock();
  OpBuilder::InsertionGuard guard(b_);
  b_.setInsertionPointToStart(entry_);
  begin_ = entry_->getArgument(0);
  end_ = entry_->getArgument(1);
  const unsigned firstInput = 2, firstResult = firstInput + unsigned(inputs.size());
  // Pointer arguments never overlap unless an operand shares its result's
  // buffer exactly (an in-place op); such an operand is read through the
  // result's memref, so LLVM sees one pointer and may assume no aliasing.
  bool noalias = !request.overlapping;
  for (unsigned a = firstInput; a < argTypes.size() && noalias; ++a)
    fn.setArgAttr(a, LLVM::LLVMDialect::getNoAliasAttrName(), b_.getUnitAttr());

  std::vector<Buffer> results;
  for (size_t r = 0; r < yields.size(); ++r)
    results.push_back(Buffer{entry_->getArgument(firstResult + unsigned(r)), yields[r]->type, yields[r]->type.dtype,
                             canSplitRows(yields[r]->type)});
  // A multi-output kernel's nests do not follow its body's order. A result
  // whose buffer overlaps an operand's is written by its nest while another
  // nest may still read that operand: a result computed by a nest of its own
  // (a reduction) or whose operand also reaches a result of another shape
  // is computed into a temporary and copied out after every read. (The
  // memory planner's in-place rules rule this out today; this keeps the
  // kernel right whatever the plan.)
  std::vector<Buffer> outputs = results;
  if (yields.size() > 1) {
    std::unordered_map<const kiln::Value *, std::set<size_t>> reaches; // value -> inputs it reads
    for (size_t i = 0; i < inputs.size(); ++i)
      reaches[inputs[i]].insert(i);
    for (const Node *n : nodes)
      for (const kiln::Value *v : n->operands())
        reaches[n->result()].insert(reaches[v].begin(), reaches[v].end());
    for (size_t r = 0; r < yields.size() && r < request.overlappedOperands.size(); ++r) {
      bool hazard = false;
      for (size_t i : request.overlappedOperands[r]) {
        hazard = hazard || (yields[r]->node && isReduction(yields[r]->node->kind()));
        for (const Node *n : nodes)
          hazard = hazard || (n->kind() == OpKind::Broadcast && n->operand(0) == yields[r]);
        for (size_t q = 0; q < yields.size(); ++q)
          hazard = hazard || (yields[q]->type.shape != yields[r]->type.shape && reaches[yields[q]].count(i));
      }
      if (hazard)
        results[r] = newBuffer(yields[r]->type, yields[r]->type.dtype, results[r].rowsOnly);
    }
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const kiln::Value *v = inputs[i];
    int shared = i < request.inPlace.size() ? request.inPlace[i] : -1;
    Value memory = shared >= 0 ? outputs[size_t(shared)].memory : entry_->getArgument(firstInput + unsigned(i));
    Buffer buffer{memory, v->type, v->type.dtype};
    if (v->type.shape.rank() == 0 && shared < 0) // a scalar operand is read once
      scalars_[v] = load(v, buffer, {});
    else
      buffers_[v] = buffer;
  }

  // Splat constants and ops over them are scalars, computed once.
  std::set<const kiln::Value *> broadcastSources;
  for (const Node *n : nodes) {
    bool scalar = n->kind() == OpKind::Constant ? n->attr("value").isNumber()
                                                : n->info().has(OpTrait::Elementwise);
    for (const kiln::Value *v : n->operands())
      scalar = scalar && scalars_.count(v);
    if (scalar) {
      if (n->kind() == OpKind::Constant)
        scalars_[n->result()] = constantOf(n->attr("value").asNumber(), n->type().dtype);
      else {
        std::vector<Value> x;
        for (const kiln::Value *v : n->operands())
          x.push_back(scalars_.at(v));
        scalars_[n->result()] = elementwise(*n, x);
      }
    }
    if (n->kind() == OpKind::Broadcast && n->operand(0)->node && !scalars_.count(n->operand(0)) &&
        n->type().numElements() > n->operand(0)->type.numElements())
      broadcastSources.insert(n->operand(0));
  }

  // Materialized values, in order: into the result when yielded, else a buffer.
  std::vector<bool> written(yields.size(), false);
  for (const Node *n : nodes) {
    const kiln::Value *v = n->result();
    if (scalars_.count(v) || (!isReduction(n->kind()) && !broadcastSources.count(v)))
      continue;
    if (n->kind() == OpKind::Constant) // a literal is a global already
      continue;
    Buffer into;
    auto yielded = std::find(yields.begin(), yields.end(), v);
    if (yielded != yields.end()) {
      size_t r = size_t(yielded - yields.begin());
      into = results[r];
      written[r] = true;
    } else {
      DType storage = n->type().dtype;
      into = newBuffer(n->type(), storage, canSplitRows(n->type()) && !attempt_.full.count(v));
    }
    materialize(*n, into);
    buffers_[v] = into;
  }

  // The other results: one nest per shape, computing all of that shape's
  // elements before storing any (an operand may share a result's buffer).
  std::vector<bool> done = written;
  for (size_t r = 0; r < yields.size(); ++r) {
    if (done[r])
      continue;
    const Shape &shape = yields[r]->type.shape;
    std::vector<size_t> group;
    for (size_t q = r; q < yields.size(); ++q)
      if (!done[q] && yields[q]->type.shape == shape)
        group.push_back(q), done[q] = true;
    nest(shape.dims(), results[r].rowsOnly ? 0 : -1, [&](const Coords &ivs) {
      std::vector<Value> elements;
      for (size_t q : group)
        elements.push_back(castValue(at(yields[q], ivs), yields[q]->type.dtype, results[q].storage));
      Value i = linear(ivs, shape.strides());
      for (size_t k = 0; k < group.size(); ++k)
        store(results[group[k]], i, elements[k]);
    });
  }
  for (size_t r = 0; r < yields.size(); ++r) {
    if (results[r].memory == outputs[r].memory)
      continue;
    const Shape &shape = yields[r]->type.shape;
    nest(shape.dims(), outputs[r].rowsOnly ? 0 : -1, [&](const Coords &ivs) {
      Value i = linear(ivs, shape.strides());
      b_.create<memref::StoreOp>(loc_, b_.create<memref::LoadOp>(loc_, results[r].memory, ValueRange{i}),
                                 outputs[r].memory, ValueRange{i});
    });
  }
  for (Value memory : heapBuffers_)
    b_.create<memref::DeallocOp>(loc_, memory);
  b_.create<func::ReturnOp>(loc_);

  if (!attempt_.serial) // every result must be split by the same rows
    for (const Buffer &r : results)
      if (!r.rowsOnly) {
        attempt_.serial = true;
        return false;
      }
  if (crossed_) {
    bool result = std::find(yields.begin(), yields.end(), crossed_) != yields.end();
    bool input = std::find(inputs.begin(), inputs.end(), crossed_) != inputs.end();
    if (result || input || attempt_.full.count(crossed_))
      attempt_.serial = true;
    else
      attempt_.full.insert(crossed_);
    return false;
  }
  schedule.iterations = attempt_.serial ? 1 : rows_;
  schedule.iterationCost = std::max<int64_t>(1, attempt_.serial ? work_ : work_ / rows_);
  return true;
}

} // namespace

KernelSchedule emitKernel(OpBuilder &builder, ModuleOp module, const KernelRequest &request) {
  KernelEmitter emitter(builder, module, builder.getUnknownLoc());
  return emitter.emit(request);
}

KernelSchedule KernelEmitter::emit(const KernelRequest &request) {
  attempt_ = Attempt();
  for (;;) {
    func::FuncOp fn;
    KernelSchedule schedule;
    OpBuilder::InsertionGuard guard(b_);
    if (emitOnce(request, fn, schedule))
      return schedule;
    fn.erase();
  }
}

} // namespace kiln
