// The scalar side of the CUDA emitter (CudaCodegen.cpp): element types as C
// types, literals, casts, loads and stores of bf16/f16/i1 storage, and the
// expression of every elementwise op with the interpreter's semantics.
#pragma once

#include "runtime/DType.h"

#include <string>
#include <vector>

namespace kiln {

class Node;

namespace cuda {

/// The C type an element of `t` is computed in (bf16/f16 in float, i1 bool).
std::string computeType(DType t);
/// Whether the compute type of `t` is double (else float, for float dtypes).
bool isDouble(DType t);
/// `v` exactly, as a hexadecimal float literal (`single`: a float's).
std::string hexFloat(double v, bool single);
/// `v` as a C literal of the compute type of `t` (rounded to `t` first).
std::string literal(double v, DType t);
/// An expression of compute type `from` converted to compute type `to` with
/// the interpreter's semantics.
std::string castExpr(const std::string &x, DType from, DType to);
/// A stored element (`p0[i]`) as its compute type, and a value as its storage.
std::string loadExpr(const std::string &element, DType t);
std::string storeExpr(const std::string &value, DType t);
/// The expression of elementwise op `node` over its operands' expressions `x`
/// (wrapping integer arithmetic, NaN-propagating max/min, the interpreter's
/// integer division); a located kiln::Error for any other op.
std::string elementwiseExpr(const Node &node, const std::vector<std::string> &x);

} // namespace cuda
} // namespace kiln
