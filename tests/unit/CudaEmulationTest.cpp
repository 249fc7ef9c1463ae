// The generated CUDA kernels' numbers, checked without a GPU: the kernels of
// every conformance case and of the small example training steps are compiled
// as host C++ with a shim that emulates the CUDA features they use (thread and
// block indices, __syncthreads as a barrier of one std::thread per CUDA
// thread, __shfl_xor_sync through a shared slot array, static __shared__
// arrays), run over a host arena as the Program says (matmul by a plain
// loop), and compared with PyTorch's float64 values and the reference
// interpreter. This checks the code generator's index arithmetic, reduction
// strategies, block reductions and semantics; it does not check NVRTC's
// device math functions (exp, tanh, ... are the host's here) nor timing.
#ifdef KILN_HAVE_CUDA

#include "codegen/cuda/CudaCodegen.h"
#include "compiler/TrainingStep.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/GraphEdit.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "passes/PassManager.h"
#include "runtime/Random.h"
#include "runtime/Safetensors.h"
#include "tests/unit/ExpectClose.h"
#include "tests/unit/CudaTestGraphs.h"
#include "tests/unit/TestHelpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

namespace kiln {
namespace {

const std::string kDir = std::string(KILN_TEST_DATA_DIR) + "/conformance/";

const char *kShim = R"(// Host emulation of the CUDA features Kiln's generated kernels use.
#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <cstring>
#include <thread>
#include <vector>
using std::isnan; using std::min; using std::max;
struct KilnDim3 { unsigned x = 0, y = 1, z = 1; };
static thread_local KilnDim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)
#define KILN_HOST_EMULATION 1
struct KilnBarrier { // a generation-counting barrier (C++17: no std::barrier needed)
  std::mutex m; std::condition_variable cv; unsigned count, waiting = 0; unsigned long long generation = 0;
  explicit KilnBarrier(unsigned n) : count(n) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(m);
    unsigned long long g = generation;
    if (++waiting == count) { waiting = 0; ++generation; cv.notify_all(); return; }
    cv.wait(lock, [&] { return generation != g; });
  }
};
static KilnBarrier *kiln_emu_barrier;
static inline void __syncthreads() { kiln_emu_barrier->arrive_and_wait(); }
static unsigned long long kiln_emu_slots[1024];
template <typename T> static T __shfl_xor_sync(unsigned, T v, int o) {
  unsigned long long bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  kiln_emu_slots[threadIdx.x] = bits;
  __syncthreads();
  bits = kiln_emu_slots[threadIdx.x ^ unsigned(o)];
  __syncthreads();
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
static inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
// IEEE half conversions (round to nearest even), without compiler support.
static inline float kiln_host_half_to_float(unsigned short h) {
  unsigned exp = (h >> 10) & 31u, mant = h & 1023u;
  float v = exp == 0 ? std::ldexp(float(mant), -24)
          : exp == 31 ? (mant ? NAN : INFINITY)
                      : std::ldexp(float(mant | 1024u), int(exp) - 25);
  return (h & 0x8000u) ? -v : v;
}
static inline unsigned short kiln_host_float_to_half(float f) {
  unsigned short sign = std::signbit(f) ? 0x8000 : 0;
  float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00;
  if (a >= 65520.0f) return sign | 0x7c00;
  if (a < 6.103515625e-05f) return sign | (unsigned short)std::nearbyint(a * 16777216.0f); // subnormal
  int e;
  float q = std::nearbyint(std::ldexp(std::frexp(a, &e), 11)); // 11 significant bits
  if (q == 2048.0f) { q = 1024.0f; ++e; }
  return sign | (unsigned short)((unsigned(e + 14) << 10) | (unsigned(q) - 1024u));
}
// Blocks one after another; a block's threads concurrently when the kernel
// synchronizes (row kernels), else one after another.
extern "C" void kiln_emu_launch(void (*fn)(void **), void **args, unsigned grid, unsigned block, int concurrent) {
  KilnBarrier bar(block);
  kiln_emu_barrier = &bar;
  for (unsigned b = 0; b < grid; ++b) {
    auto thread = [=](unsigned t) { threadIdx.x = t; blockIdx.x = b; blockDim.x = block; gridDim.x = grid; fn(args); };
    if (!concurrent) {
      for (unsigned t = 0; t < block; ++t) thread(t);
      continue;
    }
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; ++t) threads.emplace_back(thread, t);
    for (auto &t : threads) t.join();
  }
}
)";

