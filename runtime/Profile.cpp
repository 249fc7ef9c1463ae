#include "runtime/Profile.h"

#include "runtime/ProgramCheck.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>

namespace kiln {

std::string formatProfile(const Program &program, const Profile &profile) {
  double runs = double(std::max<int64_t>(profile.runs, 1)), total = profile.updateSeconds;
  for (double s : profile.stepSeconds)
    total += s;
  std::vector<size_t> order(std::min(profile.stepSeconds.size(), program.steps.size()));
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return profile.stepSeconds[a] > profile.stepSeconds[b];
  });
  std::string text;
  char line[256];
  std::snprintf(line, sizeof line, "%lld runs, %.3f ms per run\n", (long long)profile.runs,
                total / runs * 1e3);
  text += line;
  auto row = [&](double seconds, const std::string &label) {
    std::snprintf(line, sizeof line, "%10.3f ms %5.1f%%  %s\n", seconds / runs * 1e3,
                  total > 0 ? 100 * seconds / total : 0.0, label.c_str());
    text += line;
  };
  for (size_t i : order)
    row(profile.stepSeconds[i], "#" + std::to_string(i) + " " +
                                    stepKindName(program.steps[i].kind) + " " +
                                    program.steps[i].name);
  row(profile.updateSeconds, "updates");
  // The same time by kind of entry, largest first.
  std::map<std::string, std::pair<double, int>> byKind;
  for (size_t i : order) {
    auto &[kindSeconds, count] = byKind[stepKindName(program.steps[i].kind)];
    kindSeconds += profile.stepSeconds[i];
    ++count;
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> kinds(byKind.begin(), byKind.end());
  std::stable_sort(kinds.begin(), kinds.end(),
                   [](const auto &a, const auto &b) { return a.second.first > b.second.first; });
  text += "by kind:\n";
  for (const auto &[kind, total] : kinds)
    row(total.first, kind + " (" + std::to_string(total.second) + " entries)");
  return text;
}

namespace {

/// A step's sizes, as the args of its trace event.
nlohmann::ordered_json traceArgs(size_t index, const Step &step) {
  nlohmann::ordered_json args{{"step", index}};
  const WindowParams &w = step.window;
  auto dims = [](std::initializer_list<int64_t> d) { return std::vector<int64_t>(d); };
  switch (step.kind) {
  case StepKind::Kernel:
    args["iterations"] = step.iterations;
    args["per_iteration"] = step.iterationCost;
    break;
  case StepKind::Matmul:
    args["batch"] = step.matmul.batch, args["m"] = step.matmul.m;
    args["n"] = step.matmul.n, args["k"] = step.matmul.k;
    break;
  case StepKind::Gather:
  case StepKind::ScatterAdd:
  case StepKind::Copy:
    args["bytes"] = step.result.bytes;
    break;
  default: // the window ops: NCHW input and output, the window
    args["input"] = dims({w.n, w.c, w.h, w.w});
    args["output"] = dims({w.n, w.o, w.oh, w.ow});
    args["window"] = dims({w.kh, w.kw});
    break;
  }
  return args;
}

} // namespace

std::string formatChromeTrace(const Program &program, const Profile &profile) {
  using Json = nlohmann::ordered_json;
  Json events = Json::array();
  events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 1},
                    {"args", {{"name", "kiln @" + program.name}}}});
  auto event = [&](const std::string &name, const char *kind, std::pair<double, double> span,
                   Json args) {
    events.push_back({{"name", name}, {"cat", kind}, {"ph", "X"}, {"pid", 1}, {"tid", 1},
                      {"ts", span.first * 1e6}, {"dur", (span.second - span.first) * 1e6},
                      {"args", std::move(args)}});
  };
  size_t steps = std::min(program.steps.size(), profile.lastRun.size());
  for (size_t i = 0; i < steps; ++i)
    event(program.steps[i].name, stepKindName(program.steps[i].kind), profile.lastRun[i],
          traceArgs(i, program.steps[i]));
  if (profile.lastRun.size() == program.steps.size() + 1)
    event("updates", "updates", profile.lastRun.back(), Json{{"updates", program.updates.size()}});
  Json trace{{"displayTimeUnit", "ms"},
             {"otherData", {{"program", program.name}}},
             {"traceEvents", std::move(events)}};
  return trace.dump(1) + "\n";
}

} // namespace kiln
