#include "examples/models/Models.h"

#include "ir/Graph.h"
#include "runtime/Error.h"

namespace kiln::examples {

const std::vector<std::string> &exampleModelNames() {
  static const std::vector<std::string> names{"mlp", "cnn", "gpt"};
  return names;
}

std::unique_ptr<Graph> buildExampleModel(const std::string &name) {
  if (name == "mlp")
    return buildMlp();
  if (name == "cnn")
    return buildCnn();
  if (name == "gpt")
    return buildGpt();
  throwError("", "unknown example model '" + name + "' (expected mlp, cnn or gpt)");
}

} // namespace kiln::examples
