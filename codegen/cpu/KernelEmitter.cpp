// Lowering of one kernel (a fusion body or a single op) to an MLIR function
// over flat memrefs. See KernelEmitter.h.
//
// Every node of a kernel body becomes a loop nest over its result's elements
// (flat index -> multi-index arithmetic), writing a temporary buffer, except
// splat constants, which stay scalars. The node the body yields writes the
// kernel's result buffer directly. This is correct for every op; fusing the
// loops (one pass over the data) is the next step for speed.
#include "codegen/cpu/KernelEmitter.h"

#include "ir/Graph.h"
#include "runtime/Error.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include <cmath>
#include <unordered_map>

namespace kiln {

using namespace mlir;

namespace {

// Inside the code generator, Value and Location are MLIR's; the IR's are
// spelled kiln::Value, kiln::TensorType, kiln::Attribute.
using mlir::Location;
using mlir::Type;
using mlir::Value;

[[noreturn]] void unsupported(const Node &node, const std::string &why) {
  throwError(node.loc().known() ? node.loc().toString() : "",
             "the CPU backend cannot compile " + std::string(opName(node.kind())) + ": " + why);
}

/// A value inside a kernel: a buffer (flat memref) or, for splat constants,
/// one scalar that every element reads.
struct Tensor1 {
  Value memory;
  Value scalar;
  kiln::TensorType type;
};

class KernelEmitter {
public:
  KernelEmitter(OpBuilder &b, ModuleOp module, Location loc) : b_(b), module_(module), loc_(loc) {}

  void emit(const KernelRequest &request);

private:
  // Types.
  Type storageType(DType t) {
    switch (t) {
    case DType::F32: return b_.getF32Type();
    case DType::F64: return b_.getF64Type();
    case DType::BF16: return b_.getBF16Type();
    case DType::F16: return b_.getF16Type();
    case DType::I32: return b_.getI32Type();
    case DType::I64: return b_.getI64Type();
    case DType::I1: return b_.getI1Type();
    }
    return b_.getF32Type();
  }
  /// Arithmetic happens in f32 for bf16/f16, else in the storage type.
  Type computeType(DType t) {
    return t == DType::BF16 || t == DType::F16 ? b_.getF32Type() : storageType(t);
  }
  MemRefType memrefType(const kiln::TensorType &t) {
    return MemRefType::get({std::max<int64_t>(t.numElements(), 1)}, storageType(t.dtype));
  }

  // Index arithmetic.
  Value index(int64_t v) { return b_.create<arith::ConstantIndexOp>(loc_, v); }
  std::vector<Value> unflatten(Value flat, const Shape &shape) {
    std::vector<Value> coords(shape.rank());
    std::vector<int64_t> strides = shape.strides();
    for (size_t d = 0; d < shape.rank(); ++d) {
      Value c = flat;
      if (strides[d] != 1)
        c = b_.create<arith::DivUIOp>(loc_, c, index(strides[d]));
      if (d != 0)
        c = b_.create<arith::RemUIOp>(loc_, c, index(shape[d]));
      coords[d] = c;
    }
    return coords;
  }
  Value linear(const std::vector<Value> &coords, const std::vector<int64_t> &strides) {
    Value sum = index(0);
    for (size_t d = 0; d < coords.size(); ++d) {
      if (!coords[d])
        continue;
      Value term = strides[d] == 1 ? coords[d] : b_.create<arith::MulIOp>(loc_, coords[d], index(strides[d])).getResult();
      sum = b_.create<arith::AddIOp>(loc_, sum, term);
    }
    return sum;
  }

  /// `body(i)` for i in [0, n).
  template <typename Fn> void loop(int64_t n, Fn body) {
    auto forOp = b_.create<scf::ForOp>(loc_, index(0), index(n), index(1));
    OpBuilder::InsertionGuard guard(b_);
    b_.setInsertionPointToStart(forOp.getBody());
    body(forOp.getInductionVar());
  }

