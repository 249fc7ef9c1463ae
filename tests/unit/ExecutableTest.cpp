// runtime/cpu/Executable: a hand-built Program of library steps, a Copy and an
// update against the interpreter on the same graph (results and updated
// params over two runs, in-place and copied updates), generated-kernel calls
// with 1 to 32 pointers, feeds and their checks, save/load, profiles, and the
// construction checks that keep every step inside its buffers.
#ifdef KILN_HAVE_CPU_RUNTIME

#include "ir/Graph.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"
#include "runtime/cpu/Executable.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

namespace kiln {
namespace {

using cpu::Executable;

HostTensor randomTensor(DType dtype, Shape shape, std::mt19937 &rng) {
  HostTensor t(dtype, std::move(shape));
  std::uniform_real_distribution<double> uniform(-1, 1);
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.setDouble(i, uniform(rng));
  return t;
}

BufferRef arena(int64_t offset, int64_t bytes) {
  BufferRef ref;
  ref.offset = offset, ref.bytes = bytes;
  return ref;
}
BufferRef argumentBuffer(int32_t argument, int64_t bytes, int64_t offset = 0) {
  BufferRef ref;
  ref.space = BufferRef::Space::Argument, ref.argument = argument;
  ref.offset = offset, ref.bytes = bytes;
  return ref;
}

void expectNear(const HostTensor &got, const HostTensor &want, const std::string &what) {
  ASSERT_EQ(got.typeString(), want.typeString()) << what;
  for (int64_t i = 0; i < want.numElements(); ++i)
    EXPECT_NEAR(got.getDouble(i), want.getDouble(i), 1e-5 * (1 + std::fabs(want.getDouble(i))))
        << what << " element " << i;
}

// The graph the Program below computes, for the interpreter.
const char *kEmbedKir = R"(graph @embed(%table: f32[10,5] param, %idx: i32[7] input, %w: f32[5,3] param) -> (f32[10,3]) {
  %0 = gather %table, %idx : f32[7,5]
  %1 = scatter_add %idx, %0 : f32[10,5]
  %2 = matmul %1, %w : f32[10,3]
  update %table, %1
  return %2
})";

/// `kEmbedKir` by hand: gather, scatter_add and matmul in the arena, a copy of
/// the matmul, `update %table` from the scatter_add. With `inPlace`, the
/// scatter_add writes the table's own buffer (after the gather read it), so
/// the update has nothing to copy.
Program embedProgram(bool inPlace) {
  Program program;
  program.name = "embed";
  program.arguments = {{"table", ArgumentRole::Param, DType::F32, Shape{10, 5}, {}},
                       {"idx", ArgumentRole::Input, DType::I32, Shape{7}, {}},
                       {"w", ArgumentRole::Param, DType::F32, Shape{5, 3}, {}}};
  BufferRef table = argumentBuffer(0, 200), idx = argumentBuffer(1, 28), w = argumentBuffer(2, 60);
  BufferRef gathered = arena(0, 140), scattered = inPlace ? table : arena(192, 200);
  BufferRef product = arena(448, 120), copy = arena(576, 120);
  program.arenaBytes = 704;

  Step gather;
  gather.kind = StepKind::Gather, gather.name = "%0 gather";
  gather.operands = {table, idx}, gather.result = gathered;
  gather.index.outer = 1, gather.index.rows = 10, gather.index.inner = 5, gather.index.indices = 7;
  Step scatter = gather;
  scatter.kind = StepKind::ScatterAdd, scatter.name = "%1 scatter_add";
  scatter.operands = {idx, gathered}, scatter.result = scattered;
  Step matmul;
  matmul.kind = StepKind::Matmul, matmul.name = "%2 matmul";
  matmul.operands = {scattered, w}, matmul.result = product;
  matmul.matmul.m = 10, matmul.matmul.n = 3, matmul.matmul.k = 5;
  Step copyStep;
  copyStep.kind = StepKind::Copy, copyStep.name = "copy of %2";
  copyStep.operands = {product}, copyStep.result = copy;
  program.steps = {gather, scatter, matmul, copyStep};
  program.results = {{"out", DType::F32, Shape{10, 3}, product},
                     {"copy", DType::F32, Shape{10, 3}, copy}};
  program.updates = {{0, scattered}};
  return program;
}

TEST(Executable, RunsLibraryStepsAndUpdatesLikeTheInterpreter) {
  Module module = parseModule(kEmbedKir, "embed.kir");
  std::mt19937 rng(7);
  for (bool inPlace : {false, true}) {
    TensorMap args = {{"table", randomTensor(DType::F32, Shape{10, 5}, rng)},
                      {"idx", HostTensor(DType::I32, Shape{7})},
                      {"w", randomTensor(DType::F32, Shape{5, 3}, rng)}};
    int32_t indices[7] = {3, 0, 3, 9, -1, 12, 3}; // repeats and out of range
    std::copy(indices, indices + 7, args["idx"].dataAs<int32_t>());
    Executable exe(embedProgram(inPlace));
    for (const auto &[name, value] : args)
      exe.setArgument(name, value);
    for (int run = 0; run < 2; ++run) { // the second run starts from the updated table
      std::string what = std::string(inPlace ? "in place" : "copied") + " run " + std::to_string(run);
      InterpreterResult want = interpret(*module.graphs[0], args);
      exe.run();
      expectNear(exe.result(0), want.results[0], what + " out");
      expectNear(exe.result("copy"), want.results[0], what + " copy");
      expectNear(exe.argument("table"), want.updated.at("table"), what + " table");
      expectNear(exe.argument("w"), args.at("w"), what + " w");
      args["table"] = want.updated.at("table");
    }
  }
}

