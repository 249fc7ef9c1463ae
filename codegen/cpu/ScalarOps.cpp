// The CPU kernels' scalar code: element types, constants, casts and every
// elementwise op as arith/math operations on one element. See ScalarOps.h.
#include "codegen/cpu/ScalarOps.h"

#include "ir/Graph.h"
#include "runtime/Error.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <climits>
#include <cstdint>

namespace kiln {

using namespace mlir;

void unsupportedOp(const Node &node, const std::string &why) {
  throwError(node.loc().known() ? node.loc().toString() : "",
             "the CPU backend cannot compile " + std::string(opName(node.kind())) + ": " + why);
}

mlir::Type ScalarOps::storageType(DType t) {
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

mlir::Type ScalarOps::computeType(DType t) {
  return t == DType::BF16 || t == DType::F16 ? b_.getF32Type() : storageType(t);
}

mlir::Value ScalarOps::constant(double v, DType t) {
  mlir::Type type = computeType(t);
  if (isFloat(t))
    return b_.create<arith::ConstantOp>(loc_, b_.getFloatAttr(type, v));
  if (t == DType::I1)
    return b_.create<arith::ConstantOp>(loc_, b_.getBoolAttr(v != 0));
  return b_.create<arith::ConstantOp>(loc_, b_.getIntegerAttr(type, int64_t(v)));
}

mlir::Value ScalarOps::cast(mlir::Value v, DType from, DType to) {
  mlir::Type target = computeType(to);
  if (from == to)
    return v;
  if (to == DType::I1) {
    if (isFloat(from))
      return b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::UNE, v, constant(0, from));
    return b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::ne, v, constant(0, from));
  }
  if (from == DType::I1)
    return isFloat(to) ? b_.create<arith::UIToFPOp>(loc_, target, v).getResult()
                       : b_.create<arith::ExtUIOp>(loc_, target, v).getResult();
  if (isFloat(from) && isFloat(to)) {
    mlir::Type source = computeType(from);
    unsigned fw = source.getIntOrFloatBitWidth(), tw = target.getIntOrFloatBitWidth();
    if (fw == tw)
      return v;
    return fw < tw ? b_.create<arith::ExtFOp>(loc_, target, v).getResult()
                   : b_.create<arith::TruncFOp>(loc_, target, v).getResult();
  }
  if (isFloat(from)) { // truncate toward zero, saturate, NaN -> 0
    mlir::Type wide = b_.getF64Type();
    mlir::Value d = computeType(from) == wide ? v : b_.create<arith::ExtFOp>(loc_, wide, v).getResult();
    double lo = to == DType::I32 ? -2147483648.0 : -9223372036854775808.0;
    double hi = to == DType::I32 ? 2147483647.0 : 9223372036854775807.0;
    mlir::Value isNan = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::UNO, d, d);
    mlir::Value below = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::OLE, d,
                                           b_.create<arith::ConstantOp>(loc_, b_.getF64FloatAttr(lo)));
    mlir::Value above = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::OGE, d,
                                           b_.create<arith::ConstantOp>(loc_, b_.getF64FloatAttr(hi)));
    mlir::Value safe = b_.create<arith::SelectOp>(loc_, b_.create<arith::OrIOp>(loc_, isNan, b_.create<arith::OrIOp>(loc_, below, above)),
                                            b_.create<arith::ConstantOp>(loc_, b_.getF64FloatAttr(0.0)), d);
    mlir::Value converted = b_.create<arith::FPToSIOp>(loc_, target, safe);
    int64_t minV = to == DType::I32 ? INT32_MIN : INT64_MIN, maxV = to == DType::I32 ? INT32_MAX : INT64_MAX;
    mlir::Value r = b_.create<arith::SelectOp>(loc_, below, b_.create<arith::ConstantOp>(loc_, b_.getIntegerAttr(target, minV)), converted);
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