  /// Element `i` of `t`, in its compute type.
  Value load(const Tensor1 &t, Value i) {
    Value v = t.scalar ? t.scalar : b_.create<memref::LoadOp>(loc_, t.memory, ValueRange{i}).getResult();
    if (computeType(t.type.dtype) != storageType(t.type.dtype))
      v = b_.create<arith::ExtFOp>(loc_, computeType(t.type.dtype), v);
    return v;
  }
  void store(const Tensor1 &t, Value i, Value v) {
    if (computeType(t.type.dtype) != storageType(t.type.dtype))
      v = b_.create<arith::TruncFOp>(loc_, storageType(t.type.dtype), v);
    b_.create<memref::StoreOp>(loc_, v, t.memory, ValueRange{i});
  }
  Value constantOf(double v, DType t) {
    Type type = computeType(t);
    if (isFloat(t))
      return b_.create<arith::ConstantOp>(loc_, b_.getFloatAttr(type, v));
    return b_.create<arith::ConstantOp>(loc_, b_.getIntegerAttr(type, int64_t(v)));
  }

  Tensor1 allocate(const kiln::TensorType &type, Value into) {
    if (into)
      return Tensor1{into, Value(), type};
    Value mem = b_.create<memref::AllocOp>(loc_, memrefType(type));
    temporaries_.push_back(mem);
    return Tensor1{mem, Value(), type};
  }

  Tensor1 emitNode(const Node &node, const std::vector<Tensor1> &in, Value into);
  Value elementwise(const Node &node, const std::vector<Value> &x, const std::vector<Tensor1> &in);
  Value castValue(Value v, DType from, DType to);
  Tensor1 constant(const Node &node, Value into);
  Tensor1 reduce(const Node &node, const Tensor1 &x, Value into);
  Tensor1 argmax(const Node &node, const Tensor1 &x, Value into);

  OpBuilder &b_;
  ModuleOp module_;
  Location loc_;
  std::vector<Value> temporaries_;
  int globals_ = 0;
};

Value KernelEmitter::castValue(Value v, DType from, DType to) {
  Type target = computeType(to);
  if (from == to)
    return v;
  if (to == DType::I1) {
    if (isFloat(from))
      return b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::UNE, v, constantOf(0, from));
    return b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::ne, v, constantOf(0, from));
  }
  if (from == DType::I1)
    return isFloat(to) ? b_.create<arith::UIToFPOp>(loc_, target, v).getResult()
                       : b_.create<arith::ExtUIOp>(loc_, target, v).getResult();
  if (isFloat(from) && isFloat(to)) {
    Type source = computeType(from);
    unsigned fw = source.getIntOrFloatBitWidth(), tw = target.getIntOrFloatBitWidth();
    if (fw == tw)
      return v;
    return fw < tw ? b_.create<arith::ExtFOp>(loc_, target, v).getResult()
                   : b_.create<arith::TruncFOp>(loc_, target, v).getResult();
  }
  if (isFloat(from)) { // truncate toward zero, saturate, NaN -> 0
    Type wide = b_.getF64Type();
    Value d = computeType(from) == wide ? v : b_.create<arith::ExtFOp>(loc_, wide, v).getResult();
    double lo = to == DType::I32 ? -2147483648.0 : -9223372036854775808.0;
    double hi = to == DType::I32 ? 2147483647.0 : 9223372036854775807.0;
    Value isNan = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::UNO, d, d);
    Value below = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::OLE, d,
                                           b_.create<arith::ConstantOp>(loc_, b_.getF64FloatAttr(lo)));
    Value above = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::OGE, d,
                                           b_.create<arith::ConstantOp>(loc_, b_.getF64FloatAttr(hi)));
    Value safe = b_.create<arith::SelectOp>(loc_, b_.create<arith::OrIOp>(loc_, isNan, b_.create<arith::OrIOp>(loc_, below, above)),
                                            b_.create<arith::ConstantOp>(loc_, b_.getF64FloatAttr(0.0)), d);
    Value converted = b_.create<arith::FPToSIOp>(loc_, target, safe);
    int64_t minV = to == DType::I32 ? INT32_MIN : INT64_MIN, maxV = to == DType::I32 ? INT32_MAX : INT64_MAX;
    Value r = b_.create<arith::SelectOp>(loc_, below, b_.create<arith::ConstantOp>(loc_, b_.getIntegerAttr(target, minV)), converted);
    r = b_.create<arith::SelectOp>(loc_, above, b_.create<arith::ConstantOp>(loc_, b_.getIntegerAttr(target, maxV)), r);
    return b_.create<arith::SelectOp>(loc_, isNan, b_.create<arith::ConstantOp>(loc_, b_.getIntegerAttr(target, 0)), r);
  }
  if (isFloat(to))
    return b_.create<arith::SIToFPOp>(loc_, target, v);
  unsigned fw = v.getType().getIntOrFloatBitWidth(), tw = target.getIntOrFloatBitWidth();
  if (fw == tw)
    return v;
  return fw < tw ? b_.create<arith::ExtSIOp>(loc_, target, v).getResult()
                 : b_.create<arith::TruncIOp>(loc_, target, v).getResult();
}

