// Built when KILN_ENABLE_CPU_BACKEND is OFF: the CPU target reports itself
// missing with a clear error instead of failing to link.
#include "compiler/CpuBackend.h"

#include "runtime/Error.h"

namespace kiln {

bool cpuBackendAvailable() { return false; }

namespace {
[[noreturn]] void unavailable() {
  throwError("", "this build has no CPU backend (configure with -DKILN_ENABLE_CPU_BACKEND=ON)");
}
} // namespace

std::unique_ptr<CpuCompiled> compileForCpu(const Graph &) { unavailable(); }

CpuAotCompiled compileForCpuAot(const Graph &, CpuCodeOptions) { unavailable(); }

} // namespace kiln
