#ifdef KILN_HAVE_CUDA

#include "tests/unit/CudaEmulationDevice.h"

#include "codegen/cuda/CudaCodegen.h"
#include "runtime/Error.h"
#include "runtime/Random.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

namespace kiln {

namespace {

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
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) int4 { int x, y, z, w; };
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


/// As cuBLASLt: the double sum rounded to T, then the bias (epilogue) added in T.
template <typename T> void hostMatmul(const MatmulParams &p, const T *a, const T *b, T *c, const T *bias) {
  for (int64_t batch = 0; batch < p.batch; ++batch)
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        double sum = 0;
        for (int64_t k = 0; k < p.k; ++k) {
          int64_t ab = p.broadcastA ? 0 : batch;
          double x = p.transposeA ? a[(ab * p.k + k) * p.m + i] : a[(ab * p.m + i) * p.k + k];
          double y = p.transposeB ? b[(batch * p.n + j) * p.k + k] : b[(batch * p.k + k) * p.n + j];
          sum += x * y;
        }
        c[(batch * p.m + i) * p.n + j] = p.biasEpilogue ? T(T(sum) + bias[j]) : T(sum);
      }
}

template <typename T> T *at(cuda::DevicePtr p) { return reinterpret_cast<T *>(p); }

} // namespace

void HostKernels::add(size_t program, const CudaProgram &p) {
  std::string prefix = "c" + std::to_string(program) + "_";
  size_t kernel = 0;
  for (size_t s = 0; s < p.launches.size(); ++s)
    if (!p.launches[s].kernel.empty()) {
      const std::string &strategy = p.strategies[kernel++];
      if (strategy == "row" || strategy == "split") // their threads synchronize
        concurrent_.insert(prefix + p.launches[s].kernel);
    }
  for (const CudaModule &m : p.modules) {
    prefixes_.emplace(m.source, prefix);
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

bool HostKernels::load() {
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
    if (std::system(command.c_str()) != 0) {
      ADD_FAILURE() << "the host compile failed; see " << base << ".log";
      return false;
    }
  }
  handle_ = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    ADD_FAILURE() << dlerror();
    return false;
  }
  launch_ = reinterpret_cast<decltype(launch_)>(dlsym(handle_, "kiln_emu_launch"));
  return launch_ != nullptr;
}

HostKernels::Kernel HostKernels::find(const std::string &moduleSource, const std::string &name) const {
  auto prefix = prefixes_.find(moduleSource);
  if (prefix == prefixes_.end())
    throwError("emulated cuda", "module of kernel '" + name + "' was not added to the host kernels");
  Kernel k;
  k.wrapper = reinterpret_cast<Wrapper>(dlsym(handle_, ("emu_" + prefix->second + name).c_str()));
  if (!k.wrapper)
    throwError("emulated cuda", "no kernel '" + name + "'");
  k.concurrent = concurrent_.count(prefix->second + name) > 0;
  return k;
}

void HostKernels::launch(const Kernel &kernel, std::vector<void *> &args, int64_t grid, int64_t block) const {
  launch_(kernel.wrapper, args.data(), unsigned(std::min<int64_t>(grid, 3)), unsigned(block), kernel.concurrent);
}

EmulatedDevice::EmulatedDevice(const HostKernels &kernels) : kernels_(kernels) {
  info_.name = "emulated CUDA device";
  info_.arch = "sm_90";
  info_.memoryBytes = int64_t(1) << 32;
  info_.multiprocessors = 1;
  info_.driver = "none";
}

EmulatedDevice::~EmulatedDevice() {
  for (auto &[pointer, bytes] : allocations_)
    std::free(reinterpret_cast<void *>(pointer));
}

void EmulatedDevice::notCapturing(const char *what) const {
  if (capturing_)
    throwError("emulated cuda", std::string(what) + " during stream capture (CUDA would invalidate the capture)");
}

void EmulatedDevice::queue(std::function<void()> op) {
  if (capturing_)
    recording_.push_back(std::move(op));
  else
    op();
}

cuda::DevicePtr EmulatedDevice::allocate(int64_t bytes) {
  notCapturing("allocate");
  size_t size = (size_t(std::max<int64_t>(bytes, 1)) + 255) / 256 * 256;
  void *memory = std::aligned_alloc(256, size);
  std::memset(memory, 0xcd, size); // garbage, never zeros
  cuda::DevicePtr p = reinterpret_cast<cuda::DevicePtr>(memory);
  allocations_[p] = int64_t(size);
  allocated_ += int64_t(size);
  peak_ = std::max(peak_, allocated_);
  return p;
}

