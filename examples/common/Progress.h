// The progress output of the training examples: on a terminal, one bar
// redrawn in place (`\r`) with the step, the recent loss and the throughput;
// elsewhere (a pipe, a log file) only the permanent lines, so that logs stay
// readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace kiln::examples {

/// Whether standard output is a terminal that can redraw a line (not TERM=dumb).
bool stdoutIsTerminal();

class TrainingProgress {
public:
  /// `totalSteps` steps of `samplesPerStep` samples each, which the bar
  /// calls `unit` (`samples/s`, `chars/s`). `live`: redraw a bar on `out` as
  /// steps finish (use stdoutIsTerminal()).
  TrainingProgress(std::ostream &out, int64_t totalSteps, int64_t samplesPerStep,
                   std::string unit, bool live);

  /// Records finished step `step` (1-based) with its loss and the seconds it
  /// took; redraws the bar at most ten times a second and after the last step.
  void step(int64_t step, double loss, double seconds);

  /// The mean loss and the samples per second over the steps since the last
  /// `line` (or the start).
  double intervalLoss() const;
  double intervalSamplesPerSecond() const;

  /// Writes a permanent line (the bar, if any, is cleared first and redrawn
  /// by the next step) and starts a new interval.
  void line(const std::string &text);

  /// Clears the bar; call before printing anything else after training.
  void finish();

private:
  void clearBar();

  std::ostream &out_;
  int64_t totalSteps_, samplesPerStep_;
  std::string unit_;
  bool live_;
  bool barShown_ = false;
  int64_t lastStep_ = 0;
  int64_t intervalSteps_ = 0;
  double intervalLossSum_ = 0, intervalSeconds_ = 0;
  std::chrono::steady_clock::time_point lastDraw_{};
};

} // namespace kiln::examples
