#include "codegen/ProgramLowering.h"

#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/Verifier.h"
#include "runtime/Error.h"

#include <algorithm>
#include <unordered_map>

namespace kiln {

namespace {

int64_t bytesOf(const TensorType &t) { return t.numElements() * int64_t(dtypeSize(t.dtype)); }

int64_t product(const std::vector<int64_t> &dims, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i)
    p *= dims[i];
  return p;
}

/// What a step computes, for messages: `exp`, `matmul`, or a fusion's body
/// ops in order, `fusion (neg, exp)` (the first 8, then `...`).
std::string describeOps(const Node &node) {
  std::string text(opName(node.kind()));
  const Graph *body = node.body();
  if (!body)
    return text;
  text += " (";
  size_t shown = 0;
  for (const auto &inner : body->nodes()) {
    if (shown == 8) {
      text += ", ...";
      break;
    }
    text += (shown++ ? ", " : "") + std::string(opName(inner->kind()));
  }
  return text + ")";
}

/// Lowers one planned graph; see lowerToProgram.
class Lowering {
public:
  Lowering(const Graph &graph, std::string backend) : graph_(graph), backend_(std::move(backend)) {}

  Program run(std::vector<const Node *> &kernelNodes);

private:
  BufferRef bufferOf(const Value *v) const {
    if (v->arg)
      return BufferRef{BufferRef::Space::Argument, argIndex_.at(v->arg), 0, bytesOf(v->type)};
    std::vector<BufferSlice> slices = nodeBuffers(*v->node);
    if (slices.size() != v->node->numResults())
      throwError(describeNodeLocation(graph_, *v->node),
                 "the " + backend_ + " backend needs a memory plan: run plan-memory last");
    const BufferSlice &slice = slices[v->index];
    if (slice.isArena())
      return BufferRef{BufferRef::Space::Arena, -1, slice.begin, bytesOf(v->type)};
    const Argument *arg = graph_.findArgument(slice.buffer.substr(1));
    return BufferRef{BufferRef::Space::Argument, argIndex_.at(arg), slice.begin, bytesOf(v->type)};
  }
  void libraryParams(const Node &node, Step &step) const;