using Launcher = void (*)(void (*)(void **), void **, unsigned, unsigned, int);
using Wrapper = void (*)(void **);

/// Kernels of several programs as one host library: each program's kernels
/// get the prefix `cN_`, and each kernel a wrapper `emu_<name>(void **args)`.
class HostKernels {
public:
  void add(size_t program, const CudaProgram &p) {
    std::string prefix = "c" + std::to_string(program) + "_";
    for (const CudaModule &m : p.modules) {
      std::string body = std::regex_replace(m.source.substr(cudaPreamble().size()), std::regex("kiln_kernel_"),
                                            prefix + "kiln_kernel_");
      source_ += body;
      for (const std::string &k : m.kernels) {
        std::string name = prefix + k;
        std::smatch match;
        std::regex signature(name + "\\(([^)]*)\\)");
        ASSERT_TRUE(std::regex_search(body, match, signature)) << name;
        std::string params = match[1].str(), call;
        size_t index = 0, at = 0;
        while (at < params.size()) {
          size_t comma = params.find(", ", at);
          std::string param = params.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
          std::string type = param.substr(0, param.rfind(' '));
          call += (index ? ", (" : "(") + type + ")a[" + std::to_string(index) + "]";
          ++index;
          at = comma == std::string::npos ? params.size() : comma + 2;
        }
        wrappers_ += "extern \"C\" void emu_" + name + "(void **a) { " + name + "(" + call + "); }\n";
      }
    }
  }

  /// Compiles (or finds in the cache) and loads the library.
  void load() {
    std::string text = kShim + cudaPreamble() + source_ + wrappers_;
    std::string dir = std::string(KILN_TEST_CUDA_CACHE_DIR) + "/emulation";
    std::filesystem::create_directories(dir);
    char key[20];
    std::snprintf(key, sizeof key, "%016llx", (unsigned long long)hashName(text.data(), text.size()));
    std::string base = dir + "/" + key, lib = base + ".so";
    if (!std::filesystem::exists(lib)) {
      std::ofstream(base + ".cpp") << text;
      std::string command = std::string(KILN_TEST_HOST_CXX) + " -std=c++20 -O1 -w -shared -fPIC -pthread -o " + base +
                            ".tmp.so " + base + ".cpp 2> " + base + ".log && mv " + base + ".tmp.so " + lib;
      ASSERT_EQ(std::system(command.c_str()), 0) << "the host compile failed; see " << base << ".log";
    }
    handle_ = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle_, nullptr) << dlerror();
    launch_ = reinterpret_cast<Launcher>(dlsym(handle_, "kiln_emu_launch"));
    ASSERT_NE(launch_, nullptr);
  }

  void launch(size_t program, const CudaLaunch &l, std::vector<void *> &args, bool concurrent) const {
    auto fn = reinterpret_cast<Wrapper>(dlsym(handle_, ("emu_c" + std::to_string(program) + "_" + l.kernel).c_str()));
    ASSERT_NE(fn, nullptr) << l.kernel;
    // Any grid is right (grid-stride loops); 3 blocks exercise the striding.
    launch_(fn, args.data(), unsigned(std::min<int64_t>(l.grid, 3)), unsigned(l.block), concurrent ? 1 : 0);
  }

private:
  std::string source_, wrappers_;
  void *handle_ = nullptr;
  Launcher launch_ = nullptr;
};

