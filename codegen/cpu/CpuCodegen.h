// CPU code generation: kernels of a planned graph -> MLIR -> LLVM -> JIT, or
// ahead of time to LLVM IR, assembly and object files.
// The only header of codegen/cpu the rest of Kiln sees; it includes no MLIR.
#pragma once

#include "runtime/Program.h"

#include <functional>
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
  /// Per result (may be shorter: none): the operands whose buffers overlap
  /// its buffer. A multi-output kernel must read them before writing it.
  std::vector<std::vector<size_t>> overlappedOperands;
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
  /// Each requested kernel's schedule, in request order.
  const std::vector<KernelSchedule> &schedules() const;

  struct Impl;
  explicit CpuKernels(std::unique_ptr<Impl> impl);

private:
  std::unique_ptr<Impl> impl_;
};

/// Generates every requested kernel into one MLIR module (scf loops over
/// memrefs; exp/log/tanh/erf through MLIR's polynomial approximations),
/// lowers it to the LLVM dialect and JIT-compiles it at O3 for the host CPU
/// (its name and features, as hostCpuName()).
/// Every op Kiln's IR allows inside a kernel is supported; anything else is a
/// kiln::Error naming it (never a silent fallback).
std::unique_ptr<CpuKernels> compileCpuKernels(const std::vector<KernelRequest> &kernels);

/// What generateCpuCode produces.
struct CpuCodeOptions {
  /// The LLVM CPU name to generate for (`-mcpu`, e.g. znver4, skylake-avx512,
  /// x86-64-v3); empty: the host CPU with all its features. An unknown name is
  /// a kiln::Error.
  std::string cpu;
  bool llvm = false;     // LLVM IR text, after the O3 pipeline
  bool assembly = false; // assembly text
  bool object = false;   // an ELF object file
  bool perKernel = false; // also each kernel alone (its MLIR, and LLVM IR / assembly as asked)
  /// With `object`: the object also defines PREFIX_kernels (the kernels'
  /// addresses in request order), PREFIX_kernel_count (int64), PREFIX_program
  /// (the bytes `programData` returns for the kernels' schedules) and
  /// PREFIX_program_size (int64) (runtime/cpu/AotHeader.h).
  std::string symbolPrefix;
  std::function<std::string(const std::vector<KernelSchedule> &)> programData;
};

struct KernelCode {
  std::string name, mlir, llvm, assembly;
};

struct CpuCode {
  std::string mlir; // the module before lowering
  std::string llvm, assembly, object;
  std::vector<KernelSchedule> schedules; // per kernel, in request order
  std::vector<KernelCode> kernels;       // with perKernel, in request order
};

/// The kernels ahead of time: the same MLIR module and O3 pipeline as
/// compileCpuKernels, for `options.cpu`.
CpuCode generateCpuCode(const std::vector<KernelRequest> &kernels, const CpuCodeOptions &options);

/// The host CPU's LLVM name (`znver4`).
std::string hostCpuName();

} // namespace kiln
