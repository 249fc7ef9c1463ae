// Internal to codegen/cpu: one kernel -> one MLIR `func` (scf, arith, math,
// memref) appended to a module.
#pragma once

#include "codegen/cpu/CpuCodegen.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace kiln {

/// Appends `request`'s kernel to `module` as a function with the runtime's
/// kernel signature (runtime/Program.h): `(index begin, index end, memref
/// operands..., memref results...)`, lowered with bare pointers. Returns how
/// the runtime may split its outermost loop.
KernelSchedule emitKernel(mlir::OpBuilder &builder, mlir::ModuleOp module, const KernelRequest &request);

} // namespace kiln
