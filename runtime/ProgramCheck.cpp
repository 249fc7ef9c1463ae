#include "runtime/ProgramCheck.h"

#include "runtime/Error.h"

#include <algorithm>
#include <climits>
#include <map>

namespace kiln {

const char *stepKindName(StepKind kind) {
  switch (kind) {
  case StepKind::Kernel: return "kernel";
  case StepKind::Matmul: return "matmul";
  case StepKind::Conv2d: return "conv2d";
  case StepKind::Conv2dGradInput: return "conv2d_grad_input";
  case StepKind::Conv2dGradFilter: return "conv2d_grad_filter";
  case StepKind::MaxPool2d: return "max_pool2d";
  case StepKind::AvgPool2d: return "avg_pool2d";
  case StepKind::MaxPool2dGrad: return "max_pool2d_grad";
  case StepKind::AvgPool2dGrad: return "avg_pool2d_grad";
  case StepKind::Gather: return "gather";
  case StepKind::ScatterAdd: return "scatter_add";
  case StepKind::Copy: return "copy";
  }
  return "?";
}

bool isFloatKernelType(DType t) { return t == DType::F32 || t == DType::F64; }
bool isScatterAddValueType(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::I32 || t == DType::I64;
}

std::string typeString(DType dtype, const Shape &shape) {
  return std::string(dtypeName(dtype)) + shape.toString();
}

namespace {

/// The product of non-negative factors; -1 when one is negative or it overflows.
int64_t product(std::initializer_list<int64_t> factors) {
  int64_t result = 1;
  for (int64_t f : factors)
    if (f < 0 || __builtin_mul_overflow(result, f, &result))
      return -1;
  return result;
}

/// The operand and result byte sizes a library step's params imply (empty
/// when its params are invalid: `why` says how).
struct StepLayout {
  std::vector<int64_t> operandBytes;
  int64_t resultBytes = 0;
  std::string why;
};

/// Whether every value is in [low, kMaxElements]: bounds the params so that
/// the size arithmetic below cannot overflow.
bool allWithin(int64_t low, std::initializer_list<int64_t> values) {
  return std::all_of(values.begin(), values.end(),
                     [&](int64_t v) { return v >= low && v <= kMaxElements; });
}

bool fitsBlas(std::initializer_list<int64_t> dims) {
  return std::all_of(dims.begin(), dims.end(), [](int64_t d) { return d >= 0 && d <= INT_MAX; });
}

/// OH of a window op: floor((h + 2 * pad - extent) / stride) + 1, or -1 when
/// the window does not fit the padded input.
int64_t windowOutput(int64_t in, int64_t pad, int64_t extent, int64_t stride) {
  int64_t span = in + 2 * pad - extent;
  return span < 0 ? -1 : span / stride + 1;
}

StepLayout convLayout(const Step &step) {
  const WindowParams &p = step.window;
  StepLayout layout;
  if (!isFloatKernelType(p.dtype))
    layout.why = "unsupported dtype " + std::string(dtypeName(p.dtype)) + " (f32 or f64)";
  else if (p.groups < 1 || p.c % p.groups != 0 || p.o % p.groups != 0)
    layout.why = "groups must be >= 1 and divide the channels and filters";
  else if (!allWithin(1, {p.strideH, p.strideW, p.dilationH, p.dilationW, p.kh, p.kw}) ||
           !allWithin(0, {p.n, p.c, p.h, p.w, p.o, p.padH, p.padW}) ||
           !allWithin(1, {product({p.dilationH, p.kh}), product({p.dilationW, p.kw})}))
    layout.why = "invalid stride, dilation, padding or sizes";
  else if (p.oh != windowOutput(p.h, p.padH, p.dilationH * (p.kh - 1) + 1, p.strideH) ||
           p.ow != windowOutput(p.w, p.padW, p.dilationW * (p.kw - 1) + 1, p.strideW))
    layout.why = "output size does not follow from the input, filter, stride, padding and dilation";
  else if (!fitsBlas({p.o, product({p.c / p.groups, p.kh, p.kw}), product({p.oh, p.ow})}))
    layout.why = "too large for 32-bit BLAS";
  if (!layout.why.empty())
    return layout;
  int64_t es = int64_t(dtypeSize(p.dtype));
  int64_t x = product({p.n, p.c, p.h, p.w, es}), w = product({p.o, p.c / p.groups, p.kh, p.kw, es});
  int64_t y = product({p.n, p.o, p.oh, p.ow, es});
  switch (step.kind) {
  case StepKind::Conv2d: layout.operandBytes = {x, w}, layout.resultBytes = y; break;
  case StepKind::Conv2dGradInput: layout.operandBytes = {y, w}, layout.resultBytes = x; break;
  case StepKind::Conv2dGradFilter: layout.operandBytes = {x, y}, layout.resultBytes = w; break;
  default: KILN_UNREACHABLE("not a convolution");
  }
  return layout;
}

StepLayout poolLayout(const Step &step) {
  const WindowParams &p = step.window;
  StepLayout layout;
  if (!isFloatKernelType(p.dtype))
    layout.why = "unsupported dtype " + std::string(dtypeName(p.dtype)) + " (f32 or f64)";
  else if (!allWithin(1, {p.strideH, p.strideW, p.kh, p.kw}) ||
           !allWithin(0, {p.n, p.c, p.h, p.w, p.padH, p.padW}))
    layout.why = "invalid window, stride, padding or sizes";
  else if (p.oh != windowOutput(p.h, p.padH, p.kh, p.strideH) ||
           p.ow != windowOutput(p.w, p.padW, p.kw, p.strideW))
    layout.why = "output size does not follow from the input, window, stride and padding";
  if (!layout.why.empty())
    return layout;
  int64_t es = int64_t(dtypeSize(p.dtype));
  int64_t x = product({p.n, p.c, p.h, p.w, es}), y = product({p.n, p.c, p.oh, p.ow, es});
  switch (step.kind) {
  case StepKind::MaxPool2d:
  case StepKind::AvgPool2d: layout.operandBytes = {x}, layout.resultBytes = y; break;
  case StepKind::MaxPool2dGrad: layout.operandBytes = {x, y}, layout.resultBytes = x; break;
  case StepKind::AvgPool2dGrad: layout.operandBytes = {y}, layout.resultBytes = x; break;
  default: KILN_UNREACHABLE("not a pooling op");
  }
  return layout;
}

StepLayout indexLayout(const Step &step) {
  const IndexParams &p = step.index;
  StepLayout layout;
  if (!allWithin(0, {p.outer, p.rows, p.inner, p.indices}))
    layout.why = "invalid sizes";
  else if (p.indexType != DType::I32 && p.indexType != DType::I64)
    layout.why = "indices must be i32 or i64";
  else if (step.kind == StepKind::ScatterAdd && !isScatterAddValueType(p.valueType))
    layout.why = "unsupported value dtype " + std::string(dtypeName(p.valueType)) +
                 " (f32, f64, i32 or i64)";
  if (!layout.why.empty())
    return layout;
  int64_t es = int64_t(dtypeSize(p.valueType));
  int64_t table = product({p.outer, p.rows, p.inner, es});
  int64_t taken = product({p.outer, p.indices, p.inner, es});
  int64_t indices = product({p.indices, int64_t(dtypeSize(p.indexType))});
  if (step.kind == StepKind::Gather)
    layout.operandBytes = {table, indices}, layout.resultBytes = taken;
  else
    layout.operandBytes = {indices, taken}, layout.resultBytes = table;
  return layout;
}

StepLayout matmulLayout(const Step &step) {
  const MatmulParams &p = step.matmul;
  StepLayout layout;
  if (!isFloatKernelType(p.dtype))
    layout.why = "unsupported dtype " + std::string(dtypeName(p.dtype)) + " (f32 or f64)";
  else if (!allWithin(0, {p.batch, p.m, p.n, p.k}))
    layout.why = "invalid sizes";
  else if (!fitsBlas({p.batch, p.m, p.n, p.k}))
    layout.why = "too large for 32-bit BLAS";
  else if (p.biasEpilogue && (p.batch != 1 || p.broadcastA))
    layout.why = "a bias epilogue needs one matrix (batch 1)";
  if (!layout.why.empty())
    return layout;
  int64_t es = int64_t(dtypeSize(p.dtype));
  layout.operandBytes = {product({p.broadcastA ? 1 : p.batch, p.m, p.k, es}), product({p.batch, p.k, p.n, es})};
  if (p.biasEpilogue)
    layout.operandBytes.push_back(product({p.n, es}));
  layout.resultBytes = product({p.batch, p.m, p.n, es});
  return layout;
}

} // namespace

void checkProgram(const Program &prog, const ProgramCheckOptions &options) {
  auto fail = [&](const std::string &what) { throwError(prog.name, what); };
  if (prog.arenaBytes < 0 || prog.arenaBytes > kMaxElements)
    fail("invalid arena size " + std::to_string(prog.arenaBytes));
  std::vector<int64_t> argumentBytes;
  std::map<std::string, size_t> names;
  for (const ArgumentSpec &arg : prog.arguments) {
    if (checkedNumElements(arg.shape.dims()) < 0)
      fail("argument '" + arg.name + "' has an invalid shape " + arg.shape.toString());
    if (!names.emplace(arg.name, argumentBytes.size()).second)
      fail("two arguments are named '" + arg.name + "'");
    argumentBytes.push_back(arg.shape.numElements() * int64_t(dtypeSize(arg.dtype)));
  }
  // A slice must lie inside its buffer.
  auto checkRef = [&](const BufferRef &ref, const std::string &what) {
    int64_t capacity = prog.arenaBytes;
    if (ref.space == BufferRef::Space::Argument) {
      if (ref.argument < 0 || size_t(ref.argument) >= prog.arguments.size())
        fail(what + " names argument #" + std::to_string(ref.argument) + " of " +
             std::to_string(prog.arguments.size()));
      capacity = argumentBytes[size_t(ref.argument)];
    }
    if (ref.offset < 0 || ref.bytes < 0 || ref.offset > capacity || ref.bytes > capacity - ref.offset)
      fail(what + " [" + std::to_string(ref.offset) + ", +" + std::to_string(ref.bytes) +
           ") is outside its buffer of " + std::to_string(capacity) + " bytes");
  };
  for (size_t i = 0; i < prog.steps.size(); ++i) {
    const Step &step = prog.steps[i];
    std::string where = "step " + std::to_string(i) + " '" + step.name + "' (" +
                        stepKindName(step.kind) + ")";
    for (size_t j = 0; j < step.operands.size(); ++j)
      checkRef(step.operands[j], where + ": operand " + std::to_string(j));
    checkRef(step.result, where + ": result");
    for (size_t j = 0; j < step.extraResults.size(); ++j)
      checkRef(step.extraResults[j], where + ": result " + std::to_string(j + 1));
    if (!step.extraResults.empty() && step.kind != StepKind::Kernel)
      fail(where + ": only a kernel has several results");
    if (!step.resultTypes.empty()) {
      if (step.resultTypes.size() != 1 + step.extraResults.size())
        fail(where + ": " + std::to_string(step.resultTypes.size()) + " result dtypes for " +
             std::to_string(1 + step.extraResults.size()) + " results");
      for (size_t j = 0; j < step.resultTypes.size(); ++j) {
        const BufferRef &ref = j ? step.extraResults[j - 1] : step.result;
        if (ref.bytes % int64_t(dtypeSize(step.resultTypes[j])) != 0)
          fail(where + ": result " + std::to_string(j) + " is " + std::to_string(ref.bytes) +
               " bytes, not a whole number of " + std::string(dtypeName(step.resultTypes[j])));
      }
    }
    StepLayout layout;
    switch (step.kind) {
    case StepKind::Kernel:
      if (options.kernelFunctions && !step.kernel)
        fail(where + ": no kernel function");
      if (step.iterations < 0 || step.iterationCost < 1)
        fail(where + ": bad iteration count " + std::to_string(step.iterations) + " x " +
             std::to_string(step.iterationCost));
      if (step.operands.size() + 1 + step.extraResults.size() > options.maxKernelPointers)
        fail(where + ": " + std::to_string(step.operands.size() + 1 + step.extraResults.size()) +
             " pointers, more than a kernel takes (" + std::to_string(options.maxKernelPointers) + ")");
      continue;
    case StepKind::Copy:
      if (step.operands.size() != 1 || step.operands[0].bytes != step.result.bytes)
        fail(where + ": a copy takes one operand of the result's size");
      continue;
    case StepKind::Matmul:
      if (step.matmul.biasEpilogue && !options.matmulBias)
        fail(where + ": a matmul with a bias epilogue, which this runtime does not run");
      layout = matmulLayout(step);
      break;
    case StepKind::Conv2d:
    case StepKind::Conv2dGradInput:
    case StepKind::Conv2dGradFilter: layout = convLayout(step); break;
    case StepKind::MaxPool2d:
    case StepKind::AvgPool2d:
    case StepKind::MaxPool2dGrad:
    case StepKind::AvgPool2dGrad: layout = poolLayout(step); break;
    case StepKind::Gather:
    case StepKind::ScatterAdd: layout = indexLayout(step); break;
    }
    if (!layout.why.empty())
      fail(where + ": " + layout.why);
    if (step.operands.size() != layout.operandBytes.size())
      fail(where + ": " + std::to_string(step.operands.size()) + " operands, expected " +
           std::to_string(layout.operandBytes.size()));
    for (size_t j = 0; j < step.operands.size(); ++j)
      if (layout.operandBytes[j] < 0 || step.operands[j].bytes != layout.operandBytes[j])
        fail(where + ": operand " + std::to_string(j) + " is " +
             std::to_string(step.operands[j].bytes) + " bytes, its params make " +
             std::to_string(layout.operandBytes[j]));
    if (layout.resultBytes < 0 || step.result.bytes != layout.resultBytes)
      fail(where + ": result is " + std::to_string(step.result.bytes) +
           " bytes, its params make " + std::to_string(layout.resultBytes));
  }
  for (const ResultSpec &result : prog.results) {
    std::string where = "result '" + result.name + "'";
    checkRef(result.buffer, where);
    int64_t elements = checkedNumElements(result.shape.dims());
    if (elements < 0 || result.buffer.bytes != elements * int64_t(dtypeSize(result.dtype)))
      fail(where + " is " + std::to_string(result.buffer.bytes) + " bytes, not a " +
           typeString(result.dtype, result.shape));
  }
  for (const UpdateSpec &update : prog.updates) {
    if (update.argument < 0 || size_t(update.argument) >= prog.arguments.size())
      fail("an update names argument #" + std::to_string(update.argument) + " of " +
           std::to_string(prog.arguments.size()));
    std::string where = "update of '" + prog.arguments[size_t(update.argument)].name + "'";
    checkRef(update.source, where);
    if (update.source.bytes != argumentBytes[size_t(update.argument)])
      fail(where + ": source is " + std::to_string(update.source.bytes) + " bytes, expected " +
           std::to_string(argumentBytes[size_t(update.argument)]));
  }
}

int64_t argumentBytes(const ArgumentSpec &argument) {
  return argument.shape.numElements() * int64_t(dtypeSize(argument.dtype));
}

size_t argumentIndex(const Program &program, const std::string &name) {
  for (size_t i = 0; i < program.arguments.size(); ++i)
    if (program.arguments[i].name == name)
      return i;
  std::string known;
  for (size_t i = 0; i < program.arguments.size() && i < 8; ++i)
    known += (i ? ", " : "") + program.arguments[i].name;
  if (program.arguments.size() > 8)
    known += ", ... (" + std::to_string(program.arguments.size()) + " in all)";
  throwError(program.name, "no argument named '" + name + "' (arguments: " + known + ")");
}

void checkArgumentValue(const Program &program, size_t argument, const HostTensor &value) {
  const ArgumentSpec &arg = program.arguments[argument];
  if (value.dtype() != arg.dtype || value.shape() != arg.shape)
    throwError(program.name, "argument '" + arg.name + "' expects " + typeString(arg.dtype, arg.shape) + ", got " +
                                 value.typeString());
}

std::vector<size_t> stagedUpdates(const Program &program) {
  std::vector<size_t> staged;
  std::vector<bool> overwritten(program.arguments.size(), false);
  for (size_t i = 0; i < program.updates.size(); ++i) {
    const UpdateSpec &update = program.updates[i];
    if (update.source.space == BufferRef::Space::Argument && overwritten[size_t(update.source.argument)])
      staged.push_back(i);
    bool inPlace = update.source.space == BufferRef::Space::Argument && update.source.argument == update.argument &&
                   update.source.offset == 0;
    if (!inPlace)
      overwritten[size_t(update.argument)] = true;
  }
  return staged;
}

std::vector<std::pair<size_t, const HostTensor *>> matchCheckpoint(const Program &program, const TensorMap &tensors,
                                                                   const std::string &path) {
  std::vector<std::pair<size_t, const HostTensor *>> loads;
  for (const auto &[name, tensor] : tensors) {
    auto arg = std::find_if(program.arguments.begin(), program.arguments.end(),
                            [&](const ArgumentSpec &a) { return a.name == name; });
    if (arg == program.arguments.end())
      throwError(path, "tensor '" + name + "' names no argument of " +
                           (program.name.empty() ? "the program" : "'" + program.name + "'"));
    if (tensor.dtype() != arg->dtype || tensor.shape() != arg->shape)
      throwError(path, "tensor '" + name + "' is " + tensor.typeString() + ", the argument is " +
                           typeString(arg->dtype, arg->shape));
    loads.emplace_back(size_t(arg - program.arguments.begin()), &tensor);
  }
  return loads;
}

} // namespace kiln