TEST(Executable, SaveAndLoadArgumentsRoundTrip) {
  std::mt19937 rng(8);
  Executable exe(embedProgram(false));
  HostTensor table = randomTensor(DType::F32, Shape{10, 5}, rng), w = randomTensor(DType::F32, Shape{5, 3}, rng);
  exe.setArgument("table", table);
  exe.setArgument("w", w);
  std::string path = testing::TempDir() + "/kiln-executable-" + std::to_string(getpid()) + ".safetensors";
  exe.saveArguments(path); // params and state: not the input idx
  TensorMap saved = readSafetensors(path);
  EXPECT_EQ(saved.size(), 2u);
  EXPECT_EQ(saved.count("idx"), 0u);

  Executable fresh(embedProgram(false));
  EXPECT_EQ(fresh.loadArguments(path), 2u);
  EXPECT_EQ(std::memcmp(fresh.argument("table").data(), table.data(), table.byteSize()), 0);
  EXPECT_EQ(std::memcmp(fresh.argument("w").data(), w.data(), w.byteSize()), 0);

  // A wrong tensor loads nothing: the table keeps its value.
  writeSafetensors(path, {{"table", HostTensor(DType::F32, Shape{10, 5})},
                          {"w", HostTensor(DType::F32, Shape{3, 5})}});
  try {
    fresh.loadArguments(path);
    ADD_FAILURE() << "a mistyped tensor loaded";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w' is f32[3,5], the argument is f32[5,3]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(std::memcmp(fresh.argument("table").data(), table.data(), table.byteSize()), 0);
  writeSafetensors(path, {{"bias", HostTensor(DType::F32, Shape{3})}});
  EXPECT_THROW(fresh.loadArguments(path), Error);
  std::remove(path.c_str());
}

TEST(Executable, FeedsAreChecked) {
  Executable exe(embedProgram(false));
  try {
    exe.setArgument("table", HostTensor(DType::F64, Shape{10, 5}));
    ADD_FAILURE() << "an f64 feed was accepted";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()),
              "embed: error: argument 'table' expects f32[10,5], got f64[10,5]");
  }
  EXPECT_THROW(exe.setArgument("w", HostTensor(DType::F32, Shape{3, 5})), Error);
  try {
    exe.setArgument("bias", HostTensor(DType::F32, Shape{3}));
    ADD_FAILURE() << "an unknown argument was accepted";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()),
              "embed: error: no argument named 'bias' (arguments: table, idx, w)");
  }
  EXPECT_THROW(exe.result(2), Error);
  EXPECT_THROW(exe.result("loss"), Error);
}

TEST(Executable, ProfilesEachStep) {
  Executable exe(embedProgram(false));
  Profile profile;
  exe.run(&profile);
  exe.run(&profile);
  EXPECT_EQ(profile.runs, 2);
  ASSERT_EQ(profile.stepSeconds.size(), 4u);
  for (double seconds : profile.stepSeconds)
    EXPECT_GE(seconds, 0.0);
  std::string report = formatProfile(exe.program(), profile);
  EXPECT_NE(report.find("#2 matmul %2 matmul"), std::string::npos) << report;
  EXPECT_NE(report.find("2 runs"), std::string::npos) << report;
}

// --- Generated kernels -------------------------------------------------------

template <size_t> using VoidPointer = void *;

/// A stand-in for a generated kernel with N pointers: the result (last pointer)
/// is the sum of the operands' first floats, weighted by position. It has one
/// iteration, [0, 1).
template <typename Sequence> struct WeightedSum;
template <size_t... I> struct WeightedSum<std::index_sequence<I...>> {
  static void run(int64_t begin, int64_t end, VoidPointer<I>... pointers) {
    if (begin != 0 || end != 1)
      return; // leaves the result unwritten: the test fails
    void *all[] = {pointers...};
    constexpr size_t count = sizeof...(I);
    float sum = 0;
    for (size_t i = 0; i + 1 < count; ++i)
      sum += float(i + 1) * *static_cast<float *>(all[i]);
    *static_cast<float *>(all[count - 1]) = sum;
  }
};
template <size_t N> KernelFunction weightedSum() {
  return reinterpret_cast<KernelFunction>(&WeightedSum<std::make_index_sequence<N>>::run);
}