template <typename T> void hostMatmul(const MatmulParams &p, const T *a, const T *b, T *c) {
  for (int64_t batch = 0; batch < p.batch; ++batch)
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        double sum = 0;
        for (int64_t k = 0; k < p.k; ++k) {
          double x = p.transposeA ? a[(batch * p.k + k) * p.m + i] : a[(batch * p.m + i) * p.k + k];
          double y = p.transposeB ? b[(batch * p.n + j) * p.k + k] : b[(batch * p.k + k) * p.n + j];
          sum += x * y;
        }
        c[(batch * p.m + i) * p.n + j] = T(sum);
      }
}

/// Runs a CudaProgram's steps over host buffers.
struct HostRun {
  const CudaProgram &p;
  std::vector<std::vector<unsigned char>> args;
  std::vector<unsigned char> arena;

  explicit HostRun(const CudaProgram &program, const TensorMap &values) : p(program) {
    arena.assign(size_t(p.program.arenaBytes) + 64, 0xcd); // garbage, never zeros
    for (const ArgumentSpec &a : p.program.arguments) {
      HostTensor t(a.dtype, a.shape);
      if (auto v = values.find(a.name); v != values.end())
        t = v->second;
      args.emplace_back(static_cast<const unsigned char *>(t.data()),
                        static_cast<const unsigned char *>(t.data()) + t.byteSize());
    }
  }
  unsigned char *ptr(const BufferRef &b) {
    return (b.space == BufferRef::Space::Arena ? arena.data() : args[size_t(b.argument)].data()) + b.offset;
  }
  void run(const HostKernels &kernels, size_t program) {
    size_t kernel = 0;
    for (size_t s = 0; s < p.program.steps.size(); ++s) {
      const Step &step = p.program.steps[s];
      if (step.kind == StepKind::Matmul) {
        if (step.matmul.dtype == DType::F64)
          hostMatmul(step.matmul, (const double *)ptr(step.operands[0]), (const double *)ptr(step.operands[1]),
                     (double *)ptr(step.result));
        else
          hostMatmul(step.matmul, (const float *)ptr(step.operands[0]), (const float *)ptr(step.operands[1]),
                     (float *)ptr(step.result));
        continue;
      }
      if (step.kind == StepKind::Copy) {
        std::memmove(ptr(step.result), ptr(step.operands[0]), size_t(step.result.bytes));
        continue;
      }
      std::vector<void *> pointers;
      for (const BufferRef &b : step.operands)
        pointers.push_back(ptr(b));
      pointers.push_back(ptr(step.result));
      for (const BufferRef &b : step.extraResults)
        pointers.push_back(ptr(b));
      kernels.launch(program, p.launches[s], pointers, p.strategies[kernel++] == "row");
    }
    for (const UpdateSpec &u : p.program.updates) {
      unsigned char *to = args[size_t(u.argument)].data(), *from = ptr(u.source);
      if (to != from)
        std::memmove(to, from, args[size_t(u.argument)].size());
    }
  }
  HostTensor result(size_t i) {
    const ResultSpec &r = p.program.results[i];
    HostTensor t(r.dtype, r.shape);
    std::memcpy(t.data(), ptr(r.buffer), t.byteSize());
    return t;
  }
  HostTensor argument(const std::string &name) {
    for (size_t a = 0; a < p.program.arguments.size(); ++a)
      if (p.program.arguments[a].name == name) {
        HostTensor t(p.program.arguments[a].dtype, p.program.arguments[a].shape);
        std::memcpy(t.data(), args[a].data(), t.byteSize());
        return t;
      }
    ADD_FAILURE() << "no argument " << name;
    return HostTensor();
  }
};

void expectClose(const HostTensor &got, const HostTensor &want, double rel, const std::string &what) {
  expectTensorClose(got, want, rel, what, "emulated cuda");
}

struct Prepared {
  std::string name;
  std::unique_ptr<Graph> reference; // before the pipeline (the interpreter's graph)
  std::unique_ptr<Graph> planned;
  CudaProgram program;
  TensorMap inputs;
};

