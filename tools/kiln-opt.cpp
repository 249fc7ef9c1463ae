// kiln-opt: parse a graph file, run passes over it, print it. What lit tests use.
#include "CommandLine.h"
#include "PipelineFlags.h"
#include "ir/Graph.h"
#include "ir/ModuleFile.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "passes/PassManager.h"
#include "runtime/Safetensors.h"

#include <iostream>

namespace {

const char *kUsage = R"(usage: kiln-opt FILE|- [options]

Parses a .kir (or .json) graph file, verifies it, runs the given passes and
prints the result as .kir text.

  --list-passes         print the passes and what they do
  --split-input-file    treat each `// -----` chunk as a separate file
  -o FILE               write the output to FILE instead of stdout

)";

/// Runs the pipeline; returns the printed IR and appends any reports to `reportOutput`.
std::string processModule(kiln::Module &module,
                          const std::vector<std::unique_ptr<kiln::Pass>> &passes,
                          kiln::PassManager &passManager, const std::vector<std::string> &reports,
                          const std::string &format, std::string &reportOutput) {
  passManager.begin(module);
  passManager.run(module, passes);
  if (!reports.empty())
    reportOutput += kiln::reportText(module, reports, format);
  return kiln::printModule(module);
}

int run(int argc, char **argv) {
  kiln::CommandLine cl(kiln::withPipelineValueOptions({"-o"}),
                       kiln::withPipelineFlags({"--split-input-file", "--list-passes", "--help"}));
  cl.parse(argc, argv, 1);
  if (cl.has("--help")) {
    std::cout << kUsage << kiln::kPipelineFlagsUsage;
    return 0;
  }
  if (cl.has("--list-passes")) {
    for (const auto &[name, description] : kiln::registeredPasses())
      std::cout << "  " << name << "  " << description << "\n";
    return 0;
  }
  if (cl.positional().size() != 1)
    kiln::throwError("", "expected one input file (or - for stdin); see --help");
  std::string path = cl.positional()[0];
  std::vector<std::unique_ptr<kiln::Pass>> passes = kiln::parsePassPipeline(cl.get("--passes"));
  kiln::PassManager passManager(kiln::pipelineOptions(cl), kiln::passNames(passes));
  if (cl.has("--split-input-file") && cl.has("--dump-dir"))
    kiln::throwError("", "--dump-dir writes one module's stages; it does not combine with "
                         "--split-input-file");

  std::vector<std::string> reports = kiln::requestedReports(cl);
  std::string format = cl.get("--report-format", "text");
  std::string output, reportOutput;
  bool failed = false;
  if (cl.has("--split-input-file")) {
    std::string text = path == "-" ? kiln::readStdin() : kiln::readFile(path);
    std::string name = path == "-" ? "<stdin>" : path;
    std::vector<kiln::InputChunk> chunks = kiln::splitInputFile(text);
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (i)
        output += "// -----\n";
      try {
        kiln::Module module = kiln::parseModule(chunks[i].text, name, chunks[i].firstLine);
        output += processModule(module, passes, passManager, reports, format, reportOutput);
      } catch (const kiln::Error &e) {
        std::cerr << e.what() << "\n";
        failed = true;
      }
    }
  } else {
    kiln::Module module = kiln::loadModuleFile(path);
    output = processModule(module, passes, passManager, reports, format, reportOutput);
  }
  passManager.printTimings();
  if (cl.has("-o"))
    kiln::writeFileAtomically(cl.get("-o"), output);
  else if (reports.empty())
    std::cout << output;
  std::cout << reportOutput;
  return failed ? 1 : 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const kiln::Error &e) {
    std::cerr << kiln::toolMessage("kiln-opt", e) << "\n";
  } catch (const std::bad_alloc &) {
    std::cerr << "kiln-opt: error: out of memory\n";
  } catch (const std::exception &e) {
    std::cerr << "kiln-opt: internal error: " << e.what() << "\n";
  }
  return 1;
}