Value KernelEmitter::elementwise(const Node &node, const std::vector<Value> &x,
                                 const std::vector<Tensor1> &in) {
  DType t = in.empty() ? node.type().dtype : in[0].type.dtype;
  bool real = isFloat(t);
  auto f = [&](auto op) { return op.getResult(); };
  switch (node.kind()) {
  case OpKind::Neg:
    return real ? f(b_.create<arith::NegFOp>(loc_, x[0]))
                : f(b_.create<arith::SubIOp>(loc_, constantOf(0, t), x[0]));
  case OpKind::Abs:
    return real ? f(b_.create<math::AbsFOp>(loc_, x[0])) : f(b_.create<math::AbsIOp>(loc_, x[0]));
  case OpKind::Exp: return f(b_.create<math::ExpOp>(loc_, x[0]));
  case OpKind::Log: return f(b_.create<math::LogOp>(loc_, x[0]));
  case OpKind::Sqrt: return f(b_.create<math::SqrtOp>(loc_, x[0]));
  case OpKind::Rsqrt:
    return f(b_.create<arith::DivFOp>(loc_, constantOf(1, t), b_.create<math::SqrtOp>(loc_, x[0])));
  case OpKind::Tanh: return f(b_.create<math::TanhOp>(loc_, x[0]));
  case OpKind::Logistic: {
    Value e = b_.create<math::ExpOp>(loc_, b_.create<arith::NegFOp>(loc_, x[0]));
    return f(b_.create<arith::DivFOp>(loc_, constantOf(1, t), b_.create<arith::AddFOp>(loc_, constantOf(1, t), e)));
  }
  case OpKind::Erf: return f(b_.create<math::ErfOp>(loc_, x[0]));
  case OpKind::Sin: return f(b_.create<math::SinOp>(loc_, x[0]));
  case OpKind::Cos: return f(b_.create<math::CosOp>(loc_, x[0]));
  case OpKind::Floor: return f(b_.create<math::FloorOp>(loc_, x[0]));
  case OpKind::Sign: {
    if (real) { // NaN stays NaN; -0 and +0 give +0
      Value pos = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::OGT, x[0], constantOf(0, t));
      Value negv = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::OLT, x[0], constantOf(0, t));
      Value isNan = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::UNO, x[0], x[0]);
      Value s = b_.create<arith::SelectOp>(loc_, pos, constantOf(1, t),
                                           b_.create<arith::SelectOp>(loc_, negv, constantOf(-1, t), constantOf(0, t)));
      return f(b_.create<arith::SelectOp>(loc_, isNan, x[0], s));
    }
    Value pos = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::sgt, x[0], constantOf(0, t));
    Value negv = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::slt, x[0], constantOf(0, t));
    return f(b_.create<arith::SelectOp>(loc_, pos, constantOf(1, t),
                                        b_.create<arith::SelectOp>(loc_, negv, constantOf(-1, t), constantOf(0, t))));
  }
  case OpKind::Not:
    return f(b_.create<arith::XOrIOp>(loc_, x[0], b_.create<arith::ConstantOp>(loc_, b_.getBoolAttr(true))));
  case OpKind::Cast: return castValue(x[0], t, node.attr("to").asDType());
  case OpKind::Add:
    return real ? f(b_.create<arith::AddFOp>(loc_, x[0], x[1])) : f(b_.create<arith::AddIOp>(loc_, x[0], x[1]));
  case OpKind::Sub:
    return real ? f(b_.create<arith::SubFOp>(loc_, x[0], x[1])) : f(b_.create<arith::SubIOp>(loc_, x[0], x[1]));
  case OpKind::Mul:
    return real ? f(b_.create<arith::MulFOp>(loc_, x[0], x[1])) : f(b_.create<arith::MulIOp>(loc_, x[0], x[1]));
  case OpKind::Div: {
    if (real)
      return f(b_.create<arith::DivFOp>(loc_, x[0], x[1]));
    // x / 0 = 0 and MIN / -1 = MIN (two's complement wrap), never UB.
    Value zero = constantOf(0, t), minusOne = constantOf(-1, t);
    Value byZero = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::eq, x[1], zero);
    Value byMinusOne = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::eq, x[1], minusOne);
    Value safe = b_.create<arith::SelectOp>(loc_, b_.create<arith::OrIOp>(loc_, byZero, byMinusOne), constantOf(1, t), x[1]);
    Value q = b_.create<arith::DivSIOp>(loc_, x[0], safe);
    Value negated = b_.create<arith::SubIOp>(loc_, zero, x[0]);
    return f(b_.create<arith::SelectOp>(loc_, byZero, zero, b_.create<arith::SelectOp>(loc_, byMinusOne, negated, q)));
  }
  case OpKind::Max:
    return real ? f(b_.create<arith::MaximumFOp>(loc_, x[0], x[1])) : f(b_.create<arith::MaxSIOp>(loc_, x[0], x[1]));
  case OpKind::Min:
    return real ? f(b_.create<arith::MinimumFOp>(loc_, x[0], x[1])) : f(b_.create<arith::MinSIOp>(loc_, x[0], x[1]));
  case OpKind::Pow: return f(b_.create<math::PowFOp>(loc_, x[0], x[1]));
  case OpKind::Eq: case OpKind::Ne: case OpKind::Lt: case OpKind::Le: case OpKind::Gt: case OpKind::Ge: {
    if (real) {
      arith::CmpFPredicate p = node.kind() == OpKind::Eq ? arith::CmpFPredicate::OEQ
                             : node.kind() == OpKind::Ne ? arith::CmpFPredicate::UNE
                             : node.kind() == OpKind::Lt ? arith::CmpFPredicate::OLT
                             : node.kind() == OpKind::Le ? arith::CmpFPredicate::OLE
                             : node.kind() == OpKind::Gt ? arith::CmpFPredicate::OGT
                                                         : arith::CmpFPredicate::OGE;
      return f(b_.create<arith::CmpFOp>(loc_, p, x[0], x[1]));
    }
    bool boolean = t == DType::I1; // i1 compares unsigned: true > false
    arith::CmpIPredicate p = node.kind() == OpKind::Eq ? arith::CmpIPredicate::eq
                           : node.kind() == OpKind::Ne ? arith::CmpIPredicate::ne
                           : node.kind() == OpKind::Lt ? (boolean ? arith::CmpIPredicate::ult : arith::CmpIPredicate::slt)
                           : node.kind() == OpKind::Le ? (boolean ? arith::CmpIPredicate::ule : arith::CmpIPredicate::sle)
                           : node.kind() == OpKind::Gt ? (boolean ? arith::CmpIPredicate::ugt : arith::CmpIPredicate::sgt)
                                                       : (boolean ? arith::CmpIPredicate::uge : arith::CmpIPredicate::sge);
    return f(b_.create<arith::CmpIOp>(loc_, p, x[0], x[1]));
  }
  case OpKind::And: return f(b_.create<arith::AndIOp>(loc_, x[0], x[1]));
  case OpKind::Or: return f(b_.create<arith::OrIOp>(loc_, x[0], x[1]));
  case OpKind::Select: return f(b_.create<arith::SelectOp>(loc_, x[0], x[1], x[2]));
  default:
    unsupported(node, "not an elementwise op");
  }
}

