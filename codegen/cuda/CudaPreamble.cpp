// The device helpers every generated kernel is compiled with.
#include "codegen/cuda/CudaCodegen.h"

namespace kiln {

const std::string &cudaPreamble() {
  static const std::string text = R"CUDA(// Kiln CUDA preamble: element conversions and the interpreter's semantics.
typedef unsigned long long kiln_u64;
#define KILN_INF_F __int_as_float(0x7f800000)
#define KILN_INF_D __longlong_as_double(0x7ff0000000000000LL)
#define KILN_NAN_F __int_as_float(0x7fc00000)
#define KILN_NAN_D __longlong_as_double(0x7ff8000000000000LL)

// bf16 and f16 are stored as their bits; arithmetic is f32.
__device__ __forceinline__ float kiln_ld_bf16(unsigned short b) { return __uint_as_float(((unsigned)b) << 16); }
__device__ __forceinline__ unsigned short kiln_st_bf16(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u); // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u); // round to nearest even
  return (unsigned short)(u >> 16);
}
#ifdef KILN_HOST_EMULATION // the tests run kernels on the host (tests/unit/CudaEmulationTest.cpp)
__device__ __forceinline__ float kiln_ld_f16(unsigned short h) { return kiln_host_half_to_float(h); }
__device__ __forceinline__ unsigned short kiln_st_f16(float f) { return kiln_host_float_to_half(f); }
#else
__device__ __forceinline__ float kiln_ld_f16(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned short kiln_st_f16(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
#endif
__device__ __forceinline__ float kiln_round_bf16(float f) { return kiln_ld_bf16(kiln_st_bf16(f)); }
__device__ __forceinline__ float kiln_round_f16(float f) { return kiln_ld_f16(kiln_st_f16(f)); }

__device__ __forceinline__ bool kiln_isnan(float v) { return isnan(v); }
__device__ __forceinline__ bool kiln_isnan(double v) { return isnan(v); }
__device__ __forceinline__ bool kiln_isnan(int) { return false; }
__device__ __forceinline__ bool kiln_isnan(long long) { return false; }
__device__ __forceinline__ bool kiln_isnan(bool) { return false; }

// max/min propagate NaN (torch.maximum); otherwise std::max/std::min.
template <typename T> __device__ __forceinline__ T kiln_max(T a, T b) { return kiln_isnan(a) ? a : kiln_isnan(b) ? b : (a < b ? b : a); }
template <typename T> __device__ __forceinline__ T kiln_min(T a, T b) { return kiln_isnan(a) ? a : kiln_isnan(b) ? b : (b < a ? b : a); }

// Integers wrap (two's complement); x / 0 = 0 and MIN / -1 = MIN.
__device__ __forceinline__ int kiln_wadd(int a, int b) { return (int)((unsigned)a + (unsigned)b); }
__device__ __forceinline__ int kiln_wsub(int a, int b) { return (int)((unsigned)a - (unsigned)b); }
__device__ __forceinline__ int kiln_wmul(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
__device__ __forceinline__ int kiln_wneg(int a) { return (int)(0u - (unsigned)a); }
__device__ __forceinline__ long long kiln_wadd(long long a, long long b) { return (long long)((kiln_u64)a + (kiln_u64)b); }
__device__ __forceinline__ long long kiln_wsub(long long a, long long b) { return (long long)((kiln_u64)a - (kiln_u64)b); }
__device__ __forceinline__ long long kiln_wmul(long long a, long long b) { return (long long)((kiln_u64)a * (kiln_u64)b); }
__device__ __forceinline__ long long kiln_wneg(long long a) { return (long long)(0ull - (kiln_u64)a); }
template <typename T> __device__ __forceinline__ T kiln_idiv(T a, T b) { return b == 0 ? T(0) : b == T(-1) ? kiln_wneg(a) : a / b; }

// Float to integer: truncation toward zero, saturating, NaN to 0.
__device__ __forceinline__ int kiln_f2i32(double d) {
  if (isnan(d)) return 0;
  if (d <= -2147483648.0) return (-2147483647 - 1);
  if (d >= 2147483647.0) return 2147483647;
  return (int)d;
}
__device__ __forceinline__ long long kiln_f2i64(double d) {
  if (isnan(d)) return 0;
  if (d <= -9223372036854775808.0) return (-9223372036854775807LL - 1);
  if (d >= 9223372036854775807.0) return 9223372036854775807LL;
  return (long long)d;
}

// rng_uniform: Philox-4x32-10 (runtime/Random.cpp), (w0 >> 8) * 2^-24.
__device__ __forceinline__ float kiln_rng_uniform(kiln_u64 key, kiln_u64 counter) {
  unsigned c0 = (unsigned)counter, c1 = (unsigned)(counter >> 32), c2 = 0u, c3 = 0u;
  unsigned k0 = (unsigned)key, k1 = (unsigned)(key >> 32);
  for (int round = 0; round < 10; ++round) {
    kiln_u64 p0 = (kiln_u64)0xD2511F53u * c0, p1 = (kiln_u64)0xCD9E8D57u * c2;
    unsigned n0 = (unsigned)(p1 >> 32) ^ c1 ^ k0, n1 = (unsigned)p1;
    unsigned n2 = (unsigned)(p0 >> 32) ^ c3 ^ k1, n3 = (unsigned)p0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  return (float)(c0 >> 8) * 5.9604644775390625e-8f;
}

// Block-wide reductions (blockDim.x a multiple of 32, every thread calls):
// butterfly shuffles in each warp, then the warps' values combined in warp
// order by every thread. Deterministic for a given block size; no atomics.
struct KilnSum { template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; } };
struct KilnMax { template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return kiln_max(a, b); } };
template <typename T, typename F> __device__ __forceinline__ T kiln_block_reduce(T v, F f) {
  __shared__ T shm[32];
  for (int o = 16; o > 0; o >>= 1) v = f(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warps = (int)(blockDim.x >> 5);
  __syncthreads(); // the previous reduction's readers are done with shm
  if ((threadIdx.x & 31u) == 0u) shm[threadIdx.x >> 5] = v;
  __syncthreads();
  v = shm[0];
  for (int w = 1; w < warps; ++w) v = f(v, shm[w]);
  return v;
}
// Split (column) reductions: each warp of the block sums every (warps)-th
// element for 32 outputs, one per lane; every thread then combines the
// partials of its lane in warp order, so all threads get the total.
// Deterministic for a given block size; no atomics.
template <typename T, typename F> __device__ __forceinline__ T kiln_split_reduce(T v, F f) {
  __shared__ T shs[1024];
  __syncthreads(); // the previous reduction's readers are done with shs
  shs[threadIdx.x] = v;
  __syncthreads();
  const unsigned lane = threadIdx.x & 31u;
  v = shs[lane];
  for (unsigned p = 1; p < (blockDim.x >> 5); ++p) v = f(v, shs[lane + 32u * p]);
  return v;
}
// argmax: the first NaN wins, else the greatest value, ties to the lowest index.
template <typename T> __device__ __forceinline__ void kiln_arg_combine(T &v, long long &i, T ov, long long oi) {
  bool n = kiln_isnan(v), on = kiln_isnan(ov);
  bool take = (n && on) ? oi < i : n ? false : on ? true : (v < ov || (ov == v && oi < i));
  if (take) { v = ov; i = oi; }
}
template <typename T> __device__ __forceinline__ void kiln_block_argmax(T &v, long long &i) {
  __shared__ T sv[32];
  __shared__ long long si[32];
  for (int o = 16; o > 0; o >>= 1) {
    T ov = __shfl_xor_sync(0xffffffffu, v, o);
    long long oi = __shfl_xor_sync(0xffffffffu, i, o);
    kiln_arg_combine(v, i, ov, oi);
  }
  const int warps = (int)(blockDim.x >> 5);
  __syncthreads();
  if ((threadIdx.x & 31u) == 0u) { sv[threadIdx.x >> 5] = v; si[threadIdx.x >> 5] = i; }
  __syncthreads();
  v = sv[0]; i = si[0];
  for (int w = 1; w < warps; ++w) kiln_arg_combine(v, i, sv[w], si[w]);
}
)CUDA";
  return text;
}

} // namespace kiln
