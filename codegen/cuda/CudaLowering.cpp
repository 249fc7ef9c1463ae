// A planned graph -> CudaProgram: the shared Program lowering, then one
// generated kernel per kernel step and per library step other than matmul,
// batched into translation units. Convolutions of one group become GEMMs on
// cuBLASLt between generated im2col/col2im kernels, in scratch space after
// the planned arena.
#include "codegen/ProgramLowering.h"
#include "codegen/cuda/CudaCodegen.h"
#include "ir/Graph.h"

#include <algorithm>

namespace kiln {

namespace {

int64_t alignUp(int64_t bytes) { return (bytes + 255) / 256 * 256; }

/// Lowers a Program's steps for the GPU, step by step, appending kernels.
class Lowering {
public:
  Lowering(CudaProgram &out, std::vector<CudaKernel> &kernels) : out_(out), kernels_(kernels) {}

  /// The steps of `step`: itself, or, for a convolution of one group with
  /// every size positive, im2col / matmul / col2im / batch-sum steps.
  void lower(const Step &step, const Node *kernelNode) {
    if (!lowerConvolution(step) && !lowerScatterAdd(step)) {
      CudaLaunch launch;
      if (step.kind == StepKind::Kernel)
        launch = add(generateCudaKernel(*kernelNode, nextName()));
      else if (step.kind != StepKind::Matmul && step.kind != StepKind::Copy)
        launch = add(generateLibraryKernel(step, nextName()));
      push(step, launch);
    }
  }

  /// A matmul whose only reader is the next step, a fusion adding a bias row
  /// to it (a Linear layer), becomes one matmul with cuBLASLt's bias
  /// epilogue writing the fusion's result. `later` are the steps after the
  /// fusion (to check nothing else reads the matmul's result).
  bool fuseBias(const Step &matmul, const Step &add, const Node &addNode, const std::vector<Step> &later,
                size_t from) {
    const MatmulParams &p = matmul.matmul;
    const Graph *body = addNode.body();
    if (p.batch != 1 || p.broadcastA || p.biasEpilogue || p.dtype != DType::F32 || p.k < 1 || !body ||
        body->arguments().size() != 2 || body->nodes().size() != 2 || body->results().size() != 1 ||
        !add.extraResults.empty())
      return false;
    const Node *broadcast = body->nodes()[0].get(), *sum = body->nodes()[1].get();
    if (broadcast->kind() != OpKind::Broadcast || sum->kind() != OpKind::Add || body->results()[0] != sum->result() ||
        broadcast->intsAttr("dims") != std::vector<int64_t>{1})
      return false;
    // add(x, broadcast(bias)) in either order, x the matmul's result [m, n], bias [n].
    const Value *x = sum->operand(0) == broadcast->result() ? sum->operand(1) : sum->operand(0);
    if (sum->operand(0) != broadcast->result() && sum->operand(1) != broadcast->result())
      return false;
    auto argumentIndex = [&](const Value *v) -> int {
      for (size_t a = 0; a < body->arguments().size(); ++a)
        if (&body->arguments()[a]->value == v)
          return int(a);
      return -1;
    };
    int xi = argumentIndex(x), bi = argumentIndex(broadcast->operand(0));
    if (xi < 0 || bi < 0 || xi == bi || x->type.shape != Shape{p.m, p.n})
      return false;
    auto same = [](const BufferRef &a, const BufferRef &b) {
      return a.space == b.space && a.argument == b.argument && a.offset == b.offset && a.bytes == b.bytes;
    };
    if (!same(add.operands[size_t(xi)], matmul.result) || same(add.result, matmul.operands[0]) ||
        same(add.result, matmul.operands[1]))
      return false;
    // Nothing after reads the matmul's result before it is overwritten.
    auto overlaps = [&](const BufferRef &r) {
      const BufferRef &m = matmul.result;
      return r.space == m.space && r.argument == m.argument && r.offset < m.offset + m.bytes &&
             m.offset < r.offset + r.bytes;
    };
    auto covers = [&](const BufferRef &w) {
      const BufferRef &m = matmul.result;
      return w.space == m.space && w.argument == m.argument && w.offset <= m.offset &&
             m.offset + m.bytes <= w.offset + w.bytes;
    };
    bool dead = covers(add.result); // the add wrote in place
    for (size_t s = from; s < later.size() && !dead; ++s) {
      for (const BufferRef &r : later[s].operands)
        if (overlaps(r))
          return false;
      dead = covers(later[s].result);
    }
    for (const ResultSpec &r : out_.program.results)
      if (!dead && overlaps(r.buffer))
        return false;
    for (const UpdateSpec &u : out_.program.updates)
      if (!dead && overlaps(u.source))
        return false;
    Step fused = matmul;
    fused.name = matmul.name + " + bias";
    fused.what = matmul.what + " + bias";
    fused.operands.push_back(add.operands[size_t(bi)]);
    fused.result = add.result;
    fused.resultTypes = add.resultTypes;
    fused.matmul.biasEpilogue = true;
    push(fused, CudaLaunch());
    return true;
  }