Tensor1 KernelEmitter::constant(const Node &node, Value into) {
  const kiln::TensorType &type = node.type();
  const kiln::Attribute &value = node.attr("value");
  if (value.isNumber() && !into)
    return Tensor1{Value(), constantOf(value.asNumber(), type.dtype), type};
  Tensor1 out = allocate(type, into);
  if (value.isNumber()) {
    Value v = constantOf(value.asNumber(), type.dtype);
    loop(type.numElements(), [&](Value i) { store(out, i, v); });
    return out;
  }
  // A literal: a private constant global, copied element by element.
  std::vector<double> numbers = value.asNumbers();
  Type element = storageType(type.dtype);
  std::vector<mlir::Attribute> elements;
  for (double d : numbers) {
    if (isFloat(type.dtype))
      elements.push_back(b_.getFloatAttr(element, d));
    else
      elements.push_back(b_.getIntegerAttr(element, type.dtype == DType::I1 ? int64_t(d != 0) : int64_t(d)));
  }
  MemRefType mt = memrefType(type);
  auto tensorType = RankedTensorType::get(mt.getShape(), element);
  std::string name = "kiln_literal_" + std::to_string(globals_++) + "_" + std::to_string(reinterpret_cast<uintptr_t>(&node));
  {
    OpBuilder::InsertionGuard guard(b_);
    b_.setInsertionPointToStart(module_.getBody());
    b_.create<memref::GlobalOp>(loc_, name, b_.getStringAttr("private"), mt,
                                DenseElementsAttr::get(tensorType, elements), /*constant=*/true,
                                IntegerAttr());
  }
  Value global = b_.create<memref::GetGlobalOp>(loc_, mt, name);
  Tensor1 source{global, Value(), type};
  loop(type.numElements(), [&](Value i) {
    b_.create<memref::StoreOp>(loc_, b_.create<memref::LoadOp>(loc_, global, ValueRange{i}), out.memory, ValueRange{i});
  });
  (void)source;
  return out;
}

