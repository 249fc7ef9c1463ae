// The real Device: the CUDA driver API and cuBLASLt, both loaded at run time
// (shared/notes/cuda.md), so every Kiln binary starts on a machine without a
// driver and says "no CUDA driver" only when the GPU is asked for.
#include "runtime/cuda/Device.h"

#include "runtime/Error.h"

#include <cublasLt.h>
#include <cuda.h>
#include <cudaTypedefs.h>

#include <dlfcn.h>

#include <algorithm>
#include <map>
#include <mutex>

namespace kiln {
namespace cuda {

bool cudaRuntimeAvailable() { return true; }

namespace {

/// The driver entry points Kiln uses, resolved through cuGetProcAddress by
/// base name and the version their cudaTypedefs.h typedef names.
struct Driver {
  PFN_cuInit_v2000 init = nullptr;
  PFN_cuDriverGetVersion_v2020 driverGetVersion = nullptr;
  PFN_cuGetErrorName_v6000 getErrorName = nullptr;
  PFN_cuGetErrorString_v6000 getErrorString = nullptr;
  PFN_cuDeviceGetCount_v2000 deviceGetCount = nullptr;
  PFN_cuDeviceGet_v2000 deviceGet = nullptr;
  PFN_cuDeviceGetName_v2000 deviceGetName = nullptr;
  PFN_cuDeviceGetAttribute_v2000 deviceGetAttribute = nullptr;
  PFN_cuDeviceTotalMem_v3020 deviceTotalMem = nullptr;
  PFN_cuDevicePrimaryCtxRetain_v7000 primaryCtxRetain = nullptr;
  PFN_cuDevicePrimaryCtxRelease_v11000 primaryCtxRelease = nullptr;
  PFN_cuCtxSetCurrent_v4000 ctxSetCurrent = nullptr;
  PFN_cuStreamCreate_v2000 streamCreate = nullptr;
  PFN_cuStreamDestroy_v4000 streamDestroy = nullptr;
  PFN_cuStreamSynchronize_v2000 streamSynchronize = nullptr;
  PFN_cuMemAlloc_v3020 memAlloc = nullptr;
  PFN_cuMemFree_v3020 memFree = nullptr;
  PFN_cuMemcpyHtoDAsync_v3020 memcpyHtoDAsync = nullptr;
  PFN_cuMemcpyDtoHAsync_v3020 memcpyDtoHAsync = nullptr;
  PFN_cuMemcpyDtoDAsync_v3020 memcpyDtoDAsync = nullptr;
  PFN_cuMemsetD8Async_v3020 memsetD8Async = nullptr;
  PFN_cuModuleLoadData_v2000 moduleLoadData = nullptr;
  PFN_cuModuleUnload_v2000 moduleUnload = nullptr;
  PFN_cuModuleGetFunction_v2000 moduleGetFunction = nullptr;
  PFN_cuLaunchKernel_v4000 launchKernel = nullptr;
  PFN_cuStreamBeginCapture_v10010 streamBeginCapture = nullptr;
  PFN_cuStreamEndCapture_v10000 streamEndCapture = nullptr;
  PFN_cuGraphInstantiateWithFlags_v11040 graphInstantiate = nullptr;
  PFN_cuGraphUpload_v11010 graphUpload = nullptr;
  PFN_cuGraphLaunch_v10000 graphLaunch = nullptr;
  PFN_cuGraphDestroy_v10000 graphDestroy = nullptr;
  PFN_cuGraphExecDestroy_v10000 graphExecDestroy = nullptr;
  PFN_cuEventCreate_v2000 eventCreate = nullptr;
  PFN_cuEventRecord_v2000 eventRecord = nullptr;
  PFN_cuEventElapsedTime_v2000 eventElapsedTime = nullptr;
  PFN_cuEventDestroy_v4000 eventDestroy = nullptr;