Prepared prepare(std::string name, std::unique_ptr<Graph> graph, TensorMap inputs) {
  Prepared p{std::move(name), std::move(graph), nullptr, {}, std::move(inputs)};
  p.planned = cloneGraph(*p.reference);
  runPasses(*p.planned, parsePassPipeline(defaultPipeline()), verifyEachOptions());
  p.program = lowerForCuda(*p.planned);
  return p;
}

// One test for all cases: one host library to compile (cached by content).
TEST(CudaEmulation, ConformanceCasesAndTrainingStepsMatchTheReference) {
  std::vector<Prepared> all;
  std::vector<TensorMap> expected;
  for (const auto &e : nlohmann::json::parse(readFile(kDir + "index.json"))) {
    std::string name = e.at("case");
    for (bool grad : {false, true}) {
      if (grad && !e.at("grad"))
        continue;
      std::string file = name + (grad ? ".grad.kir" : ".kir");
      Module m = parseModule(readFile(kDir + file), file);
      std::unique_ptr<Graph> g = std::move(m.graphs[0]);
      if (grad)
        runPasses(*g, parsePassPipeline("autodiff"), verifyEachOptions());
      all.push_back(prepare(file, std::move(g), readSafetensors(kDir + name + (grad ? ".grad" : "") + ".inputs.safetensors")));
      expected.push_back(readSafetensors(kDir + name + ".expected.safetensors"));
    }
  }
  size_t firstStep = all.size();
  for (const char *model : {"mlp", "cnn", "gpt"}) {
    std::unique_ptr<Graph> step = smallTrainingStep(model, OptimizerKind::Momentum);
    TensorMap args;
    for (const auto &a : step->arguments())
      args[a->name] = defaultArgumentValue(*a, 3);
    all.push_back(prepare(model, std::move(step), args));
  }
  // bf16 and f16 storage with f32 arithmetic (no conformance case has them).
  // The interpreter rounds after every op, the kernels only when storing or
  // casting: bf16's 8 significant bits bound the difference.
  size_t firstHalf = all.size();
  {
    Module m = parseModule(kHalfPrecisionGraph, "halfs.kir");
    TensorMap args;
    for (const auto &a : m.graphs[0]->arguments())
      args[a->name] = defaultArgumentValue(*a, 5);
    all.push_back(prepare("halfs.kir", std::move(m.graphs[0]), args));
  }
  HostKernels kernels;
  for (size_t i = 0; i < all.size(); ++i)
    kernels.add(i, all[i].program);
  kernels.load();
  if (testing::Test::HasFatalFailure())
    return;

  for (size_t i = 0; i < all.size(); ++i) {
    Prepared &c = all[i];
    SCOPED_TRACE(c.name);
    HostRun run(c.program, c.inputs);
    run.run(kernels, i);
    InterpreterResult reference = interpret(*c.reference, c.inputs, Precision::Native);
    // f32 data movement and arithmetic: 1e-5 (sums in double, as the
    // interpreter's); the training steps (momentum) after one step: 1e-4.
    double tolerance = i < firstStep ? 1e-5 : i < firstHalf ? 1e-4 : 2e-2;
    for (size_t r = 0; r < c.reference->results().size(); ++r)
      expectClose(run.result(r), reference.results[r], tolerance, c.name + " " + c.reference->resultName(r));
    if (i < firstStep) { // and PyTorch's float64 values
      const std::string &out = c.reference->results().size() == 1 ? std::string("out0") : std::string();
      if (!out.empty() && expected[i].count(out))
        expectClose(run.result(0), expected[i].at(out), 1e-4, c.name + " vs PyTorch");
    }
    for (const auto &[name, value] : reference.updated)
      expectClose(run.argument(name), value, tolerance, c.name + " update of " + name);
  }
}

} // namespace
} // namespace kiln

#endif // KILN_HAVE_CUDA