void EmulatedDevice::release(cuda::DevicePtr pointer) noexcept {
  auto it = allocations_.find(pointer);
  if (it == allocations_.end())
    return;
  allocated_ -= it->second;
  std::free(reinterpret_cast<void *>(pointer));
  allocations_.erase(it);
}

void EmulatedDevice::copyToDevice(cuda::DevicePtr to, const void *from, int64_t bytes) {
  notCapturing("a synchronous copy to the device");
  std::memcpy(at<void>(to), from, size_t(bytes));
}

void EmulatedDevice::copyToHost(void *to, cuda::DevicePtr from, int64_t bytes) {
  notCapturing("a synchronous copy to the host");
  std::memcpy(to, at<void>(from), size_t(bytes));
}

void EmulatedDevice::copyOnDevice(cuda::DevicePtr to, cuda::DevicePtr from, int64_t bytes) {
  queue([=] { std::memmove(at<void>(to), at<void>(from), size_t(bytes)); });
}

void EmulatedDevice::fill(cuda::DevicePtr to, uint8_t byte, int64_t bytes) {
  queue([=] { std::memset(at<void>(to), byte, size_t(bytes)); });
}

cuda::ModuleHandle EmulatedDevice::loadModule(const CudaModule &module) {
  notCapturing("loading a module");
  modules_[next_] = module.source;
  return next_++;
}

void EmulatedDevice::unloadModule(cuda::ModuleHandle module) noexcept { modules_.erase(module); }

cuda::KernelHandle EmulatedDevice::kernel(cuda::ModuleHandle module, const std::string &name) {
  functions_[next_] = kernels_.find(modules_.at(module), name);
  return next_++;
}

void EmulatedDevice::launch(cuda::KernelHandle kernel, const CudaLaunch &launch,
                            const std::vector<cuda::DevicePtr> &pointers) {
  HostKernels::Kernel k = functions_.at(kernel);
  queue([this, k, launch, pointers] {
    std::vector<void *> args;
    for (cuda::DevicePtr p : pointers)
      args.push_back(at<void>(p));
    kernels_.launch(k, args, launch.grid, launch.block);
    ++kernelsRun;
  });
}

cuda::MatmulHandle EmulatedDevice::prepareMatmul(const MatmulParams &params, uint32_t alignment, cuda::DevicePtr bias) {
  notCapturing("preparing a matmul");
  if (refuseBroadcastA && params.broadcastA)
    throwError("emulated cuda", "no algorithm for a matmul with a shared A");
  matmuls_[next_] = {params, bias};
  matmulAlignments.push_back(alignment);
  return next_++;
}

void EmulatedDevice::releaseMatmul(cuda::MatmulHandle matmul) noexcept { matmuls_.erase(matmul); }

void EmulatedDevice::matmul(cuda::MatmulHandle matmul, cuda::DevicePtr a, cuda::DevicePtr b, cuda::DevicePtr c) {
  auto [p, bias] = matmuls_.at(matmul);
  queue([=] {
    if (p.dtype == DType::F64)
      hostMatmul(p, at<const double>(a), at<const double>(b), at<double>(c), at<const double>(bias));
    else
      hostMatmul(p, at<const float>(a), at<const float>(b), at<float>(c), at<const float>(bias));
  });
}

void EmulatedDevice::synchronize() { notCapturing("synchronize"); }

void EmulatedDevice::beginCapture() {
  notCapturing("beginCapture");
  capturing_ = true;
  recording_.clear();
}

cuda::GraphHandle EmulatedDevice::endCapture() {
  if (!capturing_)
    throwError("emulated cuda", "endCapture without beginCapture");
  capturing_ = false;
  graphs_[next_] = std::move(recording_);
  recording_.clear();
  return next_++;
}

void EmulatedDevice::abortCapture() noexcept {
  capturing_ = false;
  recording_.clear();
}

void EmulatedDevice::launchGraph(cuda::GraphHandle graph) {
  notCapturing("launching a graph");
  for (const auto &op : graphs_.at(graph))
    op();
  ++graphsLaunched;
}

void EmulatedDevice::releaseGraph(cuda::GraphHandle graph) noexcept { graphs_.erase(graph); }

cuda::EventHandle EmulatedDevice::createEvent() {
  events_[next_] = 0;
  return next_++;
}

void EmulatedDevice::recordEvent(cuda::EventHandle event) {
  queue([this, event] {
    events_[event] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  });
}

double EmulatedDevice::elapsedMilliseconds(cuda::EventHandle from, cuda::EventHandle to) {
  return events_.at(to) - events_.at(from);
}

void EmulatedDevice::releaseEvent(cuda::EventHandle event) noexcept { events_.erase(event); }

} // namespace kiln

#endif // KILN_HAVE_CUDA