  const Graph &graph_;
  std::string backend_;
  std::unordered_map<const Argument *, int32_t> argIndex_;
};

void Lowering::libraryParams(const Node &node, Step &step) const {
  auto window = [&](const Shape &x, const Shape &w, const Shape &y) {
    WindowParams p;
    p.n = x[0]; p.c = x[1]; p.h = x[2]; p.w = x[3];
    p.o = y[1]; p.oh = y[2]; p.ow = y[3];
    p.kh = w.rank() ? w[2] : 1;
    p.kw = w.rank() ? w[3] : 1;
    return p;
  };
  switch (node.kind()) {
  case OpKind::Matmul: {
    const Shape &a = node.operand(0)->type.shape;
    const Shape &y = node.type().shape;
    size_t r = y.rank();
    step.kind = StepKind::Matmul;
    step.matmul.batch = product(y.dims(), 0, r - 2);
    step.matmul.m = y[r - 2];
    step.matmul.n = y[r - 1];
    step.matmul.transposeA = node.boolAttr("transpose_a");
    step.matmul.transposeB = node.boolAttr("transpose_b");
    step.matmul.k = step.matmul.transposeA ? a[r - 2] : a[r - 1];
    step.matmul.dtype = node.type().dtype;
    return;
  }
  case OpKind::Conv2d: case OpKind::Conv2dGradInput: case OpKind::Conv2dGradFilter: {
    const Shape &a = node.operand(0)->type.shape, &b = node.operand(1)->type.shape, &r = node.type().shape;
    const Shape &x = node.kind() == OpKind::Conv2dGradInput ? r : a;
    const Shape &w = node.kind() == OpKind::Conv2d ? b : node.kind() == OpKind::Conv2dGradInput ? b : r;
    const Shape &y = node.kind() == OpKind::Conv2d ? r : node.kind() == OpKind::Conv2dGradInput ? a : b;
    step.kind = node.kind() == OpKind::Conv2d ? StepKind::Conv2d
              : node.kind() == OpKind::Conv2dGradInput ? StepKind::Conv2dGradInput
                                                       : StepKind::Conv2dGradFilter;
    step.window = window(x, w, y);
    const auto &stride = node.intsAttr("stride"), &padding = node.intsAttr("padding"),
               &dilation = node.intsAttr("dilation");
    step.window.strideH = stride[0]; step.window.strideW = stride[1];
    step.window.padH = padding[0]; step.window.padW = padding[1];
    step.window.dilationH = dilation[0]; step.window.dilationW = dilation[1];
    step.window.groups = node.intAttr("groups");
    step.window.dtype = node.type().dtype;
    return;
  }
  case OpKind::MaxPool2d: case OpKind::AvgPool2d: case OpKind::MaxPool2dGrad: case OpKind::AvgPool2dGrad: {
    bool grad = node.kind() == OpKind::MaxPool2dGrad || node.kind() == OpKind::AvgPool2dGrad;
    const Shape &x = node.kind() == OpKind::AvgPool2dGrad ? node.type().shape : node.operand(0)->type.shape;
    const Shape &y = grad ? (node.kind() == OpKind::MaxPool2dGrad ? node.operand(1)->type.shape
                                                                  : node.operand(0)->type.shape)
                          : node.type().shape;
    step.kind = node.kind() == OpKind::MaxPool2d ? StepKind::MaxPool2d
              : node.kind() == OpKind::AvgPool2d ? StepKind::AvgPool2d
              : node.kind() == OpKind::MaxPool2dGrad ? StepKind::MaxPool2dGrad
                                                     : StepKind::AvgPool2dGrad;
    step.window = window(x, Shape(), y);
    const auto &win = node.intsAttr("window"), &stride = node.intsAttr("stride"),
               &padding = node.intsAttr("padding");
    step.window.kh = win[0]; step.window.kw = win[1];
    step.window.strideH = stride[0]; step.window.strideW = stride[1];
    step.window.padH = padding[0]; step.window.padW = padding[1];
    step.window.dtype = node.type().dtype;
    return;
  }
  case OpKind::Gather: case OpKind::ScatterAdd: {
    bool gather = node.kind() == OpKind::Gather;
    const TensorType &table = gather ? node.operand(0)->type : node.type();
    const TensorType &idx = gather ? node.operand(1)->type : node.operand(0)->type;
    size_t axis = size_t(node.intAttr("axis"));
    step.kind = gather ? StepKind::Gather : StepKind::ScatterAdd;
    step.index.outer = product(table.shape.dims(), 0, axis);
    step.index.rows = table.shape[axis];
    step.index.inner = product(table.shape.dims(), axis + 1, table.shape.rank());
    step.index.indices = idx.numElements();
    step.index.indexType = idx.dtype;
    step.index.valueType = table.dtype;
    return;
  }
  default:
    throwError(describeNodeLocation(graph_, node),
               "the " + backend_ + " backend has no library kernel for " + std::string(opName(node.kind())));
  }
}

Program Lowering::run(std::vector<const Node *> &kernelNodes) {
  Program program;
  program.name = graph_.name();
  for (const auto &arg : graph_.arguments()) {
    argIndex_[arg.get()] = int32_t(program.arguments.size());
    ArgumentRole role = arg->role == ArgRole::Input   ? ArgumentRole::Input
                        : arg->role == ArgRole::Param ? ArgumentRole::Param
                                                      : ArgumentRole::State;
    program.arguments.push_back(ArgumentSpec{arg->name, role, arg->value.type.dtype,
                                             arg->value.type.shape, argumentInit(*arg)});
  }
  int64_t arena = 0;
  size_t number = 0;
  for (const auto &node : graph_.nodes()) {
    Step step;
    step.name = "%" + std::to_string(number++) + " " + std::string(opName(node->kind()));
    step.where = describeNodeLocation(graph_, *node);
    step.what = describeOps(*node);
    for (size_t r = 0; r < node->numResults(); ++r)
      step.resultTypes.push_back(node->result(r)->type.dtype);
    for (const Value *v : node->operands())
      step.operands.push_back(bufferOf(v));
    step.result = bufferOf(node->result());
    for (size_t r = 1; r < node->numResults(); ++r) // a multi-output fusion
      step.extraResults.push_back(bufferOf(node->result(r)));
    for (size_t r = 0; r < node->numResults(); ++r) {
      const BufferRef &written = r ? step.extraResults[r - 1] : step.result;
      if (written.space == BufferRef::Space::Arena)
        arena = std::max(arena, written.offset + written.bytes);
    }
    bool library = node->info().has(OpTrait::Library) && node->kind() != OpKind::Fusion;
    if (library) {
      libraryParams(*node, step);
    } else {
      step.kind = StepKind::Kernel;
      kernelNodes.push_back(node.get());
    }
    program.steps.push_back(std::move(step));
  }
  for (size_t i = 0; i < graph_.results().size(); ++i) {
    const Value *v = graph_.results()[i];
    program.results.push_back(ResultSpec{graph_.resultName(i), v->type.dtype, v->type.shape, bufferOf(v)});
  }
  for (const Update &u : graph_.updates())
    program.updates.push_back(UpdateSpec{argIndex_.at(u.target), bufferOf(u.source)});
  program.arenaBytes = (arena + 63) / 64 * 64;
  return program;
}

} // namespace

Program lowerToProgram(const Graph &planned, const std::string &backend,
                       std::vector<const Node *> &kernelNodes) {
  return Lowering(planned, backend).run(kernelNodes);
}

} // namespace kiln
