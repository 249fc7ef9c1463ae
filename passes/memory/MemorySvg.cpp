#include "passes/memory/MemorySvg.h"

#include "ir/Graph.h"
#include "passes/memory/MemoryChecker.h"
#include "runtime/Error.h"

#include <algorithm>
#include <cstdio>

namespace kiln {

namespace {

std::string xmlEscape(const std::string &s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    default:
      out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", v);
  return text;
}

/// `1.5 MiB`, `640 B`.
std::string bytesText(int64_t bytes) {
  char text[32];
  if (bytes >= (int64_t(1) << 20))
    std::snprintf(text, sizeof text, "%.2f MiB", double(bytes) / double(1 << 20));
  else if (bytes >= 1024)
    std::snprintf(text, sizeof text, "%.1f KiB", double(bytes) / 1024.0);
  else
    std::snprintf(text, sizeof text, "%lld B", (long long)bytes);
  return text;
}

/// Fill colours, given to the ops in the order they first own an arena slice.
const char *const kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
                                "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#499894",
                                "#86bcb6", "#d37295", "#fabfd2", "#79706e", "#d4a6c8"};
constexpr size_t kColours = sizeof kPalette / sizeof kPalette[0];

} // namespace

std::string memoryReportSvg(const Graph &graph) {
  std::vector<PlacedValue> placed = readMemoryPlan(graph);
  if (placed.empty())
    throwError("@" + graph.name(), "the graph has no memory plan to draw (run plan-memory)");
  const size_t end = graph.nodes().size(); // positions; `end` also means the end of the step
  int64_t arenaBytes = 0;
  for (const PlacedValue &p : placed)
    if (p.slice.isArena())
      arenaBytes = std::max(arenaBytes, p.slice.end);

  // The ops drawn, in order of first appearance: their colours and the legend.
  std::vector<OpKind> ops;
  for (const PlacedValue &p : placed)
    if (p.slice.isArena() && p.slice.size() > 0 &&
        std::find(ops.begin(), ops.end(), p.node->kind()) == ops.end())
      ops.push_back(p.node->kind());
  auto colourOf = [&](OpKind kind) {
    return kPalette[size_t(std::find(ops.begin(), ops.end(), kind) - ops.begin()) % kColours];
  };
  const size_t legendColumns = 7, legendRows = (ops.size() + legendColumns - 1) / legendColumns;

  const double left = 90, top = 40, width = 900, height = 500;
  arenaBytes = (arenaBytes + 63) / 64 * 64; // as --report=memory counts it
  const double column = width / double(end);
  const double scale = arenaBytes ? height / double(arenaBytes) : 0;
  std::string out;
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(left + width + 20) +
         "\" height=\"" + num(top + height + 60 + 18 * double(legendRows)) +
         "\" font-family=\"Helvetica, sans-serif\" " + "font-size=\"12\">\n";
  out += "<title>" + xmlEscape("memory plan of @" + graph.name()) + "</title>\n";
  out += "<text x=\"" + num(left) + "\" y=\"20\" font-size=\"14\">" +
         xmlEscape("@" + graph.name() + ": arena " + bytesText(arenaBytes) + " (" +
                   std::to_string(arenaBytes) + " bytes), " + std::to_string(end) + " nodes") +
         "</text>\n";
  // The frame, the axes' labels and a few ticks.
  out += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(width) +
         "\" height=\"" + num(height) + "\" fill=\"#fafafa\" stroke=\"#888888\"/>\n";
  out += "<text x=\"" + num(left + width / 2) + "\" y=\"" + num(top + height + 40) +
         "\" text-anchor=\"middle\">schedule position (node)</text>\n";
  out += "<text x=\"15\" y=\"" + num(top + height / 2) + "\" text-anchor=\"middle\" " +
         "transform=\"rotate(-90 15 " + num(top + height / 2) + ")\">arena offset</text>\n";
  for (int t = 0; t <= 4; ++t) {
    double fx = double(t) / 4, x = left + fx * width, y = top + fx * height;
    out += "<text x=\"" + num(x) + "\" y=\"" + num(top + height + 18) +
           "\" text-anchor=\"middle\">" + std::to_string(size_t(fx * double(end) + 0.5)) +
           "</text>\n";
    out += "<text x=\"" + num(left - 6) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\">" +
           xmlEscape(bytesText(int64_t(fx * double(arenaBytes) + 0.5))) + "</text>\n";
  }
  // One rectangle per arena value over its live range.
  for (const PlacedValue &p : placed) {
    if (!p.slice.isArena() || p.slice.size() == 0)
      continue;
    size_t last = std::min(p.lastUse, end - 1);
    double x = left + double(p.position) * column;
    double w = std::max(double(last + 1 - p.position) * column, 0.5);
    double y = top + double(p.slice.begin) * scale;
    double h = std::max(double(p.slice.size()) * scale, 0.5);
    std::string name = "%" + std::to_string(p.position) + resultSuffix(*p.value); // as printed
    std::string op(opName(p.node->kind()));
    std::string title = name + " (" + op + "): " + std::to_string(p.slice.size()) +
                        " bytes at offset " + std::to_string(p.slice.begin) + ", live " +
                        std::to_string(p.position) + ".." +
                        (p.lastUse == end ? std::string("end") : std::to_string(p.lastUse));
    out += "<rect class=\"buffer\" data-value=\"" + xmlEscape(name) + "\" x=\"" + num(x) +
           "\" y=\"" + num(y) + "\" width=\"" + num(w) + "\" height=\"" + num(h) + "\" fill=\"" +
           colourOf(p.node->kind()) + "\" fill-opacity=\"0.8\" stroke=\"#333333\" " +
           "stroke-width=\"0.3\"><title>" + xmlEscape(title) + "</title></rect>\n";
  }
  for (size_t k = 0; k < ops.size(); ++k) {
    double x = left + double(k % legendColumns) * 128,
           y = top + height + 56 + 18 * double(k / legendColumns);
    out += "<rect class=\"legend\" x=\"" + num(x) + "\" y=\"" + num(y) +
           "\" width=\"12\" height=\"12\" fill=\"" + colourOf(ops[k]) + "\"/>\n";
    out += "<text x=\"" + num(x + 16) + "\" y=\"" + num(y + 10) + "\">" +
           xmlEscape(std::string(opName(ops[k]))) + "</text>\n";
  }
  return out + "</svg>\n";
}

} // namespace kiln
