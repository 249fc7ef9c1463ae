// A compiled step as data the runtime executes: ordered steps over buffers.
// The runtime knows no IR: codegen lowers a planned graph to a Program.
#pragma once

#include "runtime/ArgumentInit.h"
#include "runtime/DType.h"
#include "runtime/Shape.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

/// Where a step's operand or result lives: a slice of the arena or of an
/// argument's persistent buffer (params, state, inputs), by argument index.
struct BufferRef {
  enum class Space : uint8_t { Arena, Argument };
  Space space = Space::Arena;
  int32_t argument = -1; // for Space::Argument
  int64_t offset = 0;    // bytes
  int64_t bytes = 0;
};

/// A generated kernel (JIT or AOT), called as
///   kernel(int64_t begin, int64_t end, operand pointers..., result pointers...)
/// It computes iterations [begin, end) of its outermost loop, which has
/// `Step::iterations` iterations in all; the runtime splits that range over
/// its threads (every split gives bitwise the same results).
using KernelFunction = void (*)();

/// Library ops run by the runtime's own kernels (runtime/cpu/*.h), with the
/// shapes they need; every tensor is dense row-major, of the params' dtype.
enum class StepKind : uint8_t {
  Kernel,          // a generated function: `kernel`, operands..., results...
  Matmul,          // C[b] = op(A[b]) op(B[b])
  Conv2d,          // y = conv2d(x, w)
  Conv2dGradInput, // dx = conv2d_grad_input(dy, w)
  Conv2dGradFilter,// dw = conv2d_grad_filter(x, dy)
  MaxPool2d,       // y = max_pool2d(x)
  AvgPool2d,       // y = avg_pool2d(x)
  MaxPool2dGrad,   // dx = max_pool2d_grad(x, dy)
  AvgPool2dGrad,   // dx = avg_pool2d_grad(dy)
  Gather,          // out = take(table, idx, axis)
  ScatterAdd,      // out = zeros; out[idx] += upd along axis
  Copy,            // result = operand (bytes)
};

struct MatmulParams {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool transposeA = false, transposeB = false;
  DType dtype = DType::F32; // f32 or f64
  /// A is one matrix for every batch (the CUDA backend's convolutions: the
  /// filter times each image's im2col); B and C are still `batch` matrices.
  bool broadcastA = false;
  /// C = op(A) op(B) + bias, the bias a third operand of n values added to
  /// every row (the CUDA backend's cuBLASLt epilogue, for a Linear layer's
  /// matmul and bias add; batch 1 only).
  bool biasEpilogue = false;
};

/// conv2d and its grads, and pooling: NCHW input [n, c, h, w], OIHW filter
/// [o, c / groups, kh, kw], output [n, o, oh, ow] (pooling: o = c).
struct WindowParams {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t o = 0, kh = 1, kw = 1, oh = 0, ow = 0;
  int64_t strideH = 1, strideW = 1, padH = 0, padW = 0, dilationH = 1, dilationW = 1;
  int64_t groups = 1;
  DType dtype = DType::F32; // f32 or f64
};

/// gather / scatter_add along `axis` of a table [outer, rows, inner] with
/// `indices` index values (i32 or i64): out [outer, indices, inner].
struct IndexParams {
  int64_t outer = 0, rows = 0, inner = 0, indices = 0;
  DType indexType = DType::I32;
  DType valueType = DType::F32;
};

struct Step {
  StepKind kind = StepKind::Kernel;
  std::string name; // for profiles and errors: "%12 fusion"
  KernelFunction kernel = nullptr;
  std::vector<BufferRef> operands;
  BufferRef result;
  std::vector<BufferRef> extraResults; // a multi-output kernel's further results
  int64_t iterations = 1;    // a kernel's outermost loop trip count (0 for an empty result)
  int64_t iterationCost = 1; // elements computed per iteration: when to go parallel
  MatmulParams matmul;
  WindowParams window;
  IndexParams index;
  /// For located errors (`kiln run --check-numerics`): where the IR node that
  /// produced this step is (`a.kir:4:10`; empty when unknown), what it is
  /// (`exp`, `matmul`, `fusion (neg, exp)`), and the dtype of `result` then
  /// of each of `extraResults` (empty when unknown: nothing is checked).
  std::string where;
  std::string what;
  std::vector<DType> resultTypes;
};

enum class ArgumentRole : uint8_t { Input, Param, State };

struct ArgumentSpec {
  std::string name;
  ArgumentRole role = ArgumentRole::Input;
  DType dtype = DType::F32;
  Shape shape;
  ArgumentInit init; // its value when none is given (params from the seed, random feeds)
};

struct ResultSpec {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  BufferRef buffer;
};

/// After the steps, argument `argument` takes the bytes of `source` (skipped
/// when the plan already wrote it in place).
struct UpdateSpec {
  int32_t argument = -1;
  BufferRef source;
};

struct Program {
  std::string name;
  std::vector<ArgumentSpec> arguments;
  std::vector<Step> steps;
  std::vector<ResultSpec> results;
  std::vector<UpdateSpec> updates;
  int64_t arenaBytes = 0;
};

} // namespace kiln
