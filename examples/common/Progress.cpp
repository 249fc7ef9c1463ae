#include "examples/common/Progress.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <unistd.h>

namespace kiln::examples {

bool stdoutIsTerminal() {
  const char *term = std::getenv("TERM");
  return isatty(STDOUT_FILENO) && !(term && std::strcmp(term, "dumb") == 0);
}

TrainingProgress::TrainingProgress(std::ostream &out, int64_t totalSteps, int64_t samplesPerStep,
                                   std::string unit, bool live)
    : out_(out), totalSteps_(totalSteps), samplesPerStep_(samplesPerStep), unit_(std::move(unit)),
      live_(live) {}

double TrainingProgress::intervalLoss() const {
  return intervalSteps_ ? intervalLossSum_ / double(intervalSteps_) : 0.0;
}

double TrainingProgress::intervalSamplesPerSecond() const {
  return intervalSeconds_ > 0 ? double(intervalSteps_ * samplesPerStep_) / intervalSeconds_ : 0.0;
}

void TrainingProgress::step(int64_t step, double loss, double seconds) {
  lastStep_ = step;
  ++intervalSteps_;
  intervalLossSum_ += loss;
  intervalSeconds_ += seconds;
  if (!live_)
    return;
  auto now = std::chrono::steady_clock::now();
  if (step != totalSteps_ && barShown_ && now - lastDraw_ < std::chrono::milliseconds(100))
    return;
  lastDraw_ = now;
  constexpr int kWidth = 30;
  int filled = totalSteps_ ? int(double(kWidth) * double(step) / double(totalSteps_)) : kWidth;
  std::string bar(size_t(filled), '=');
  if (filled < kWidth)
    bar += '>' + std::string(size_t(kWidth - filled - 1), ' ');
  char text[200];
  std::snprintf(text, sizeof text, "\r[%s] %lld/%lld  loss %.4f  %.0f %s/s\033[K", bar.c_str(),
                (long long)step, (long long)totalSteps_, intervalLoss(), intervalSamplesPerSecond(),
                unit_.c_str());
  out_ << text << std::flush;
  barShown_ = true;
}

void TrainingProgress::clearBar() {
  if (barShown_)
    out_ << "\r\033[K";
  barShown_ = false;
}

void TrainingProgress::line(const std::string &text) {
  clearBar();
  out_ << text << "\n" << std::flush;
  intervalSteps_ = 0;
  intervalLossSum_ = 0;
  intervalSeconds_ = 0;
}

void TrainingProgress::finish() {
  clearBar();
  out_ << std::flush;
}

} // namespace kiln::examples
