#include "passes/memory/MemoryReport.h"

#include "ir/Graph.h"
#include "passes/memory/MemoryChecker.h"

#include <algorithm>
#include <cstdio>
#include <unordered_map>

namespace kiln {

namespace {

int64_t alignUp(int64_t bytes) { return (bytes + 63) / 64 * 64; }

std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string fixed(double v, int digits) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

std::string padLeft(const std::string &s, size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

std::string padRight(const std::string &s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

struct Summary {
  int64_t arenaBytes = 0, maxLiveBytes = 0, unsharedBytes = 0;
  size_t sharedInPlace = 0, updatesInPlace = 0;
};

/// Whether `p` takes exactly the slice of an operand whose last use is `p`'s
/// node (in place, as the checker allows).
bool takesOperandSlice(const PlacedValue &p, const std::vector<PlacedValue> &placed,
                       const std::unordered_map<const Value *, size_t> &index) {
  for (const Value *operand : p.node->operands()) {
    auto def = index.find(operand);
    if (def != index.end() && placed[def->second].lastUse == p.position &&
        placed[def->second].slice == p.slice)
      return true;
  }
  return false;
}

Summary summarize(const Graph &graph, const std::vector<PlacedValue> &placed) {
  Summary s;
  size_t end = graph.nodes().size();
  std::unordered_map<const Value *, size_t> index;
  for (size_t i = 0; i < placed.size(); ++i)
    index[placed[i].value] = i;
  std::vector<int64_t> delta(end + 1, 0); // live bytes change at each position
  for (const PlacedValue &p : placed) {
    s.unsharedBytes += alignUp(p.bytes);
    if (p.slice.buffer.empty())
      continue;
    if (!p.slice.isArena()) {
      s.updatesInPlace += graph.findArgument(p.slice.buffer.substr(1)) ? 1 : 0;
      continue;
    }
    if (p.slice.size() == 0)
      continue;
    s.arenaBytes = std::max(s.arenaBytes, alignUp(p.slice.end));
    size_t first = p.position;
    if (takesOperandSlice(p, placed, index)) {
      ++s.sharedInPlace;
      ++first;
    }
    size_t last = std::min(p.lastUse, end - 1);
    if (first > last)
      continue;
    delta[first] += alignUp(p.bytes);
    delta[last + 1] -= alignUp(p.bytes);
  }
  int64_t live = 0;
  for (size_t i = 0; i < end; ++i)
    s.maxLiveBytes = std::max(s.maxLiveBytes, live += delta[i]);
  return s;
}

} // namespace

std::string memoryReport(const Graph &graph, bool json) {
  std::vector<PlacedValue> placed = readMemoryPlan(graph);
  if (placed.empty())
    return json ? "{\"graph\": " + jsonString(graph.name()) + ", \"planned\": false}\n"
                : "memory plan of @" + graph.name() + ": none (run plan-memory)\n";
  Summary s = summarize(graph, placed);
  std::string problem = checkMemoryPlan(graph);
  double ratio = s.maxLiveBytes ? double(s.arenaBytes) / double(s.maxLiveBytes) : 1.0;
  double saving = s.arenaBytes ? double(s.unsharedBytes) / double(s.arenaBytes) : 0.0;
  size_t end = graph.nodes().size();
  auto name = [](const PlacedValue &p) {
    return "%" + std::to_string(p.position) + resultSuffix(*p.value);
  };
  auto lastText = [&](const PlacedValue &p) {
    return p.lastUse == end ? std::string("end") : std::to_string(p.lastUse);
  };

  std::string out;
  if (json) {
    out += "{\"graph\": " + jsonString(graph.name()) + ", \"planned\": true";
    out += ", \"nodes\": " + std::to_string(end);
    out += ", \"arena_bytes\": " + std::to_string(s.arenaBytes);
    out += ", \"max_live_bytes\": " + std::to_string(s.maxLiveBytes);
    out += ", \"ratio\": " + fixed(ratio, 4);
    out += ", \"unshared_bytes\": " + std::to_string(s.unsharedBytes);
    out += ", \"in_place\": {\"elementwise\": " + std::to_string(s.sharedInPlace) +
           ", \"updates\": " + std::to_string(s.updatesInPlace) + "}";
    out += ", \"check\": " + jsonString(problem.empty() ? "ok" : problem);
    out += ", \"buffers\": [";
    for (size_t i = 0; i < placed.size(); ++i) {
      const PlacedValue &p = placed[i];
      out += std::string(i ? ", " : "") + "\n  {\"value\": \"" + name(p) +
             "\", \"op\": " + jsonString(std::string(opName(p.node->kind()))) +
             ", \"first\": " + std::to_string(p.position) + ", \"last\": " + std::to_string(p.lastUse) +
             ", \"buffer\": " + jsonString(p.slice.buffer) +
             ", \"offset\": " + std::to_string(p.slice.begin) +
             ", \"size\": " + std::to_string(p.slice.size()) + "}";
    }
    return out + "\n]}\n";
  }

  out += "memory plan of @" + graph.name() + " (" + std::to_string(end) + " nodes)\n";
  out += "  arena bytes           " + std::to_string(s.arenaBytes) + "\n";
  out += "  max-live lower bound  " + std::to_string(s.maxLiveBytes) + "\n";
  out += "  arena / max-live      " + fixed(ratio, 3) + "\n";
  out += "  one buffer per value  " + std::to_string(s.unsharedBytes) + " (" + fixed(saving, 2) +
         "x the arena)\n";
  out += "  in place              " + std::to_string(s.sharedInPlace) +
         " elementwise results, " + std::to_string(s.updatesInPlace) + " updates\n";
  out += "  check                 " + (problem.empty() ? std::string("ok") : problem) + "\n";
  out += "\n  first   last  buffer            offset        size  value\n";
  for (const PlacedValue &p : placed) {
    out += "  " + padLeft(std::to_string(p.position), 5) + "  " + padLeft(lastText(p), 5) + "  " +
           padRight(p.slice.buffer, 14) + padLeft(std::to_string(p.slice.begin), 10) + "  " +
           padLeft(std::to_string(p.slice.size()), 10) + "  " + name(p) + " (" +
           std::string(opName(p.node->kind())) + ")\n";
  }
  return out;
}

} // namespace kiln