  std::string error; // why the driver is unusable; empty when loaded
};

/// Loads the driver once per process; `error` says why it could not.
const Driver &driver() {
  static Driver d = [] {
    Driver d;
    void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      const char *why = dlerror();
      d.error = std::string("no CUDA driver: dlopen(\"libcuda.so.1\") failed: ") + (why ? why : "?");
      return d;
    }
    auto getProcAddress = reinterpret_cast<PFN_cuGetProcAddress_v12000>(dlsym(library, "cuGetProcAddress_v2"));
    if (!getProcAddress) {
      d.error = "no CUDA driver: libcuda.so.1 has no cuGetProcAddress_v2 (a CUDA 12 or newer driver is needed)";
      return d;
    }
    auto resolve = [&](auto &fn, const char *name, int version) {
      void *address = nullptr;
      CUdriverProcAddressQueryResult status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
      CUresult r = getProcAddress(name, &address, version, CU_GET_PROC_ADDRESS_LEGACY_STREAM, &status);
      if (r != CUDA_SUCCESS || status != CU_GET_PROC_ADDRESS_SUCCESS || !address) {
        if (d.error.empty())
          d.error = std::string("the CUDA driver has no ") + name + " (version " + std::to_string(version) + ")";
        return;
      }
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(address);
    };
    resolve(d.init, "cuInit", 2000);
    resolve(d.driverGetVersion, "cuDriverGetVersion", 2020);
    resolve(d.getErrorName, "cuGetErrorName", 6000);
    resolve(d.getErrorString, "cuGetErrorString", 6000);
    resolve(d.deviceGetCount, "cuDeviceGetCount", 2000);
    resolve(d.deviceGet, "cuDeviceGet", 2000);
    resolve(d.deviceGetName, "cuDeviceGetName", 2000);
    resolve(d.deviceGetAttribute, "cuDeviceGetAttribute", 2000);
    resolve(d.deviceTotalMem, "cuDeviceTotalMem", 3020);
    resolve(d.primaryCtxRetain, "cuDevicePrimaryCtxRetain", 7000);
    resolve(d.primaryCtxRelease, "cuDevicePrimaryCtxRelease", 11000);
    resolve(d.ctxSetCurrent, "cuCtxSetCurrent", 4000);
    resolve(d.streamCreate, "cuStreamCreate", 2000);
    resolve(d.streamDestroy, "cuStreamDestroy", 4000);
    resolve(d.streamSynchronize, "cuStreamSynchronize", 2000);
    resolve(d.memAlloc, "cuMemAlloc", 3020);
    resolve(d.memFree, "cuMemFree", 3020);
    resolve(d.memcpyHtoDAsync, "cuMemcpyHtoDAsync", 3020);
    resolve(d.memcpyDtoHAsync, "cuMemcpyDtoHAsync", 3020);
    resolve(d.memcpyDtoDAsync, "cuMemcpyDtoDAsync", 3020);
    resolve(d.memsetD8Async, "cuMemsetD8Async", 3020);
    resolve(d.moduleLoadData, "cuModuleLoadData", 2000);
    resolve(d.moduleUnload, "cuModuleUnload", 2000);
    resolve(d.moduleGetFunction, "cuModuleGetFunction", 2000);
    resolve(d.launchKernel, "cuLaunchKernel", 4000);
    resolve(d.streamBeginCapture, "cuStreamBeginCapture", 10010);
    resolve(d.streamEndCapture, "cuStreamEndCapture", 10000);
    resolve(d.graphInstantiate, "cuGraphInstantiateWithFlags", 11040);
    resolve(d.graphUpload, "cuGraphUpload", 11010);
    resolve(d.graphLaunch, "cuGraphLaunch", 10000);
    resolve(d.graphDestroy, "cuGraphDestroy", 10000);
    resolve(d.graphExecDestroy, "cuGraphExecDestroy", 10000);
    resolve(d.eventCreate, "cuEventCreate", 2000);
    resolve(d.eventRecord, "cuEventRecord", 2000);
    resolve(d.eventElapsedTime, "cuEventElapsedTime", 2000);
    resolve(d.eventDestroy, "cuEventDestroy", 4000);
    if (d.error.empty()) {
      CUresult r = d.init(0);
      if (r != CUDA_SUCCESS) {
        const char *name = nullptr;
        d.getErrorName(r, &name);
        d.error = std::string("no CUDA device: the driver did not start (cuInit: ") + (name ? name : "?") + ")";
      }
    }
    return d;
  }();
  return d;
}

/// A CUDA call's result as a kiln::Error: "cuMemAlloc(1024 bytes):
/// CUDA_ERROR_OUT_OF_MEMORY (out of memory)".
void check(CUresult result, const std::string &what) {
  if (result == CUDA_SUCCESS)
    return;
  const Driver &d = driver();
  const char *name = nullptr, *text = nullptr;
  if (d.getErrorName)
    d.getErrorName(result, &name);
  if (d.getErrorString)
    d.getErrorString(result, &text);
  throwError("cuda", what + ": " + (name ? name : "CUresult " + std::to_string(int(result))) + " (" +
                         (text ? text : "?") + ")");
}

/// cuBLASLt, loaded at run time: its 500 MB are mapped only when a program
/// has a matmul on the GPU.
struct Blas {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtGetStatusName) statusName = nullptr;
  decltype(&cublasLtGetVersion) version = nullptr;
  decltype(&cublasLtMatmulDescCreate) descCreate = nullptr;
  decltype(&cublasLtMatmulDescDestroy) descDestroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) descSet = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layoutCreate = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layoutDestroy = nullptr;
  decltype(&cublasLtMatrixLayoutSetAttribute) layoutSet = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) preferenceCreate = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) preferenceDestroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) preferenceSet = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
  std::string error;
};

