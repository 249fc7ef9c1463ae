#include "codegen/cuda/CudaScalarOps.h"

#include "ir/Graph.h"
#include "runtime/Error.h"

#include <cmath>
#include <cstdio>

namespace kiln {
namespace cuda {

std::string computeType(DType t) {
  switch (t) {
  case DType::F32: case DType::BF16: case DType::F16: return "float";
  case DType::F64: return "double";
  case DType::I32: return "int";
  case DType::I64: return "long long";
  case DType::I1: return "bool";
  }
  return "float";
}

bool isDouble(DType t) { return t == DType::F64; }

std::string hexFloat(double v, bool single) {
  char buf[64];
  if (single)
    std::snprintf(buf, sizeof buf, "%af", double(float(v)));
  else
    std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

std::string literal(double v, DType t) {
  if (isFloat(t)) {
    bool single = !isDouble(t);
    v = roundToDType(v, t);
    if (std::isnan(v))
      return single ? "KILN_NAN_F" : "KILN_NAN_D";
    if (std::isinf(v))
      return std::string(v < 0 ? "(-" : "(") + (single ? "KILN_INF_F" : "KILN_INF_D") + ")";
    return "(" + hexFloat(v, single) + ")";
  }
  if (t == DType::I1)
    return v != 0 ? "true" : "false";
  int64_t i = realToInt(v, t);
  if (t == DType::I32)
    return i == INT32_MIN ? "(-2147483647 - 1)" : "(" + std::to_string(i) + ")";
  return i == INT64_MIN ? "(-9223372036854775807LL - 1)" : "(" + std::to_string(i) + "LL)";
}

std::string castExpr(const std::string &x, DType from, DType to) {
  if (from == to)
    return x;
  if (to == DType::I1)
    return "(" + x + " != 0)";
  if (from == DType::I1)
    return "((" + computeType(to) + ")(" + x + " ? 1 : 0))";
  auto rounded = [&](const std::string &f32) {
    if (to == DType::BF16)
      return "kiln_round_bf16(" + f32 + ")";
    if (to == DType::F16)
      return "kiln_round_f16(" + f32 + ")";
    return f32;
  };
  if (isFloat(from) && isFloat(to))
    return rounded("((" + computeType(to) + ")(" + x + "))");
  if (isFloat(from))
    return std::string(to == DType::I32 ? "kiln_f2i32" : "kiln_f2i64") + "((double)(" + x + "))";
  if (isFloat(to))
    return rounded("((" + computeType(to) + ")(" + x + "))");
  return "((" + computeType(to) + ")(" + x + "))";
}

std::string loadExpr(const std::string &element, DType t) {
  switch (t) {
  case DType::BF16: return "kiln_ld_bf16(" + element + ")";
  case DType::F16: return "kiln_ld_f16(" + element + ")";
  case DType::I1: return "(" + element + " != 0)";
  default: return element;
  }
}

std::string storeExpr(const std::string &value, DType t) {
  switch (t) {
  case DType::BF16: return "kiln_st_bf16(" + value + ")";
  case DType::F16: return "kiln_st_f16(" + value + ")";
  case DType::I1: return "(unsigned char)(" + value + " ? 1 : 0)";
  default: return value;
  }
}

std::string elementwiseExpr(const Node &node, const std::vector<std::string> &x) {
  DType t = node.operands().empty() ? node.type().dtype : node.operand(0)->type.dtype;
  bool real = isFloat(t);
  std::string f = isDouble(t) ? "" : "f"; // expf / exp
  std::string one = isDouble(t) ? "1.0" : "1.0f";
  std::string T = computeType(t);
  auto fn = [&](const char *name) { return std::string(name) + f + "(" + x[0] + ")"; };
  switch (node.kind()) {
  case OpKind::Neg: return real ? "(-" + x[0] + ")" : "kiln_wneg(" + x[0] + ")";
  case OpKind::Abs: return real ? fn("fabs") : "(" + x[0] + " < 0 ? kiln_wneg(" + x[0] + ") : " + x[0] + ")";
  case OpKind::Exp: return fn("exp");
  case OpKind::Log: return fn("log");
  case OpKind::Sqrt: return fn("sqrt");
  case OpKind::Rsqrt: return "(" + one + " / " + fn("sqrt") + ")";
  case OpKind::Tanh: return fn("tanh");
  case OpKind::Logistic: return "(" + one + " / (" + one + " + exp" + f + "(-" + x[0] + ")))";
  case OpKind::Erf: return fn("erf");
  case OpKind::Sin: return fn("sin");
  case OpKind::Cos: return fn("cos");
  case OpKind::Floor: return fn("floor");
  case OpKind::Sign: {
    std::string s = "(" + T + ")((" + x[0] + " > 0) - (" + x[0] + " < 0))";
    return real ? "(isnan(" + x[0] + ") ? " + x[0] + " : " + s + ")" : s;
  }
  case OpKind::Not: return "(!" + x[0] + ")";
  case OpKind::Cast: return castExpr(x[0], t, node.attr("to").asDType());
  case OpKind::Add: return real ? "(" + x[0] + " + " + x[1] + ")" : "kiln_wadd(" + x[0] + ", " + x[1] + ")";
  case OpKind::Sub: return real ? "(" + x[0] + " - " + x[1] + ")" : "kiln_wsub(" + x[0] + ", " + x[1] + ")";
  case OpKind::Mul: return real ? "(" + x[0] + " * " + x[1] + ")" : "kiln_wmul(" + x[0] + ", " + x[1] + ")";
  case OpKind::Div: return real ? "(" + x[0] + " / " + x[1] + ")" : "kiln_idiv(" + x[0] + ", " + x[1] + ")";
  case OpKind::Max: return "kiln_max(" + x[0] + ", " + x[1] + ")";
  case OpKind::Min: return "kiln_min(" + x[0] + ", " + x[1] + ")";
  case OpKind::Pow: return "pow" + f + "(" + x[0] + ", " + x[1] + ")";
  case OpKind::Eq: return "(" + x[0] + " == " + x[1] + ")";
  case OpKind::Ne: return "(" + x[0] + " != " + x[1] + ")";
  case OpKind::Lt: return "(" + x[0] + " < " + x[1] + ")";
  case OpKind::Le: return "(" + x[0] + " <= " + x[1] + ")";
  case OpKind::Gt: return "(" + x[0] + " > " + x[1] + ")";
  case OpKind::Ge: return "(" + x[0] + " >= " + x[1] + ")";
  case OpKind::And: return "(" + x[0] + " && " + x[1] + ")";
  case OpKind::Or: return "(" + x[0] + " || " + x[1] + ")";
  case OpKind::Select: return "(" + x[0] + " ? " + x[1] + " : " + x[2] + ")";
  default:
    throwError(node.loc().known() ? node.loc().toString() : "",
               "the CUDA backend cannot compile " + std::string(opName(node.kind())) + ": not an elementwise op");
  }
}

} // namespace cuda
} // namespace kiln
