// The documentation names every op of OpKind.def.
#include "ir/Op.h"
#include "runtime/Safetensors.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(Docs, OpsMdDocumentsEveryOp) {
  std::string ops = readFile(std::string(KILN_SOURCE_DIR) + "/docs/ops.md");
  for (OpKind kind : allOpKinds()) {
    std::string heading = "### " + std::string(opName(kind)) + "\n";
    EXPECT_NE(ops.find(heading), std::string::npos) << "docs/ops.md has no '### " << opName(kind) << "'";
  }
}

TEST(Docs, IrMdDocumentsEveryDTypeAndRole) {
  std::string ir = readFile(std::string(KILN_SOURCE_DIR) + "/docs/ir.md");
  for (DType t : kAllDTypes)
    EXPECT_NE(ir.find(std::string(dtypeName(t))), std::string::npos) << dtypeName(t);
  for (const char *word : {"input", "param", "state", "update", "// -----", "kiln.graph"})
    EXPECT_NE(ir.find(word), std::string::npos) << word;
}

} // namespace
} // namespace kiln
