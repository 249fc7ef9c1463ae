// Internal to runtime/cpu: the BLAS GEMM for f32 and f64, and the thread
// facts the kernels' parallel loops decide with. Included only by
// runtime/cpu/*.cpp (it pulls in cblas.h and omp.h).
#pragma once

#include <cblas.h>
#include <omp.h>

#include <cassert>
#include <climits>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace kiln {
namespace cpu {

/// Below this many inner-loop iterations a loop runs on one thread: waking the
/// team costs a few microseconds.
inline constexpr int64_t kParallelWork = int64_t(1) << 15;

/// The team a parallel region would get here: 1 inside a parallel region
/// (no nesting), else the OpenMP thread count.
inline int availableThreads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

/// GEMMs at most this big (m * n * k) run on one thread: OpenBLAS would split
/// them over all its threads, and on a busy machine waiting for a descheduled
/// thread costs more than the GEMM (digits MLP, 64x128x64: 1000 steps took
/// 9-16 s on 2 threads under load, 0.1 s on one).
inline constexpr int64_t kSerialGemm = int64_t(1) << 21;

/// Calls `gemmCall` with OpenBLAS on one thread when the GEMM is small (and
/// not already inside a parallel region, where OpenBLAS runs on one anyway).
template <typename Call> void callBlas(int64_t m, int64_t n, int64_t k, Call gemmCall) {
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads == 1 || m * n * k > kSerialGemm)
    return gemmCall();
  openblas_set_num_threads(1); // the OpenMP build sets OpenMP's count too
  gemmCall();
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);
}

/// Row-major C = alpha op(A) op(B) + beta C, op(A) [m, k], op(B) [k, n], for
/// T = float (sgemm) or double (dgemm). With beta == 0, C is overwritten
/// (OpenBLAS never reads it, so stale NaNs vanish). Called inside a parallel
/// region, OpenBLAS's OpenMP build runs on one thread.
template <typename T>
void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, T alpha, const T *a,
          int64_t lda, const T *b, int64_t ldb, T beta, T *c, int64_t ldc) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "sgemm or dgemm");
  assert(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX &&
         ldc <= INT_MAX && "the Executable rejects GEMMs beyond 32-bit BLAS");
  CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans;
  callBlas(m, n, k, [&] {
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda),
                  b, blasint(ldb), beta, c, blasint(ldc));
    else
      cblas_dgemm(CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda),
                  b, blasint(ldb), beta, c, blasint(ldc));
  });
}

/// A per-thread scratch array of at least `count` elements (grown, never
/// shrunk), kept between calls so that a step allocates nothing once warm.
template <typename T> T *scratch(int64_t count) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < size_t(count))
    buffer.resize(size_t(count));
  return buffer.data();
}

} // namespace cpu
} // namespace kiln
