// What every backend's Executable checks of a Program before it runs it, and
// the argument bookkeeping they share (names, staged updates, checkpoints).
#pragma once

#include "runtime/Program.h"
#include "runtime/Safetensors.h"
#include "runtime/Tensor.h"

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace kiln {

/// "kernel", "matmul", "conv2d", ...: a step kind as profiles and errors name it.
const char *stepKindName(StepKind kind);

/// Whether the runtimes support `t` as the float type of conv/pool/matmul
/// (f32, f64) and as the value type of scatter_add (also i32, i64).
bool isFloatKernelType(DType t);
bool isScatterAddValueType(DType t);

/// "f32[4, 8]".
std::string typeString(DType dtype, const Shape &shape);

struct ProgramCheckOptions {
  /// Kernel steps must carry a function pointer (the CPU backend; the CUDA
  /// backend launches kernels by name instead).
  bool kernelFunctions = true;
  /// The most pointers (operands + results) a kernel step may take.
  size_t maxKernelPointers = 32;
  /// Matmuls may carry a bias epilogue (MatmulParams::biasEpilogue: CUDA).
  bool matmulBias = false;
};

/// Checks the whole Program: every buffer slice inside its buffer, operand
/// counts and byte sizes against each library step's params, dtypes the
/// runtime supports, results and updates of their arguments' sizes. Any
/// defect is a kiln::Error naming the step, so that an Executable never reads
/// or writes outside its buffers (given correct kernels).
void checkProgram(const Program &program, const ProgramCheckOptions &options);

/// The bytes of argument `i` (its shape times its dtype's size).
int64_t argumentBytes(const ArgumentSpec &argument);

/// The index of the argument named `name`; a kiln::Error listing the
/// arguments when there is none.
size_t argumentIndex(const Program &program, const std::string &name);

/// A kiln::Error unless `value` has the argument's dtype and shape.
void checkArgumentValue(const Program &program, size_t argument, const HostTensor &value);

/// The updates (indices into `program.updates`) whose source is an argument
/// that an earlier update overwrites: their source must be copied aside
/// before any update is applied.
std::vector<size_t> stagedUpdates(const Program &program);

/// The tensors of a checkpoint read from `path`, matched to the arguments of
/// the same names: (argument index, tensor). Every tensor must name an
/// argument and have its dtype and shape, else a kiln::Error naming the file
/// and the tensor (and nothing is to be loaded).
std::vector<std::pair<size_t, const HostTensor *>> matchCheckpoint(const Program &program, const TensorMap &tensors,
                                                                   const std::string &path);

} // namespace kiln