const Blas &blas() {
  static Blas b = [] {
    Blas b;
    void *library = dlopen("libcublasLt.so.13", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      const char *why = dlerror();
      b.error = std::string("no cuBLASLt: dlopen(\"libcublasLt.so.13\") failed: ") + (why ? why : "?");
      return b;
    }
    auto resolve = [&](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(library, name));
      if (!fn && b.error.empty())
        b.error = std::string("libcublasLt.so.13 has no ") + name;
    };
    resolve(b.create, "cublasLtCreate");
    resolve(b.destroy, "cublasLtDestroy");
    resolve(b.statusName, "cublasLtGetStatusName");
    resolve(b.version, "cublasLtGetVersion");
    resolve(b.descCreate, "cublasLtMatmulDescCreate");
    resolve(b.descDestroy, "cublasLtMatmulDescDestroy");
    resolve(b.descSet, "cublasLtMatmulDescSetAttribute");
    resolve(b.layoutCreate, "cublasLtMatrixLayoutCreate");
    resolve(b.layoutDestroy, "cublasLtMatrixLayoutDestroy");
    resolve(b.layoutSet, "cublasLtMatrixLayoutSetAttribute");
    resolve(b.preferenceCreate, "cublasLtMatmulPreferenceCreate");
    resolve(b.preferenceDestroy, "cublasLtMatmulPreferenceDestroy");
    resolve(b.preferenceSet, "cublasLtMatmulPreferenceSetAttribute");
    resolve(b.heuristic, "cublasLtMatmulAlgoGetHeuristic");
    resolve(b.matmul, "cublasLtMatmul");
    return b;
  }();
  return b;
}

void checkBlas(cublasStatus_t status, const std::string &what) {
  if (status == CUBLAS_STATUS_SUCCESS)
    return;
  const char *name = blas().statusName ? blas().statusName(status) : nullptr;
  throwError("cuBLASLt", what + ": " + (name ? name : "status " + std::to_string(int(status))));
}

/// cuBLASLt's workspace, shared by every matmul (NVIDIA's advice for Hopper).
constexpr int64_t kWorkspaceBytes = int64_t(32) << 20;

/// One prepared matmul: the descriptors and the algorithm chosen once.
struct MatmulPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool f64 = false;
};

