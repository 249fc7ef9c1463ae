// Small helpers shared by the unit tests.
#pragma once

#include "passes/PassManager.h"

namespace kiln {

/// Pass-manager options that verify the IR (and any memory plan) after each pass.
inline PassManagerOptions verifyEachOptions() {
  PassManagerOptions options;
  options.verifyEach = true;
  return options;
}

} // namespace kiln
