// The one team of threads of the CPU runtime. Kiln's parallel loops use
// OpenMP, and BLAS is OpenBLAS's OpenMP build, so both run on the same OpenMP
// threads and never oversubscribe the cores (shared/DESIGN.md, Backends: CPU).
#pragma once

namespace kiln {
namespace cpu {

/// Sets the threads of Kiln's loops and of BLAS (omp_set_num_threads and
/// openblas_set_num_threads). OpenMP keeps the count per calling thread: call
/// it from the thread that runs the Executable. `threads` < 1 is a kiln::Error.
void setNumThreads(int threads);
/// The threads a parallel loop started from this thread uses.
int numThreads();

} // namespace cpu
} // namespace kiln
