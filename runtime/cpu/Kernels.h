// The CPU runtime's library kernels: the ops of a Program that are not
// generated code (StepKind other than Kernel and Copy). Each computes exactly
// the op of docs/ops.md, as the reference interpreter (ir/InterpreterKernels.cpp)
// does, on dense row-major buffers described by the step's params.
//
// Floats: f32 and f64 (`T` = float or double); sums run in T, so results differ
// from the interpreter's (which sums in double, then rounds once) by the
// rounding of a sum of T. Every kernel writes its whole result (it never
// accumulates into what was there) and is bitwise deterministic for a given
// thread count: parallel loops split outputs, never a sum, except
// conv2dGradFilter's sum over the batch, which adds per-thread partial sums in
// thread order.
//
// Threads: the loops use OpenMP and BLAS is OpenBLAS's OpenMP build, one team
// for both (runtime/cpu/Threads.h). A kernel parallelizes over its batch (or
// planes) when there are enough of them, and otherwise leaves the threads to
// one BLAS call at a time.
#pragma once

#include "runtime/Program.h"
#include "runtime/ProgramCheck.h"

namespace kiln {
namespace cpu {

/// C[b] = op(A[b]) op(B[b]) for b < batch: A is [m, k] ([k, m] when
/// transposeA), B is [k, n] ([n, k] when transposeB), C is [m, n].
template <typename T> void matmul(const MatmulParams &p, const T *a, const T *b, T *c);

/// y [n, o, oh, ow] = conv2d(x [n, c, h, w], w [o, c / groups, kh, kw]):
/// im2col of each image and group, then one GEMM.
template <typename T> void conv2d(const WindowParams &p, const T *x, const T *w, T *y);
/// dx [n, c, h, w] = conv2d_grad_input(dy [n, o, oh, ow], w): one GEMM into
/// columns, then col2im.
template <typename T> void conv2dGradInput(const WindowParams &p, const T *dy, const T *w, T *dx);
/// dw [o, c / groups, kh, kw] = conv2d_grad_filter(x, dy): one GEMM per image
/// and group against its im2col, summed over the batch.
template <typename T> void conv2dGradFilter(const WindowParams &p, const T *x, const T *dy, T *dw);

/// Pooling over x [n, c, h, w] -> y [n, c, oh, ow] with window [kh, kw]:
/// padding never wins max pooling (the first NaN does; ties go to the first
/// maximum in row-major window order); average pooling divides by kh * kw.
template <typename T> void maxPool2d(const WindowParams &p, const T *x, T *y);
template <typename T> void avgPool2d(const WindowParams &p, const T *x, T *y);
/// dx = zeros, then each dy element added at its window's first maximum of x.
template <typename T> void maxPool2dGrad(const WindowParams &p, const T *x, const T *dy, T *dx);
/// dx = zeros, then each dy element / (kh * kw) added at its window's
/// in-bounds positions.
template <typename T> void avgPool2dGrad(const WindowParams &p, const T *dy, T *dx);

/// out [outer, indices, inner] = table [outer, rows, inner] taken at
/// `indices` (i32 or i64) clamped to [0, rows - 1]; any value type (copied as
/// bytes). With rows == 0 the result is zeros.
void gather(const IndexParams &p, const void *table, const void *indices, void *out);
/// out [outer, rows, inner] = zeros, then out[o, idx[j], :] += upd[o, j, :] in
/// index order; out-of-range indices are dropped. Values f32, f64 (rounded
/// sums in index order), i32, i64 (wrapping).
void scatterAdd(const IndexParams &p, const void *indices, const void *updates, void *out);

} // namespace cpu
} // namespace kiln