class CudaDevice final : public Device {
public:
  explicit CudaDevice(int ordinal) {
    const Driver &d = driver();
    check(d.deviceGet(&device_, ordinal), "cuDeviceGet(" + std::to_string(ordinal) + ")");
    char name[256] = {};
    check(d.deviceGetName(name, sizeof name, device_), "cuDeviceGetName");
    info_.name = name;
    int major = 0, minor = 0;
    check(d.deviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device_), "cuDeviceGetAttribute");
    check(d.deviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device_), "cuDeviceGetAttribute");
    check(d.deviceGetAttribute(&info_.multiprocessors, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device_),
          "cuDeviceGetAttribute");
    info_.arch = "sm_" + std::to_string(major * 10 + minor);
    size_t total = 0;
    check(d.deviceTotalMem(&total, device_), "cuDeviceTotalMem");
    info_.memoryBytes = int64_t(total);
    int version = 0;
    check(d.driverGetVersion(&version), "cuDriverGetVersion");
    info_.driver = std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
    // NVRTC 13's cubins and libcublasLt.so.13 need a CUDA 13 driver: say so
    // here rather than as a module-load or cuBLASLt error later.
    if (version < CUDA_VERSION)
      throwError("cuda", "the CUDA driver is " + info_.driver + ", older than the CUDA " +
                             std::to_string(CUDA_VERSION / 1000) + "." + std::to_string(CUDA_VERSION % 1000 / 10) +
                             " this build needs");
    check(d.primaryCtxRetain(&context_, device_), "cuDevicePrimaryCtxRetain");
    try {
      makeCurrent();
      check(d.streamCreate(&stream_, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    } catch (...) {
      d.primaryCtxRelease(device_);
      throw;
    }
  }

  ~CudaDevice() override {
    const Driver &d = driver();
    makeCurrentNoThrow();
    if (stream_)
      d.streamSynchronize(stream_);
    for (auto &[handle, exec] : graphs_) // before what the graphs use
      d.graphExecDestroy(exec);
    for (auto &[handle, plan] : matmuls_)
      destroyPlan(plan);
    if (blasHandle_)
      blas().destroy(blasHandle_);
    for (auto &[handle, module] : modules_)
      d.moduleUnload(module);
    for (auto &[handle, event] : events_)
      d.eventDestroy(event);
    for (auto &[pointer, bytes] : allocations_)
      d.memFree(pointer);
    if (stream_)
      d.streamDestroy(stream_);
    if (context_)
      d.primaryCtxRelease(device_);
  }

  const DeviceInfo &info() const override { return info_; }

  DevicePtr allocate(int64_t bytes) override {
    makeCurrent();
    size_t size = size_t(std::max<int64_t>(bytes, 1));
    CUdeviceptr p = 0;
    CUresult r = driver().memAlloc(&p, size);
    if (r == CUDA_ERROR_OUT_OF_MEMORY)
      throwError("cuda", "out of device memory: cannot allocate " + std::to_string(size) + " bytes (" +
                             std::to_string(allocated_) + " bytes allocated by Kiln, " + info_.name + " has " +
                             std::to_string(info_.memoryBytes) + ")");
    check(r, "cuMemAlloc(" + std::to_string(size) + " bytes)");
    allocations_[p] = int64_t(size);
    allocated_ += int64_t(size);
    peak_ = std::max(peak_, allocated_);
    return p;
  }

  void release(DevicePtr pointer) noexcept override {
    auto it = allocations_.find(pointer);
    if (it == allocations_.end())
      return;
    makeCurrentNoThrow();
    driver().memFree(pointer);
    allocated_ -= it->second;
    allocations_.erase(it);
  }

  int64_t allocatedBytes() const override { return allocated_; }
  int64_t peakAllocatedBytes() const override { return peak_; }

  void copyToDevice(DevicePtr to, const void *from, int64_t bytes) override {
    if (bytes <= 0)
      return;
    makeCurrent();
    check(driver().memcpyHtoDAsync(to, from, size_t(bytes), stream_), "cuMemcpyHtoDAsync");
    synchronize();
  }
  void copyToHost(void *to, DevicePtr from, int64_t bytes) override {
    if (bytes <= 0)
      return;
    makeCurrent();
    check(driver().memcpyDtoHAsync(to, from, size_t(bytes), stream_), "cuMemcpyDtoHAsync");
    synchronize();
  }
  void copyOnDevice(DevicePtr to, DevicePtr from, int64_t bytes) override {
    if (bytes <= 0)
      return;
    makeCurrent();
    check(driver().memcpyDtoDAsync(to, from, size_t(bytes), stream_), "cuMemcpyDtoDAsync");
  }
  void fill(DevicePtr to, uint8_t byte, int64_t bytes) override {
    if (bytes <= 0)
      return;
    makeCurrent();
    check(driver().memsetD8Async(to, byte, size_t(bytes), stream_), "cuMemsetD8Async");
  }

  ModuleHandle loadModule(const CudaModule &module) override {
    makeCurrent();
    const std::string &image = module.cubin.empty() ? module.ptx : module.cubin;
    if (image.empty())
      throwError(module.name, "the module was not compiled (no cubin or PTX)");
    CUmodule m = nullptr;
    check(driver().moduleLoadData(&m, image.c_str()), "cuModuleLoadData(" + module.name + ")");
    modules_[next_] = m;
    return next_++;
  }
  void unloadModule(ModuleHandle module) noexcept override {
    auto it = modules_.find(module);
    if (it == modules_.end())
      return;
    makeCurrentNoThrow();
    driver().moduleUnload(it->second);
    modules_.erase(it);
    for (auto f = functions_.begin(); f != functions_.end();)
      f = f->second.first == module ? functions_.erase(f) : std::next(f);
  }
  KernelHandle kernel(ModuleHandle module, const std::string &name) override {
    CUfunction f = nullptr;
    check(driver().moduleGetFunction(&f, modules_.at(module), name.c_str()), "cuModuleGetFunction(" + name + ")");
    functions_[next_] = {module, f};
    return next_++;
  }
  void launch(KernelHandle kernel, const CudaLaunch &launch, const std::vector<DevicePtr> &pointers) override {
    // The Executable checks a kernel's pointers against kMaxKernelPointers; no
    // allocation per launch (eager runs launch every kernel every step).
    constexpr size_t kMaxPointers = 64;
    if (pointers.size() > kMaxPointers)
      throwError("cuda", "kernel '" + launch.kernel + "' takes " + std::to_string(pointers.size()) + " pointers");
    CUdeviceptr values[kMaxPointers];
    void *params[kMaxPointers];
    for (size_t i = 0; i < pointers.size(); ++i) {
      values[i] = pointers[i];
      params[i] = &values[i];
    }
    makeCurrent();
    CUresult r = driver().launchKernel(functions_.at(kernel).second, unsigned(launch.grid), 1, 1, unsigned(launch.block),
                                       1, 1, unsigned(launch.sharedBytes), stream_, params, nullptr);
    if (r != CUDA_SUCCESS)
      check(r, "cuLaunchKernel(" + launch.kernel + ", grid " + std::to_string(launch.grid) + ", block " +
                   std::to_string(launch.block) + ")");
  }

  MatmulHandle prepareMatmul(const MatmulParams &p, uint32_t alignment, DevicePtr bias) override {
    makeCurrent();
    const Blas &b = blas();
    if (!b.error.empty())
      throwError("cuda", b.error);
    if (!blasHandle_)
      checkBlas(b.create(&blasHandle_), "cublasLtCreate");
    if (!workspace_)
      workspace_ = allocate(kWorkspaceBytes);
    if (p.dtype != DType::F32 && p.dtype != DType::F64)
      throwError("cuBLASLt", "matmul of " + std::string(dtypeName(p.dtype)) + " (f32 or f64)");
    MatmulPlan plan;
    plan.f64 = p.dtype == DType::F64;
    cublasLtMatmulPreference_t preference = nullptr;
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
    try {
      cudaDataType_t type = plan.f64 ? CUDA_R_64F : CUDA_R_32F;
      // Exact f32 (TF32 off) or f64 arithmetic.
      cublasComputeType_t compute = plan.f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
      checkBlas(b.descCreate(&plan.desc, compute, type), "cublasLtMatmulDescCreate");
      // Row-major C[M,N] = op(A) op(B) is column-major C^T[N,M] = op(B)^T op(A)^T:
      // cuBLASLt's A is our B and its B our A, with the transposes swapped in.
      int32_t opA = p.transposeB ? CUBLAS_OP_T : CUBLAS_OP_N, opB = p.transposeA ? CUBLAS_OP_T : CUBLAS_OP_N;
      checkBlas(b.descSet(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA), "TRANSA");
      checkBlas(b.descSet(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB), "TRANSB");
      if (p.biasEpilogue) {
        // Along cuBLASLt's rows, which are our columns: one value per output feature.
        uint32_t epilogue = CUBLASLT_EPILOGUE_BIAS;
        const void *pointer = reinterpret_cast<const void *>(bias);
        int32_t biasType = int32_t(type);
        checkBlas(b.descSet(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), "EPILOGUE");
        checkBlas(b.descSet(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &pointer, sizeof pointer), "BIAS_POINTER");
        checkBlas(b.descSet(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &biasType, sizeof biasType),
                  "BIAS_DATA_TYPE");
      }
      // Column-major shapes of the stored matrices: ours [rows, cols] row-major is [cols, rows] column-major.
      auto layout = [&](cublasLtMatrixLayout_t &l, int64_t rows, int64_t cols, bool broadcast = false) {
        // Row-major [rows, cols] = column-major [cols, rows] with leading dimension cols.
        checkBlas(b.layoutCreate(&l, type, uint64_t(cols), uint64_t(rows), cols), "cublasLtMatrixLayoutCreate");
        int32_t count = int32_t(p.batch);
        int64_t stride = broadcast ? 0 : rows * cols; // 0: the same matrix for every batch
        checkBlas(b.layoutSet(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count), "BATCH_COUNT");
        checkBlas(b.layoutSet(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
                  "STRIDED_BATCH_OFFSET");
      };
      // Stored shapes: A is [k, m] when transposed else [m, k]; B [n, k] or [k, n]; C [m, n].
      layout(plan.b, p.transposeA ? p.k : p.m, p.transposeA ? p.m : p.k, p.broadcastA);
      layout(plan.a, p.transposeB ? p.n : p.k, p.transposeB ? p.k : p.n);
      layout(plan.c, p.m, p.n);
      checkBlas(b.preferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
      uint64_t workspace = uint64_t(kWorkspaceBytes);
      checkBlas(b.preferenceSet(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace),
                "PREF_MAX_WORKSPACE_BYTES");
      // What the caller guarantees of every pointer (and batch): wider loads when aligned.
      for (auto attribute : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                             CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
        checkBlas(b.preferenceSet(preference, attribute, &alignment, sizeof alignment), "PREF_MIN_ALIGNMENT");
      status = b.heuristic(blasHandle_, plan.desc, plan.a, plan.b, plan.c, plan.c, preference, 1, &result, &found);
    } catch (...) {
      if (preference)
        b.preferenceDestroy(preference);
      destroyPlan(plan);
      throw;
    }
    b.preferenceDestroy(preference);
    std::string shape = "[" + std::to_string(p.batch) + " x " + std::to_string(p.m) + "x" + std::to_string(p.k) +
                        " @ " + std::to_string(p.k) + "x" + std::to_string(p.n) + "]";
    if (status != CUBLAS_STATUS_SUCCESS || found == 0) {
      destroyPlan(plan);
      checkBlas(status, "no algorithm for matmul " + shape);
      throwError("cuBLASLt", "no algorithm for matmul " + shape);
    }
    plan.algo = result.algo;
    matmuls_[next_] = plan;
    return next_++;
  }
  void releaseMatmul(MatmulHandle matmul) noexcept override {
    auto it = matmuls_.find(matmul);
    if (it == matmuls_.end())
      return;
    destroyPlan(it->second);
    matmuls_.erase(it);
  }
  void matmul(MatmulHandle handle, DevicePtr a, DevicePtr b, DevicePtr c) override {
    makeCurrent();
    const MatmulPlan &plan = matmuls_.at(handle);
    float one = 1, zero = 0;
    double oneD = 1, zeroD = 0;
    const void *alpha = plan.f64 ? static_cast<const void *>(&oneD) : &one;
    const void *beta = plan.f64 ? static_cast<const void *>(&zeroD) : &zero;
    // cuBLASLt's A is our b, its B our a (see prepareMatmul).
    checkBlas(blas().matmul(blasHandle_, plan.desc, alpha, reinterpret_cast<const void *>(b), plan.a,
                            reinterpret_cast<const void *>(a), plan.b, beta, reinterpret_cast<void *>(c), plan.c,
                            reinterpret_cast<void *>(c), plan.c, &plan.algo, reinterpret_cast<void *>(workspace_),
                            size_t(kWorkspaceBytes), stream_),
              "cublasLtMatmul");
  }

  void synchronize() override {
    makeCurrent();
    check(driver().streamSynchronize(stream_), "the GPU step failed (cuStreamSynchronize)");
  }

  void beginCapture() override {
    makeCurrent();
    check(driver().streamBeginCapture(stream_, CU_STREAM_CAPTURE_MODE_GLOBAL), "cuStreamBeginCapture");
  }
  GraphHandle endCapture() override {
    CUgraph graph = nullptr;
    check(driver().streamEndCapture(stream_, &graph), "cuStreamEndCapture");
    CUgraphExec exec = nullptr;
    CUresult r = driver().graphInstantiate(&exec, graph, 0);
    driver().graphDestroy(graph);
    check(r, "cuGraphInstantiateWithFlags");
    r = driver().graphUpload(exec, stream_);
    if (r != CUDA_SUCCESS) {
      driver().graphExecDestroy(exec);
      check(r, "cuGraphUpload");
    }
    graphs_[next_] = exec;
    return next_++;
  }
  void abortCapture() noexcept override {
    CUgraph graph = nullptr;
    if (driver().streamEndCapture(stream_, &graph) == CUDA_SUCCESS && graph)
      driver().graphDestroy(graph);
  }
  void launchGraph(GraphHandle graph) override {
    makeCurrent();
    check(driver().graphLaunch(graphs_.at(graph), stream_), "cuGraphLaunch");
  }
  void releaseGraph(GraphHandle graph) noexcept override {
    auto it = graphs_.find(graph);
    if (it == graphs_.end())
      return;
    driver().graphExecDestroy(it->second);
    graphs_.erase(it);
  }

  EventHandle createEvent() override {
    makeCurrent();
    CUevent e = nullptr;
    check(driver().eventCreate(&e, CU_EVENT_DEFAULT), "cuEventCreate");
    events_[next_] = e;
    return next_++;
  }
  void recordEvent(EventHandle event) override {
    check(driver().eventRecord(events_.at(event), stream_), "cuEventRecord");
  }
  double elapsedMilliseconds(EventHandle from, EventHandle to) override {
    synchronize();
    float ms = 0;
    check(driver().eventElapsedTime(&ms, events_.at(from), events_.at(to)), "cuEventElapsedTime");
    return ms;
  }
  void releaseEvent(EventHandle event) noexcept override {
    auto it = events_.find(event);
    if (it == events_.end())
      return;
    driver().eventDestroy(it->second);
    events_.erase(it);
  }

private:
  void makeCurrent() { check(driver().ctxSetCurrent(context_), "cuCtxSetCurrent"); }
  void makeCurrentNoThrow() noexcept {
    if (context_)
      driver().ctxSetCurrent(context_);
  }
  void destroyPlan(MatmulPlan &plan) noexcept {
    const Blas &b = blas();
    if (plan.a)
      b.layoutDestroy(plan.a);
    if (plan.b)
      b.layoutDestroy(plan.b);
    if (plan.c)
      b.layoutDestroy(plan.c);
    if (plan.desc)
      b.descDestroy(plan.desc);
    plan = MatmulPlan();
  }

  DeviceInfo info_;
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
  CUstream stream_ = nullptr;
  cublasLtHandle_t blasHandle_ = nullptr;
  DevicePtr workspace_ = 0;
  size_t next_ = 1; // one counter for every kind of handle
  std::map<DevicePtr, int64_t> allocations_;
  int64_t allocated_ = 0, peak_ = 0;
  std::map<ModuleHandle, CUmodule> modules_;
  std::map<KernelHandle, std::pair<ModuleHandle, CUfunction>> functions_;
  std::map<MatmulHandle, MatmulPlan> matmuls_;
  std::map<GraphHandle, CUgraphExec> graphs_;
  std::map<EventHandle, CUevent> events_;
};

} // namespace

int cudaDeviceCount(std::string *why) {
  const Driver &d = driver();
  if (!d.error.empty()) {
    if (why)
      *why = d.error;
    return 0;
  }
  int count = 0;
  CUresult r = d.deviceGetCount(&count);
  if (r != CUDA_SUCCESS || count == 0) {
    if (why)
      *why = "no CUDA device (the driver found none)";
    return 0;
  }
  return count;
}

std::shared_ptr<Device> openCudaDevice(int ordinal) {
  std::string why;
  int count = cudaDeviceCount(&why);
  if (count == 0)
    throwError("cuda", why);
  if (ordinal < 0 || ordinal >= count)
    throwError("cuda", "no CUDA device " + std::to_string(ordinal) + " (" + std::to_string(count) + " device" +
                           (count == 1 ? "" : "s") + ")");
  return std::make_shared<CudaDevice>(ordinal);
}

} // namespace cuda
} // namespace kiln
