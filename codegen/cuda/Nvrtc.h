// NVRTC: CUDA C++ -> cubin and PTX without a GPU, with an on-disk cache.
#pragma once

#include <string>
#include <vector>

namespace kiln {

struct CudaModule;

struct NvrtcOptions {
  /// The compute capability: "sm_90" (H100/H200), "sm_80" (A100), ...
  std::string arch = "sm_90";
  /// Also a cubin for `arch` (-arch=sm_XX gives both); false: PTX only
  /// (-arch=compute_XX, for AOT portability to newer devices).
  bool cubin = true;
  /// --use_fast_math: approximate tanh/exp/division; changes numerics (opt-in).
  bool fastMath = false;
  /// The cache folder; empty: $KILN_CACHE_DIR, else ~/.cache/kiln. "off": no cache.
  std::string cacheDir;
  /// Threads for compileCudaModules; 0: the hardware's.
  unsigned threads = 0;
};

struct NvrtcOutput {
  std::string ptx;
  std::string cubin; // empty when NvrtcOptions::cubin is false
  std::string log;   // NVRTC's program log (warnings); empty on a cache hit
  bool cached = false;
};

/// "13.0": the NVRTC this build links.
std::string nvrtcVersion();

/// The options passed to nvrtcCompileProgram for `options` (part of the cache key).
std::vector<std::string> nvrtcFlags(const NvrtcOptions &options);

/// Compiles one translation unit named `name` ("kiln_module_0.cu" in logs);
/// a kiln::Error with NVRTC's log when it does not compile.
NvrtcOutput compileCuda(const std::string &source, const std::string &name, const NvrtcOptions &options);

/// Compiles every module, several at a time on `options.threads` threads;
/// results in order. The first failure is rethrown after all threads end.
std::vector<NvrtcOutput> compileCudaModules(const std::vector<CudaModule> &modules, const NvrtcOptions &options);

} // namespace kiln