Tensor1 KernelEmitter::reduce(const Node &node, const Tensor1 &x, Value into) {
  const Shape &in = x.type.shape;
  const auto &axes = node.intsAttr("axes");
  std::vector<bool> reduced(in.rank(), false);
  for (int64_t a : axes)
    reduced[size_t(a)] = true;
  std::vector<int64_t> outStrides(in.rank(), 0);
  std::vector<int64_t> resultStrides = node.type().shape.strides();
  for (size_t d = 0, k = 0; d < in.rank(); ++d)
    if (!reduced[d])
      outStrides[d] = resultStrides[k++];
  bool sum = node.kind() == OpKind::ReduceSum;
  DType t = node.type().dtype;
  // f32/bf16/f16 sums accumulate in f64, as the reference interpreter does.
  DType accType = sum && isFloat(t) ? DType::F64 : t;
  Tensor1 acc = allocate(kiln::TensorType{accType, node.type().shape}, Value());
  double init = sum ? 0.0 : (isFloat(t) ? -INFINITY : (t == DType::I32 ? double(INT32_MIN) : -9.2233720368547758e18));
  Value initV = isFloat(accType) || sum ? constantOf(init, accType)
                                        : b_.create<arith::ConstantOp>(loc_, b_.getIntegerAttr(storageType(t), t == DType::I32 ? INT32_MIN : INT64_MIN)).getResult();
  loop(node.type().numElements(), [&](Value i) { store(acc, i, initV); });
  loop(x.type.numElements(), [&](Value i) {
    std::vector<Value> coords = unflatten(i, in);
    for (size_t d = 0; d < coords.size(); ++d)
      if (reduced[d])
        coords[d] = Value();
    Value r = linear(coords, outStrides);
    Value v = castValue(load(x, i), x.type.dtype, accType);
    Value old = load(acc, r);
    Value next;
    if (sum)
      next = isFloat(accType) ? b_.create<arith::AddFOp>(loc_, old, v).getResult() : b_.create<arith::AddIOp>(loc_, old, v).getResult();
    else
      next = isFloat(accType) ? b_.create<arith::MaximumFOp>(loc_, old, v).getResult() : b_.create<arith::MaxSIOp>(loc_, old, v).getResult();
    store(acc, r, next);
  });
  if (accType == t && into) { // copy into the kernel result
    Tensor1 out = allocate(node.type(), into);
    loop(node.type().numElements(), [&](Value i) { store(out, i, load(acc, i)); });
    return out;
  }
  if (accType == t)
    return acc;
  Tensor1 out = allocate(node.type(), into);
  loop(node.type().numElements(), [&](Value i) { store(out, i, castValue(load(acc, i), accType, t)); });
  return out;
}

