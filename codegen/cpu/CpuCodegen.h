// CPU code generation: kernels of a planned graph -> MLIR -> LLVM -> JIT.
// The only header of codegen/cpu the rest of Kiln sees; it includes no MLIR.
#pragma once

#include "runtime/Program.h"

#include <memory>
#include <string>
#include <vector>

namespace kiln {

class Node;

/// One kernel to generate: a `fusion` node (its body is the kernel) or any
/// other op that is not a `Library` op. The function is named `name` and has
/// the runtime's kernel signature (runtime/Program.h): the row range, one
/// pointer per operand of `node`, then one per result.
struct KernelRequest {
  const Node *node;
  std::string name;
  /// Per operand: the index of the result whose buffer it is exactly (same
  /// bytes, dtype and element count: an in-place op), or -1.
  std::vector<int> inPlace;
  /// Whether some operand and result buffers overlap other than exactly as
  /// `inPlace` says: then the pointers may alias and are not marked noalias.
  bool overlapping = false;
};

/// How the runtime may run a kernel: `iterations` rows of its outermost loop,
/// split over threads as it likes (1: call it once with [0, 1)), each row
/// computing about `iterationCost` elements.
struct KernelSchedule {
  int64_t iterations = 1;
  int64_t iterationCost = 1;
};

/// JIT-compiled kernels. Owns the code; function pointers stay valid for its lifetime.
class CpuKernels {
public:
  ~CpuKernels();
  CpuKernels(const CpuKernels &) = delete;
  CpuKernels &operator=(const CpuKernels &) = delete;

  /// The entry point of kernel `name`; a kiln::Error if there is none.
  KernelFunction function(const std::string &name) const;
  /// The MLIR module before lowering (for --emit=mlir and dumps).
  const std::string &mlir() const;
  /// The schedule of the i-th requested kernel.
  const KernelSchedule &schedule(size_t i) const;

  struct Impl;
  explicit CpuKernels(std::unique_ptr<Impl> impl);

private:
  std::unique_ptr<Impl> impl_;
};

/// Generates every requested kernel into one MLIR module (scf loops over
/// memrefs; exp/log/tanh/erf through MLIR's polynomial approximations),
/// lowers it to the LLVM dialect and JIT-compiles it at O3 for the host CPU.
/// Every op Kiln's IR allows inside a kernel is supported; anything else is a
/// kiln::Error naming it (never a silent fallback).
std::unique_ptr<CpuKernels> compileCpuKernels(const std::vector<KernelRequest> &kernels);

} // namespace kiln