  /// Scratch bytes the convolutions need after the planned arena (steps run
  /// one after another, so they share it).
  int64_t scratchBytes() const { return scratch_; }

  /// Moves the scratch slices of the lowered steps to `offset` (the end of
  /// the planned arena, rounded up).
  void placeScratch(int64_t offset) {
    for (auto &[step, refs] : scratchRefs_)
      for (size_t r : refs) {
        Step &s = out_.program.steps[step];
        BufferRef &ref = r == 0 ? s.result : s.operands[r - 1];
        ref.offset += offset;
      }
  }

private:
  std::string nextName() { return "kiln_kernel_" + std::to_string(kernels_.size()); }

  CudaLaunch add(CudaKernel kernel) {
    CudaLaunch launch = kernel.launch;
    out_.strategies.push_back(kernel.strategy);
    kernels_.push_back(std::move(kernel));
    return launch;
  }

  void push(Step step, CudaLaunch launch) {
    out_.program.steps.push_back(std::move(step));
    out_.launches.push_back(std::move(launch));
  }

  /// A slice of the scratch space at `offset` within it (placed later).
  static BufferRef scratch(int64_t offset, int64_t bytes) {
    BufferRef ref;
    ref.space = BufferRef::Space::Arena;
    ref.offset = offset;
    ref.bytes = bytes;
    return ref;
  }

  /// Records which buffers of the step about to be pushed are scratch
  /// (0: the result, i + 1: operand i).
  void markScratch(std::vector<size_t> refs) { scratchRefs_.emplace_back(out_.program.steps.size(), std::move(refs)); }

  Step derived(const Step &from, StepKind kind, const std::string &suffix) {
    Step s;
    s.kind = kind;
    s.name = from.name + suffix;
    s.where = from.where;
    s.what = from.what + suffix;
    return s;
  }

  /// The im2col of a convolution's input (its operand 0) into the scratch's
  /// first `colsBytes`.
  void pushIm2col(const Step &step, int64_t colsBytes) {
    Step im2col = derived(step, StepKind::Kernel, " (im2col)");
    im2col.operands = {step.operands[0]};
    im2col.result = scratch(0, colsBytes);
    markScratch({0});
    push(im2col, add(generateIm2colKernel(step.window, nextName())));
  }

  bool lowerConvolution(const Step &step) {
    if (step.kind != StepKind::Conv2d && step.kind != StepKind::Conv2dGradInput &&
        step.kind != StepKind::Conv2dGradFilter)
      return false;
    const WindowParams &p = step.window;
    int64_t taps = p.c * p.kh * p.kw, positions = p.oh * p.ow;
    if (p.groups != 1 || (p.dtype != DType::F32 && p.dtype != DType::F64) || p.n < 1 || p.o < 1 || taps < 1 ||
        positions < 1 || p.h < 1 || p.w < 1)
      return false; // the direct kernel
    int64_t es = int64_t(dtypeSize(p.dtype));
    int64_t colsBytes = p.n * taps * positions * es;
    MatmulParams mm;
    mm.batch = p.n, mm.dtype = p.dtype, mm.broadcastA = true;
    if (step.kind == StepKind::Conv2d) {
      // cols = im2col(x); y[n] [o, P] = w [o, K] x cols[n] [K, P]
      pushIm2col(step, colsBytes);
      Step gemm = derived(step, StepKind::Matmul, " (gemm)");
      gemm.what = step.what, gemm.resultTypes = step.resultTypes;
      gemm.operands = {step.operands[1], scratch(0, colsBytes)};
      gemm.result = step.result;
      mm.m = p.o, mm.n = positions, mm.k = taps;
      gemm.matmul = mm;
      markScratch({2});
      push(gemm, CudaLaunch());
      scratch_ = std::max(scratch_, colsBytes);
    } else if (step.kind == StepKind::Conv2dGradInput) {
      // dcols[n] [K, P] = w^T [K, o] x dy[n] [o, P]; dx = col2im(dcols)
      Step gemm = derived(step, StepKind::Matmul, " (gemm)");
      gemm.operands = {step.operands[1], step.operands[0]};
      gemm.result = scratch(0, colsBytes);
      mm.m = taps, mm.n = positions, mm.k = p.o, mm.transposeA = true;
      gemm.matmul = mm;
      markScratch({0});
      push(gemm, CudaLaunch());
      Step col2im = derived(step, StepKind::Kernel, " (col2im)");
      col2im.what = step.what, col2im.resultTypes = step.resultTypes;
      col2im.operands = {scratch(0, colsBytes)};
      col2im.result = step.result;
      markScratch({1});
      push(col2im, add(generateCol2imKernel(p, nextName())));
      scratch_ = std::max(scratch_, colsBytes);
    } else {
      // cols = im2col(x); part[n] [o, K] = dy[n] [o, P] x cols[n]^T [P, K]; dw = sum over n
      int64_t filterBytes = p.o * taps * es, partsBytes = p.n * filterBytes;
      int64_t partsAt = alignUp(colsBytes);
      pushIm2col(step, colsBytes);
      Step gemm = derived(step, StepKind::Matmul, " (gemm)");
      gemm.operands = {step.operands[1], scratch(0, colsBytes)};
      mm.m = p.o, mm.n = taps, mm.k = positions, mm.transposeB = true, mm.broadcastA = false;
      gemm.matmul = mm;
      if (p.n == 1) {
        gemm.what = step.what, gemm.resultTypes = step.resultTypes;
        gemm.result = step.result;
        markScratch({2});
        push(gemm, CudaLaunch());
        scratch_ = std::max(scratch_, colsBytes);
        return true;
      }
      gemm.result = scratch(partsAt, partsBytes);
      markScratch({0, 2});
      push(gemm, CudaLaunch());
      Step sum = derived(step, StepKind::Kernel, " (sum)");
      sum.what = step.what, sum.resultTypes = step.resultTypes;
      sum.operands = {scratch(partsAt, partsBytes)};
      sum.result = step.result;
      markScratch({1});
      push(sum, add(generateBatchSumKernel(p.n, p.o * taps, p.dtype, nextName())));
      scratch_ = std::max(scratch_, partsAt + partsBytes);
    }
    return true;
  }