Tensor1 KernelEmitter::argmax(const Node &node, const Tensor1 &x, Value into) {
  const Shape &in = x.type.shape;
  size_t axis = size_t(node.intAttr("axis"));
  std::vector<int64_t> outStrides(in.rank(), 0);
  std::vector<int64_t> resultStrides = node.type().shape.strides();
  for (size_t d = 0, k = 0; d < in.rank(); ++d)
    if (d != axis)
      outStrides[d] = resultStrides[k++];
  Tensor1 best = allocate(kiln::TensorType{x.type.dtype, node.type().shape}, Value());
  Tensor1 out = allocate(node.type(), into);
  // Visiting the input in row-major order meets each row's elements in
  // increasing axis order, so a strict comparison keeps the first maximum;
  // a NaN beats everything but an earlier NaN.
  loop(x.type.numElements(), [&](Value i) {
    std::vector<Value> coords = unflatten(i, in);
    Value k = coords[axis];
    coords[axis] = Value();
    Value r = linear(coords, outStrides);
    Value v = load(x, i);
    Value first = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::eq, k, index(0));
    Value old = load(best, r);
    Value better;
    if (isFloat(x.type.dtype)) {
      Value vNan = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::UNO, v, v);
      Value oldNan = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::UNO, old, old);
      Value greater = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::OGT, v, old);
      Value notOldNan = b_.create<arith::XOrIOp>(loc_, oldNan, b_.create<arith::ConstantOp>(loc_, b_.getBoolAttr(true)));
      better = b_.create<arith::AndIOp>(loc_, notOldNan, b_.create<arith::OrIOp>(loc_, greater, vNan));
    } else {
      better = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::sgt, v, old);
    }
    Value take = b_.create<arith::OrIOp>(loc_, first, better);
    store(best, r, b_.create<arith::SelectOp>(loc_, take, v, old));
    Value kInt = b_.create<arith::IndexCastOp>(loc_, b_.getI32Type(), k);
    Value oldIndex = b_.create<memref::LoadOp>(loc_, out.memory, ValueRange{r});
    b_.create<memref::StoreOp>(loc_, b_.create<arith::SelectOp>(loc_, take, kInt, oldIndex), out.memory, ValueRange{r});
  });
  return out;
}

