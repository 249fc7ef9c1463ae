#include "runtime/cpu/Threads.h"

#include "runtime/Error.h"

#include <cblas.h>
#include <omp.h>

#include <string>

namespace kiln {
namespace cpu {

void setNumThreads(int threads) {
  if (threads < 1)
    throwError("", "the thread count must be at least 1, got " + std::to_string(threads));
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

int numThreads() { return omp_get_max_threads(); }

} // namespace cpu
} // namespace kiln
