// kiln-export-examples [DIR]: writes DIR/NAME.kir and DIR/NAME.json (default
// DIR: examples) for every example model, so the committed files can be
// regenerated with one command from the repository root.
#include "examples/models/Models.h"
#include "ir/Graph.h"
#include "ir/Json.h"
#include "ir/Printer.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <cstdio>

int main(int argc, char **argv) {
  if (argc > 2) {
    std::fprintf(stderr, "usage: kiln-export-examples [OUTPUT_DIR]\n");
    return 2;
  }
  std::string dir = argc == 2 ? argv[1] : "examples";
  try {
    for (const std::string &name : kiln::examples::exampleModelNames()) {
      kiln::Module module;
      module.graphs.push_back(kiln::examples::buildExampleModel(name));
      std::string kirPath = dir + "/" + name + ".kir";
      kiln::writeFileAtomically(kirPath, kiln::printModule(module));
      std::string jsonPath = dir + "/" + name + ".json";
      kiln::writeJsonModule(jsonPath, module);
      std::printf("wrote %s and %s\n", kirPath.c_str(), jsonPath.c_str());
    }
  } catch (const kiln::Error &e) {
    std::fprintf(stderr, "kiln-export-examples: %s\n", e.what());
    return 1;
  }
  return 0;
}
