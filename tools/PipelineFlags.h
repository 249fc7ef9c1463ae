// The pass-manager flags that kiln-opt and `kiln compile` share
// (docs/cli.md, "Pipeline flags").
#pragma once

#include "CommandLine.h"
#include "ir/Graph.h"
#include "passes/PassManager.h"
#include "passes/fusion/Fusion.h"
#include "passes/memory/MemoryReport.h"
#include "passes/memory/MemorySvg.h"

#include <set>
#include <string>
#include <vector>

namespace kiln {

/// The help text of the flags, for a tool's usage.
inline const char *kPipelineFlagsUsage = R"(pipeline flags:
  --passes=a,b          passes to run, in order (see kiln-opt --list-passes)
  --verify-each         verify the IR after every stage
  --print-after-all     print the IR after every stage (to stderr)
  --print-after=a,b     print the IR after the named stages
  --print-before=a,b    print the IR before the named stages
  --print-changed       print after a stage only if it changed the IR
  --stop-after=NAME     end the pipeline after stage NAME
  --dump-dir=DIR        write the IR of every stage to DIR/NN-NAME.kir
  --time-passes         print the wall time of every stage (to stderr)
  --report=fusion,memory  print these reports of the final IR to stdout
                        (the IR then goes only to -o FILE, if given)
  --report-format=text|json|svg
                        svg: the arena of --report=memory as a picture
                        (one graph)
)";

/// `valueOptions` plus the pipeline flags that take a value.
inline std::set<std::string> withPipelineValueOptions(std::set<std::string> valueOptions) {
  valueOptions.insert({"--passes", "--print-after", "--print-before", "--stop-after", "--dump-dir",
                       "--report", "--report-format"});
  return valueOptions;
}

/// `flags` plus the pipeline flags that take none.
inline std::set<std::string> withPipelineFlags(std::set<std::string> flags) {
  flags.insert({"--verify-each", "--print-after-all", "--print-changed", "--time-passes"});
  return flags;
}

/// The names of a comma list (`a,b`); an empty list has none.
inline std::vector<std::string> splitCommaList(const std::string &list) {
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos < list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos)
      comma = list.size();
    names.push_back(list.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return names;
}

/// The pass-manager options the flags of `cl` ask for (all but --passes).
inline PassManagerOptions pipelineOptions(const CommandLine &cl) {
  PassManagerOptions options;
  options.verifyEach = cl.has("--verify-each");
  options.printAfterAll = cl.has("--print-after-all");
  options.printAfter = splitCommaList(cl.get("--print-after"));
  options.printBefore = splitCommaList(cl.get("--print-before"));
  options.printChanged = cl.has("--print-changed");
  options.stopAfter = cl.get("--stop-after");
  if (cl.has("--stop-after") && options.stopAfter.empty())
    throwError("", "option '--stop-after' needs a stage name");
  options.dumpDir = cl.get("--dump-dir");
  if (cl.has("--dump-dir") && options.dumpDir.empty())
    throwError("", "option '--dump-dir' needs a directory");
  options.timePasses = cl.has("--time-passes");
  return options;
}

/// The reports `--report` asks for, checked; empty when none.
inline std::vector<std::string> requestedReports(const CommandLine &cl) {
  std::vector<std::string> reports = splitCommaList(cl.get("--report"));
  if (cl.has("--report") && reports.empty())
    throwError("", "option '--report' needs fusion, memory or both");
  for (const std::string &r : reports)
    if (r != "fusion" && r != "memory")
      throwError("", "unknown report '" + r + "' (expected fusion or memory)");
  std::string format = cl.get("--report-format", "text");
  if (format != "text" && format != "json" && format != "svg")
    throwError("", "--report-format must be text, json or svg, got '" + format + "'");
  if (format == "svg" && reports != std::vector<std::string>{"memory"})
    throwError("", "--report-format=svg draws the memory report alone: use --report=memory");
  return reports;
}

/// The requested reports of every graph of `module`: text one after the
/// other, or one JSON object {"GRAPH": {"fusion": ..., "memory": ...}, ...},
/// or (`format` svg, the memory report of a module of one graph) an SVG picture.
inline std::string reportText(const Module &module, const std::vector<std::string> &reports,
                              const std::string &format) {
  if (format == "svg") {
    if (module.graphs.size() != 1)
      throwError("", "--report-format=svg draws one graph, but the module has " +
                         std::to_string(module.graphs.size()));
    return memoryReportSvg(*module.graphs[0]);
  }
  bool json = format == "json";
  std::string out = json ? "{" : "";
  for (size_t g = 0; g < module.graphs.size(); ++g) {
    const Graph &graph = *module.graphs[g];
    if (json)
      out += std::string(g ? ",\n" : "\n") + "\"" + graph.name() + "\": {";
    for (size_t r = 0; r < reports.size(); ++r) {
      std::string text = reports[r] == "fusion" ? fusionReport(graph, json) : memoryReport(graph, json);
      out += json ? (r ? ", " : "") + std::string("\"") + reports[r] + "\": " + text : text;
    }
    if (json)
      out += "}";
  }
  return json ? out + "\n}\n" : out;
}

/// The names of `passes`, the stages a PassManager is told of.
inline std::vector<std::string> passNames(const std::vector<std::unique_ptr<Pass>> &passes) {
  std::vector<std::string> names;
  for (const auto &pass : passes)
    names.emplace_back(pass->name());
  return names;
}

} // namespace kiln