mlir::Value ScalarOps::elementwise(const Node &node, const std::vector<mlir::Value> &x) {
  DType t = node.operands().empty() ? node.type().dtype : node.operand(0)->type.dtype;
  bool real = isFloat(t);
  auto f = [&](auto op) { return op.getResult(); };
  switch (node.kind()) {
  case OpKind::Neg:
    return real ? f(b_.create<arith::NegFOp>(loc_, x[0]))
                : f(b_.create<arith::SubIOp>(loc_, constant(0, t), x[0]));
  case OpKind::Abs:
    return real ? f(b_.create<math::AbsFOp>(loc_, x[0])) : f(b_.create<math::AbsIOp>(loc_, x[0]));
  case OpKind::Exp: return f(b_.create<math::ExpOp>(loc_, x[0]));
  case OpKind::Log: return f(b_.create<math::LogOp>(loc_, x[0]));
  case OpKind::Sqrt: return f(b_.create<math::SqrtOp>(loc_, x[0]));
  case OpKind::Rsqrt:
    return f(b_.create<arith::DivFOp>(loc_, constant(1, t), b_.create<math::SqrtOp>(loc_, x[0])));
  case OpKind::Tanh: return f(b_.create<math::TanhOp>(loc_, x[0]));
  case OpKind::Logistic: {
    mlir::Value e = b_.create<math::ExpOp>(loc_, b_.create<arith::NegFOp>(loc_, x[0]));
    return f(b_.create<arith::DivFOp>(loc_, constant(1, t), b_.create<arith::AddFOp>(loc_, constant(1, t), e)));
  }
  case OpKind::Erf: return f(b_.create<math::ErfOp>(loc_, x[0]));
  case OpKind::Sin: return f(b_.create<math::SinOp>(loc_, x[0]));
  case OpKind::Cos: return f(b_.create<math::CosOp>(loc_, x[0]));
  case OpKind::Floor: return f(b_.create<math::FloorOp>(loc_, x[0]));
  case OpKind::Sign: {
    if (real) { // NaN stays NaN; -0 and +0 give +0
      mlir::Value pos = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::OGT, x[0], constant(0, t));
      mlir::Value negv = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::OLT, x[0], constant(0, t));
      mlir::Value isNan = b_.create<arith::CmpFOp>(loc_, arith::CmpFPredicate::UNO, x[0], x[0]);
      mlir::Value s = b_.create<arith::SelectOp>(loc_, pos, constant(1, t),
                                           b_.create<arith::SelectOp>(loc_, negv, constant(-1, t), constant(0, t)));
      return f(b_.create<arith::SelectOp>(loc_, isNan, x[0], s));
    }
    mlir::Value pos = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::sgt, x[0], constant(0, t));
    mlir::Value negv = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::slt, x[0], constant(0, t));
    return f(b_.create<arith::SelectOp>(loc_, pos, constant(1, t),
                                        b_.create<arith::SelectOp>(loc_, negv, constant(-1, t), constant(0, t))));
  }
  case OpKind::Not:
    return f(b_.create<arith::XOrIOp>(loc_, x[0], b_.create<arith::ConstantOp>(loc_, b_.getBoolAttr(true))));
  case OpKind::Cast: return cast(x[0], t, node.attr("to").asDType());
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
    mlir::Value zero = constant(0, t), minusOne = constant(-1, t);
    mlir::Value byZero = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::eq, x[1], zero);
    mlir::Value byMinusOne = b_.create<arith::CmpIOp>(loc_, arith::CmpIPredicate::eq, x[1], minusOne);
    mlir::Value safe = b_.create<arith::SelectOp>(loc_, b_.create<arith::OrIOp>(loc_, byZero, byMinusOne), constant(1, t), x[1]);
    mlir::Value q = b_.create<arith::DivSIOp>(loc_, x[0], safe);
    mlir::Value negated = b_.create<arith::SubIOp>(loc_, zero, x[0]);
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
    unsupportedOp(node, "not an elementwise op");
  }
}

} // namespace kiln