Tensor1 KernelEmitter::emitNode(const Node &node, const std::vector<Tensor1> &in, Value into) {
  const kiln::TensorType &type = node.type();
  const Shape &shape = type.shape;
  int64_t n = type.numElements();
  OpKind kind = node.kind();
  if (kind == OpKind::Constant)
    return constant(node, into);
  if (node.info().has(OpTrait::Elementwise)) {
    // An op over splats is a splat (unless it must fill the kernel's result).
    bool allScalar = !into;
    for (const Tensor1 &t : in)
      allScalar = allScalar && t.scalar;
    if (allScalar && !in.empty()) {
      std::vector<Value> x;
      for (const Tensor1 &t : in)
        x.push_back(load(t, Value()));
      return Tensor1{Value(), elementwise(node, x, in), type};
    }
    Tensor1 out = allocate(type, into);
    loop(n, [&](Value i) {
      std::vector<Value> x;
      for (const Tensor1 &t : in)
        x.push_back(load(t, i));
      store(out, i, elementwise(node, x, in));
    });
    return out;
  }
  if (kind == OpKind::ReduceSum || kind == OpKind::ReduceMax)
    return reduce(node, in[0], into);
  if (kind == OpKind::Argmax)
    return argmax(node, in[0], into);
  Tensor1 out = allocate(type, into);
  switch (kind) {
  case OpKind::Iota: {
    size_t dim = size_t(node.intAttr("dim"));
    loop(n, [&](Value i) {
      Value c = unflatten(i, shape)[dim];
      Value asInt = b_.create<arith::IndexCastOp>(loc_, b_.getI64Type(), c);
      store(out, i, castValue(asInt, DType::I64, type.dtype));
    });
    return out;
  }
  case OpKind::Broadcast: {
    const Tensor1 &x = in[0];
    const auto &dims = node.intsAttr("dims");
    std::vector<int64_t> xStrides = x.type.shape.strides();
    loop(n, [&](Value i) {
      std::vector<Value> coords = unflatten(i, shape), source(dims.size());
      for (size_t k = 0; k < dims.size(); ++k)
        source[k] = x.type.shape[k] == 1 ? Value() : coords[size_t(dims[k])];
      store(out, i, load(x, linear(source, xStrides)));
    });
    return out;
  }
  case OpKind::Reshape:
    loop(n, [&](Value i) { store(out, i, load(in[0], i)); });
    return out;
  case OpKind::Transpose: {
    const auto &perm = node.intsAttr("perm");
    std::vector<int64_t> xStrides = in[0].type.shape.strides(), permuted;
    for (int64_t p : perm)
      permuted.push_back(xStrides[size_t(p)]);
    loop(n, [&](Value i) { store(out, i, load(in[0], linear(unflatten(i, shape), permuted))); });
    return out;
  }
  case OpKind::Slice: {
    const auto &start = node.intsAttr("start"), &stride = node.intsAttr("stride");
    std::vector<int64_t> xStrides = in[0].type.shape.strides();
    loop(n, [&](Value i) {
      std::vector<Value> coords = unflatten(i, shape);
      for (size_t d = 0; d < coords.size(); ++d) {
        if (stride[d] != 1)
          coords[d] = b_.create<arith::MulIOp>(loc_, coords[d], index(stride[d]));
        if (start[d] != 0)
          coords[d] = b_.create<arith::AddIOp>(loc_, coords[d], index(start[d]));
      }
      store(out, i, load(in[0], linear(coords, xStrides)));
    });
    return out;
  }
  case OpKind::Pad: {
    const auto &low = node.intsAttr("low");
    const Shape &xs = in[0].type.shape;
    std::vector<int64_t> xStrides = xs.strides();
    Value fill = castValue(constantOf(node.attr("value").asNumber(), DType::F64), DType::F64, type.dtype);
    loop(n, [&](Value i) {
      std::vector<Value> coords = unflatten(i, shape);
      Value inside = b_.create<arith::ConstantOp>(loc_, b_.getBoolAttr(true));
      for (size_t d = 0; d < coords.size(); ++d) {
        // Unsigned compare: coord - low < dim covers both bounds at once.
        Value shifted = b_.create<arith::SubIOp>(loc_, coords[d], index(low[d]));
        Value ok = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::ult, shifted, index(xs[d]));
        inside = b_.create<arith::AndIOp>(loc_, inside, ok);
        coords[d] = b_.create<arith::SelectOp>(loc_, ok, shifted, index(0));
      }
      Value v = load(in[0], linear(coords, xStrides));
      store(out, i, b_.create<arith::SelectOp>(loc_, inside, v, fill));
    });
    return out;
  }
  case OpKind::Concat: {
    size_t axis = size_t(node.intAttr("axis"));
    int64_t offset = 0;
    for (const Tensor1 &x : in) { // one loop per operand, writing its part
      const Shape &xs = x.type.shape;
      std::vector<int64_t> outStrides = shape.strides();
      int64_t off = offset;
      loop(x.type.numElements(), [&](Value i) {
        std::vector<Value> coords = unflatten(i, xs);
        if (off != 0)
          coords[axis] = b_.create<arith::AddIOp>(loc_, coords[axis], index(off));
        store(out, linear(coords, outStrides), load(x, i));
      });
      offset += xs[axis];
    }
    return out;
  }
  case OpKind::RngUniform: {
    auto fnType = b_.getFunctionType({b_.getI64Type(), b_.getI64Type()}, {b_.getF32Type()});
    if (!module_.lookupSymbol<func::FuncOp>("kiln_rng_uniform")) {
      OpBuilder::InsertionGuard guard(b_);
      b_.setInsertionPointToStart(module_.getBody());
      auto decl = b_.create<func::FuncOp>(loc_, "kiln_rng_uniform", fnType);
      decl.setPrivate();
    }
    Value seed = load(in[0], index(0));
    int64_t offset = node.intAttr("offset");
    loop(n, [&](Value i) {
      Value counter = b_.create<arith::AddIOp>(loc_, b_.create<arith::IndexCastOp>(loc_, b_.getI64Type(), i),
                                               b_.create<arith::ConstantOp>(loc_, b_.getI64IntegerAttr(offset)));
      Value u = b_.create<func::CallOp>(loc_, "kiln_rng_uniform", TypeRange{b_.getF32Type()}, ValueRange{seed, counter}).getResult(0);
      store(out, i, castValue(u, DType::F32, type.dtype));
    });
    return out;
  }
  default:
    unsupported(node, "it is a library op, which the runtime runs");
  }
}

