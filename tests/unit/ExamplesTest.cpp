// The committed example files are exactly what the C++ builder produces.
#include "examples/models/Models.h"
#include "ir/Graph.h"
#include "ir/Json.h"
#include "ir/Printer.h"
#include "runtime/Safetensors.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

class ExampleFiles : public testing::TestWithParam<std::string> {};

TEST_P(ExampleFiles, MatchTheBuilder) {
  const std::string name = GetParam();
  Module module;
  module.graphs.push_back(examples::buildExampleModel(name));
  std::string dir = std::string(KILN_SOURCE_DIR) + "/examples/";
  EXPECT_EQ(readFile(dir + name + ".kir"), printModule(module))
      << "examples/" << name << ".kir is stale: run build/examples/kiln-export-examples";
  EXPECT_EQ(readFile(dir + name + ".json"), printJsonModule(module))
      << "examples/" << name << ".json is stale: run build/examples/kiln-export-examples";
}

INSTANTIATE_TEST_SUITE_P(Models, ExampleFiles, testing::Values("mlp", "cnn", "gpt"));

} // namespace
} // namespace kiln
