// Internal to codegen/cpu: the scalar code of a kernel — element types,
// constants, casts with the interpreter's semantics (saturating float-to-int,
// NaN -> 0) and every elementwise op on one element, as arith/math operations.
#pragma once

#include "runtime/DType.h"

#include "mlir/IR/Builders.h"

#include <string>
#include <vector>

namespace kiln {

class Node;

/// A located kiln::Error: the CPU backend cannot compile `node` (`why`).
[[noreturn]] void unsupportedOp(const Node &node, const std::string &why);

class ScalarOps {
public:
  ScalarOps(mlir::OpBuilder &b, mlir::Location loc) : b_(b), loc_(loc) {}

  /// The element type in memory.
  mlir::Type storageType(DType t);
  /// Arithmetic happens in f32 for bf16/f16, else in the storage type.
  mlir::Type computeType(DType t);
  /// `v` as a constant of `t`'s compute type.
  mlir::Value constant(double v, DType t);
  /// `v` (of `from`'s compute type) converted to `to` as the interpreter does.
  mlir::Value cast(mlir::Value v, DType from, DType to);
  /// The elementwise op `node` applied to operand elements `x`.
  mlir::Value elementwise(const Node &node, const std::vector<mlir::Value> &x);

private:
  mlir::OpBuilder &b_;
  mlir::Location loc_;
};

} // namespace kiln
