#include "codegen/cuda/Nvrtc.h"

#include "codegen/cuda/CudaCodegen.h"
#include "runtime/Error.h"
#include "runtime/Random.h"

#include <nvrtc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace kiln {

namespace {

void check(nvrtcResult r, const std::string &what) {
  if (r != NVRTC_SUCCESS)
    throwError("nvrtc", what + ": " + nvrtcGetErrorString(r));
}

std::string cacheFolder(const NvrtcOptions &options) {
  if (options.cacheDir == "off")
    return "";
  if (!options.cacheDir.empty())
    return options.cacheDir;
  if (const char *env = std::getenv("KILN_CACHE_DIR"); env && *env)
    return env;
  if (const char *home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/kiln";
  return "";
}

bool readAll(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return bool(in) || in.eof();
}

/// Writes through a temporary and a rename, so a concurrent reader never sees
/// half a file. Failing to cache is not an error.
void writeAll(const std::string &path, const std::string &data) {
  std::string tmp = path + ".tmp" + std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out)
      return;
    out.write(data.data(), std::streamsize(data.size()));
    if (!out)
      return;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    std::filesystem::remove(tmp, ec);
}

/// 128 bits of two FNV-1a hashes of source, flags and NVRTC version.
std::string cacheKey(const std::string &source, const std::vector<std::string> &flags) {
  std::string all = "kiln-nvrtc-cache-1\n" + nvrtcVersion() + "\n";
  for (const std::string &f : flags)
    all += f + "\n";
  all += std::to_string(source.size()) + "\n" + source;
  uint64_t a = hashName(all.data(), all.size());
  std::string salted = "salt" + all;
  uint64_t b = hashName(salted.data(), salted.size());
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
  return buf;
}

} // namespace

std::string nvrtcVersion() {
  int major = 0, minor = 0;
  check(::nvrtcVersion(&major, &minor), "nvrtcVersion");
  return std::to_string(major) + "." + std::to_string(minor);
}

std::vector<std::string> nvrtcFlags(const NvrtcOptions &options) {
  std::string arch = options.arch;
  if (arch.rfind("sm_", 0) != 0)
    throwError("nvrtc", "bad CUDA architecture '" + arch + "' (expected sm_XY, e.g. sm_90)");
  std::vector<std::string> flags{"-arch=" + (options.cubin ? arch : "compute_" + arch.substr(3)), "-std=c++17",
                                 "-default-device"};
  if (options.fastMath)
    flags.push_back("--use_fast_math");
  return flags;
}

NvrtcOutput compileCuda(const std::string &source, const std::string &name, const NvrtcOptions &options) {
  std::vector<std::string> flags = nvrtcFlags(options);
  std::string folder = cacheFolder(options), base;
  NvrtcOutput out;
  if (!folder.empty()) {
    base = folder + "/cuda/" + cacheKey(source, flags);
    if (readAll(base + ".ptx", out.ptx) && (!options.cubin || readAll(base + ".cubin", out.cubin))) {
      out.cached = true;
      return out;
    }
    out = NvrtcOutput();
  }
  nvrtcProgram program;
  check(nvrtcCreateProgram(&program, source.c_str(), (name + ".cu").c_str(), 0, nullptr, nullptr),
        "nvrtcCreateProgram");
  std::vector<const char *> argv;
  for (const std::string &f : flags)
    argv.push_back(f.c_str());
  nvrtcResult result = nvrtcCompileProgram(program, int(argv.size()), argv.data());
  size_t logSize = 0;
  nvrtcGetProgramLogSize(program, &logSize);
  out.log.assign(logSize, '\0');
  if (logSize)
    nvrtcGetProgramLog(program, out.log.data());
  while (!out.log.empty() && (out.log.back() == '\0' || out.log.back() == '\n'))
    out.log.pop_back();
  if (result != NVRTC_SUCCESS) {
    nvrtcDestroyProgram(&program);
    throwError(name + ".cu", "NVRTC could not compile it for " + options.arch + " (" +
                                 nvrtcGetErrorString(result) + "):\n" + out.log);
  }
  size_t size = 0;
  check(nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize");
  out.ptx.assign(size, '\0');
  check(nvrtcGetPTX(program, out.ptx.data()), "nvrtcGetPTX");
  if (!out.ptx.empty() && out.ptx.back() == '\0')
    out.ptx.pop_back();
  if (options.cubin) {
    check(nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize");
    out.cubin.assign(size, '\0');
    check(nvrtcGetCUBIN(program, out.cubin.data()), "nvrtcGetCUBIN");
  }
  nvrtcDestroyProgram(&program);
  if (!base.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(folder + "/cuda", ec);
    if (options.cubin)
      writeAll(base + ".cubin", out.cubin);
    writeAll(base + ".ptx", out.ptx); // last: its presence marks a complete entry
  }
  return out;
}

std::vector<NvrtcOutput> compileCudaModules(const std::vector<CudaModule> &modules, const NvrtcOptions &options) {
  std::vector<NvrtcOutput> outputs(modules.size());
  std::vector<std::exception_ptr> errors(modules.size());
  unsigned threads = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = unsigned(std::min<size_t>(threads, modules.size()));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next++) < modules.size();) {
      try {
        outputs[i] = compileCuda(modules[i].source, modules[i].name, options);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t)
    pool.emplace_back(work);
  work();
  for (std::thread &t : pool)
    t.join();
  for (const auto &e : errors)
    if (e)
      std::rethrow_exception(e);
  return outputs;
}

} // namespace kiln
