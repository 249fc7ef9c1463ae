// Internals of the reference interpreter (ir/Interpreter.cpp): how it holds
// values, how it rounds them, and the kernels of the larger ops
// (ir/InterpreterKernels.cpp). Not part of the IR's public interface.
#pragma once

#include "ir/Interpreter.h"
#include "runtime/DType.h"
#include "runtime/Shape.h"

#include <cstdint>
#include <vector>

namespace kiln {

class Node;

namespace interp {

/// A value during interpretation. Float dtypes keep their elements in `reals`
/// (already rounded to the dtype under Precision::Native, exact under F64);
/// i32, i64 and i1 keep theirs exactly in `ints` (i1 as 0 or 1, i32 within
/// its range). Exactly one of the two vectors is used.
struct Buffer {
  DType dtype = DType::F32;
  Shape shape;
  std::vector<double> reals;
  std::vector<int64_t> ints;

  Buffer() = default;
  /// Zeros of the given type.
  Buffer(DType type, Shape dims);
  bool isReal() const { return isFloat(dtype); }
  int64_t numElements() const { return shape.numElements(); }
};

/// Rounds every element of a float buffer to its dtype when `precision` is
/// Native; F64 keeps the double values.
void roundBuffer(Buffer &b, Precision precision);

// Kernels of the larger ops. Float results come back rounded per `precision`.
Buffer reduceSum(const Node &node, const Buffer &x, Precision precision);
Buffer reduceMax(const Node &node, const Buffer &x);
Buffer argmax(const Node &node, const Buffer &x);
Buffer matmul(const Node &node, const Buffer &a, const Buffer &b, Precision precision);
Buffer conv2d(const Node &node, const Buffer &x, const Buffer &w, Precision precision);
Buffer conv2dGradInput(const Node &node, const Buffer &dy, const Buffer &w, Precision precision);
Buffer conv2dGradFilter(const Node &node, const Buffer &x, const Buffer &dy, Precision precision);
Buffer maxPool2d(const Node &node, const Buffer &x);
Buffer avgPool2d(const Node &node, const Buffer &x, Precision precision);
Buffer maxPool2dGrad(const Node &node, const Buffer &x, const Buffer &dy, Precision precision);
Buffer avgPool2dGrad(const Node &node, const Buffer &dy, Precision precision);
Buffer gather(const Node &node, const Buffer &table, const Buffer &indices);
Buffer scatterAdd(const Node &node, const Buffer &indices, const Buffer &updates,
                  Precision precision);

} // namespace interp
} // namespace kiln