void KernelEmitter::emit(const KernelRequest &request) {
  const Node &node = *request.node;
  const Graph *body = node.body();
  std::vector<const kiln::Value *> yielded;
  if (body)
    yielded.assign(body->results().begin(), body->results().end());
  std::vector<kiln::TensorType> resultTypes;
  if (body)
    for (const kiln::Value *v : yielded)
      resultTypes.push_back(v->type);
  else
    resultTypes.push_back(node.type());

  std::vector<Type> argTypes{b_.getIndexType(), b_.getIndexType()};
  for (const kiln::Value *v : node.operands())
    argTypes.push_back(memrefType(v->type));
  for (const kiln::TensorType &t : resultTypes)
    argTypes.push_back(memrefType(t));
  auto fn = b_.create<func::FuncOp>(loc_, request.name, b_.getFunctionType(argTypes, {}));
  Block *entry = fn.addEntryBlock();
  OpBuilder::InsertionGuard guard(b_);
  b_.setInsertionPointToStart(entry);
  temporaries_.clear();
  const unsigned firstOperand = 2, firstResult = firstOperand + unsigned(node.operands().size());
  std::vector<Tensor1> operands, results;
  for (size_t i = 0; i < node.operands().size(); ++i)
    operands.push_back(Tensor1{entry->getArgument(firstOperand + unsigned(i)), Value(), node.operand(i)->type});
  for (size_t i = 0; i < resultTypes.size(); ++i)
    results.push_back(Tensor1{entry->getArgument(firstResult + unsigned(i)), Value(), resultTypes[i]});

  std::vector<Tensor1> produced;
  if (body) {
    std::unordered_map<const kiln::Value *, Tensor1> values;
    for (size_t i = 0; i < body->arguments().size(); ++i)
      values[&body->arguments()[i]->value] = operands[i];
    for (const auto &inner : body->nodes()) {
      std::vector<Tensor1> in;
      for (const kiln::Value *v : inner->operands())
        in.push_back(values.at(v));
      Value into;
      for (size_t r = 0; r < yielded.size() && !into; ++r)
        if (yielded[r] == inner->result())
          into = results[r].memory;
      values[inner->result()] = emitNode(*inner, in, into);
    }
    for (const kiln::Value *v : yielded)
      produced.push_back(values.at(v));
  } else {
    produced.push_back(emitNode(node, operands, results[0].memory));
  }
  for (size_t r = 0; r < results.size(); ++r) // a yielded argument or splat: copy it out
    if (produced[r].memory != results[r].memory) {
      const Tensor1 &from = produced[r], &to = results[r];
      loop(to.type.numElements(), [&](Value i) { store(to, i, load(from, i)); });
    }
  for (Value temp : temporaries_)
    b_.create<memref::DeallocOp>(loc_, temp);
  b_.create<func::ReturnOp>(loc_);
}
} // namespace

void emitKernel(OpBuilder &builder, ModuleOp module, const KernelRequest &request) {
  KernelEmitter emitter(builder, module, builder.getUnknownLoc());
  emitter.emit(request);
}

} // namespace kiln