/// One kernel step over `operands` scalar f32 arguments (argument i holds i),
/// its result in the arena.
Program kernelProgram(size_t operands, KernelFunction kernel) {
  Program program;
  program.name = "kernels";
  Step step;
  step.kind = StepKind::Kernel, step.name = "%0 fusion", step.kernel = kernel;
  for (size_t i = 0; i < operands; ++i) {
    program.arguments.push_back({"a" + std::to_string(i), ArgumentRole::Input, DType::F32, Shape{}, {}});
    step.operands.push_back(argumentBuffer(int32_t(i), 4));
  }
  step.result = arena(64, 4);
  program.arenaBytes = 128;
  program.steps = {step};
  program.results = {{"sum", DType::F32, Shape{}, step.result}};
  return program;
}

template <size_t N> void expectKernelCall() {
  Executable exe(kernelProgram(N - 1, weightedSum<N>()));
  double want = 0;
  for (size_t i = 0; i + 1 < N; ++i) {
    exe.setArgument("a" + std::to_string(i), HostTensor::fromDoubles(DType::F32, Shape{}, {double(i)}));
    want += double(i + 1) * double(i);
  }
  exe.run();
  EXPECT_EQ(exe.result(0).getDouble(0), want) << N << " pointers";
}

TEST(Executable, CallsKernelsWithUpTo32Pointers) {
  expectKernelCall<1>();
  expectKernelCall<2>();
  expectKernelCall<3>();
  expectKernelCall<17>();
  expectKernelCall<32>();
  EXPECT_THROW(Executable(kernelProgram(32, weightedSum<32>())), Error); // 33 pointers
  EXPECT_THROW(Executable(kernelProgram(2, nullptr)), Error);
}

// --- Construction checks -------------------------------------------------------

void expectRejected(Program program, const std::string &message) {
  try {
    Executable exe(std::move(program));
    ADD_FAILURE() << "accepted; expected: " << message;
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

TEST(Executable, RejectsProgramsThatLeaveTheirBuffers) {
  Program program = embedProgram(false);
  program.steps[2].result = arena(640, 120);
  expectRejected(program, "step 2 '%2 matmul' (matmul): result [640, +120) is outside its buffer of 704 bytes");

  program = embedProgram(false);
  program.steps[2].matmul.k = 6;
  expectRejected(program, "step 2 '%2 matmul' (matmul): operand 0 is 200 bytes, its params make 240");

  program = embedProgram(false);
  program.steps[0].operands[0] = argumentBuffer(5, 200);
  expectRejected(program, "operand 0 names argument #5 of 3");

  program = embedProgram(false);
  program.steps[1].index.valueType = DType::BF16;
  expectRejected(program, "unsupported value dtype bf16");

  program = embedProgram(false);
  program.updates[0].source = arena(0, 140);
  expectRejected(program, "update of 'table': source is 140 bytes, expected 200");

  program = embedProgram(false);
  program.results[0].dtype = DType::F64;
  expectRejected(program, "result 'out' is 120 bytes, not a f64[10,3]");

  program = embedProgram(false);
  program.arguments[2].name = "table";
  expectRejected(program, "two arguments are named 'table'");

  Program conv;
  conv.arguments = {{"x", ArgumentRole::Input, DType::F32, Shape{1, 2, 5, 5}, {}},
                    {"w", ArgumentRole::Param, DType::F32, Shape{4, 2, 3, 3}, {}}};
  Step step;
  step.kind = StepKind::Conv2d, step.name = "%0 conv2d";
  step.window.n = 1, step.window.c = 2, step.window.h = 5, step.window.w = 5, step.window.o = 4;
  step.window.kh = 3, step.window.kw = 3, step.window.oh = 4, step.window.ow = 3;
  step.operands = {argumentBuffer(0, 200), argumentBuffer(1, 288)};
  step.result = arena(0, 4 * 4 * 3 * 4);
  conv.steps = {step};
  conv.arenaBytes = 192;
  expectRejected(conv, "output size does not follow");
  conv.steps[0].window.oh = 3;
  conv.steps[0].window.ow = 3;
  conv.steps[0].result = arena(0, 144);
  EXPECT_NO_THROW(Executable{conv});
}

/// An update whose source is another updated argument reads it before either
/// is written (a swap).
TEST(Executable, UpdatesReadTheirSourcesFirst) {
  Program program;
  program.name = "swap";
  program.arguments = {{"a", ArgumentRole::State, DType::F32, Shape{2}, {}},
                       {"b", ArgumentRole::State, DType::F32, Shape{2}, {}}};
  program.updates = {{0, argumentBuffer(1, 8)}, {1, argumentBuffer(0, 8)}};
  Executable exe(program);
  exe.setArgument("a", HostTensor::fromDoubles(DType::F32, Shape{2}, {1, 2}));
  exe.setArgument("b", HostTensor::fromDoubles(DType::F32, Shape{2}, {3, 4}));
  exe.run();
  EXPECT_EQ(exe.argument("a").toDoubles(), (std::vector<double>{3, 4}));
  EXPECT_EQ(exe.argument("b").toDoubles(), (std::vector<double>{1, 2}));
}

} // namespace
} // namespace kiln

#endif // KILN_HAVE_CPU_RUNTIME
