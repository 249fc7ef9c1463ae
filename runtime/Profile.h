// Per-step timings of a Program's runs, shared by the CPU and GPU
// Executables: `kiln run --profile` and `--trace`.
#pragma once

#include "runtime/Program.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kiln {

/// Time of each step of a Program, summed over the runs it was given to: wall
/// time on the CPU, CUDA-event time on the GPU (runtime/cuda/Executable.h).
struct Profile {
  std::vector<double> stepSeconds; // by step index
  double updateSeconds = 0;        // applying `updates`
  int64_t runs = 0;
  /// With `trace` set, each run records when each step began and ended, in
  /// seconds from the start of the run (by step index, then the updates):
  /// the last run's timeline, for formatChromeTrace.
  bool trace = false;
  std::vector<std::pair<double, double>> lastRun;
};
/// The steps by time, slowest first: time per run, share, index, kind, name.
std::string formatProfile(const Program &program, const Profile &profile);
/// The last run of a traced Profile as Chrome-trace JSON (the Trace Event
/// Format that Perfetto and chrome://tracing open): one complete event per
/// step, with its kind, index and shapes as args.
std::string formatChromeTrace(const Program &program, const Profile &profile);

} // namespace kiln