  /// scatter_add with fewer indices than outputs: sort the indices, then
  /// each output sums its run (the direct kernel loops over every index for
  /// every output: 50257 x 768 x 8192 iterations for GPT-2's embedding).
  bool lowerScatterAdd(const Step &step) {
    const IndexParams &q = step.index;
    if (step.kind != StepKind::ScatterAdd || q.indices < 1 || q.indices >= q.outer * q.rows * q.inner)
      return false;
    int64_t sortedBytes = 2 * q.indices * 8;
    Step sort = derived(step, StepKind::Kernel, " (sort)");
    sort.operands = {step.operands[0]};
    sort.result = scratch(0, sortedBytes);
    markScratch({0});
    push(sort, add(generateScatterSortKernel(q, nextName())));
    Step sum = derived(step, StepKind::Kernel, " (sum)");
    sum.what = step.what, sum.resultTypes = step.resultTypes;
    sum.operands = {scratch(0, sortedBytes), step.operands[1]};
    sum.result = step.result;
    markScratch({1});
    push(sum, add(generateSortedScatterAddKernel(q, nextName())));
    scratch_ = std::max(scratch_, sortedBytes);
    return true;
  }

  CudaProgram &out_;
  std::vector<CudaKernel> &kernels_;
  int64_t scratch_ = 0;
  std::vector<std::pair<size_t, std::vector<size_t>>> scratchRefs_;
};

} // namespace

CudaProgram lowerForCuda(const Graph &planned, size_t kernelsPerModule) {
  CudaProgram out;
  std::vector<const Node *> kernelNodes;
  Program lowered = lowerToProgram(planned, "CUDA", kernelNodes);
  std::vector<Step> steps = std::move(lowered.steps);
  out.program = std::move(lowered);
  out.program.steps.clear();
  std::vector<CudaKernel> kernels;
  Lowering lowering(out, kernels);
  size_t nextNode = 0;
  for (size_t s = 0; s < steps.size(); ++s) {
    if (steps[s].kind == StepKind::Matmul && s + 1 < steps.size() && steps[s + 1].kind == StepKind::Kernel &&
        lowering.fuseBias(steps[s], steps[s + 1], *kernelNodes[nextNode], steps, s + 2)) {
      ++s, ++nextNode;
      continue;
    }
    lowering.lower(steps[s], steps[s].kind == StepKind::Kernel ? kernelNodes[nextNode++] : nullptr);
  }
  if (lowering.scratchBytes() > 0) {
    int64_t at = alignUp(out.program.arenaBytes);
    lowering.placeScratch(at);
    out.program.arenaBytes = at + lowering.scratchBytes();
  }
  kernelsPerModule = std::max<size_t>(kernelsPerModule, 1);
  for (size_t first = 0; first < kernels.size(); first += kernelsPerModule) {
    CudaModule module;
    module.name = "kiln_module_" + std::to_string(out.modules.size());
    module.source = cudaPreamble();
    for (size_t k = first; k < std::min(kernels.size(), first + kernelsPerModule); ++k) {
      module.source += "\n" + kernels[k].source;
      module.kernels.push_back(kernels[k].launch.kernel);
    }
    out.modules.push_back(std::move(module));
  }
  return out;
}

} // namespace kiln
