// CUDA code generation: the kernels of a planned graph -> CUDA C++ source,
// compiled by NVRTC (codegen/cuda/Nvrtc.h). No MLIR or LLVM: this folder
// builds with the CPU backend off (the GPU machines have no LLVM packages).
#pragma once

#include "runtime/cuda/CudaProgram.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

class Graph;
class Node;

/// One generated kernel: `source` is its definition (and its literal tables),
/// to be compiled after cudaPreamble() in one translation unit. Its
/// parameters are one pointer per operand of the step, then one per result
/// (Step::result, then Step::extraResults), in the storage type of each
/// (f32 float, f64 double, bf16/f16 unsigned short bits, i32 int, i64 long
/// long, i1 unsigned char 0/1).
struct CudaKernel {
  CudaLaunch launch;
  std::string source;
  /// "loop" (a grid-stride loop over the results' elements), "row" (one block
  /// per row of the leading dimensions, block-wide reductions) or "library".
  std::string strategy;
};

/// The C type a kernel parameter of element type `t` points to.
std::string cudaStorageType(DType t);

/// The helpers every kernel uses (element conversions, NaN-propagating
/// max/min, integer division, saturating float-to-int casts, Philox, the
/// deterministic block reductions). Needs no header, not even <cuda_fp16.h>.
const std::string &cudaPreamble();

/// The kernel of a `fusion` node (its body) or of any other op that is not a
/// `Library` op, named `name`: elementwise and index-mapping ops are built
/// inline per element; reductions are loops (block-wide with warp shuffles in
/// "row" kernels, one thread per output otherwise), never atomics. Every op
/// Kiln's IR allows inside a kernel is supported; anything else is a located
/// kiln::Error.
CudaKernel generateCudaKernel(const Node &node, const std::string &name);

/// The dedicated kernel of a library step other than matmul (conv2d and its
/// grads, pooling and grads, gather, scatter_add), specialized to its shapes.
/// Deterministic: every output element is written by one thread, sums in a
/// fixed order. A kiln::Error for StepKind::Matmul/Kernel/Copy or an
/// unsupported dtype.
CudaKernel generateLibraryKernel(const Step &step, const std::string &name);

/// The kernels around cuBLASLt in a convolution of one group (lowerForCuda):
/// im2col of every image, `cols [n, K, P]` with K = c * kh * kw in (c, kh,
/// kw) order and P = oh * ow (zeros where a tap falls in the padding); its
/// transpose col2im, `dx [n, c, h, w]` as the sum, in double and in (kh, kw)
/// order, of the taps that read each input; and the sum over `batch` matrices
/// of `elements` values, in batch order in double (the filter gradient's
/// per-image products). One thread per output element: deterministic.
CudaKernel generateIm2colKernel(const WindowParams &p, const std::string &name);
CudaKernel generateCol2imKernel(const WindowParams &p, const std::string &name);
CudaKernel generateBatchSumKernel(int64_t batch, int64_t elements, DType dtype, const std::string &name);

/// scatter_add through a sort (lowerForCuda, when there are fewer indices
/// than outputs): the first kernel writes the indices' values in stable
/// sorted order and, after them, their positions (`long long [2, indices]`:
/// each index's rank is the count of smaller ones and of equal ones before
/// it); the second gives each output element its run of equal keys by binary
/// search and sums those updates in index order, in double — the same sums,
/// in the same order, as the direct kernel, without looping over every index.
CudaKernel generateScatterSortKernel(const IndexParams &p, const std::string &name);
CudaKernel generateSortedScatterAddKernel(const IndexParams &p, const std::string &name);

/// Lowers a planned graph (plan-memory ran last) for the CUDA backend,
/// putting at most `kernelsPerModule` kernels into one translation unit (few
/// programs compile faster than many; several compile in parallel).
CudaProgram lowerForCuda(const Graph &planned, size_t kernelsPerModule = 8);

} // namespace kiln
