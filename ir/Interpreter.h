// The reference interpreter: Kiln's numerical oracle for every backend.
#pragma once

#include "runtime/Safetensors.h"

#include <vector>

namespace kiln {

class Graph;

/// How the interpreter computes floating-point values.
enum class Precision {
  /// Every op is computed in double and its result rounded to the op's dtype
  /// (for + - * / sqrt this is the correctly rounded result of that dtype).
  Native,
  /// Every float value is computed and kept in f64, whatever its dtype; float
  /// results and updated values are returned as f64 tensors.
  F64,
};

struct InterpreterResult {
  std::vector<HostTensor> results; // in the graph's result order
  TensorMap updated;               // new values of updated params/state, by argument name
};

/// Runs a verified graph once. `arguments` must hold a value for every graph
/// argument, by name, of the argument's exact type (a `kiln::Error` names the
/// first one missing or mismatched). Updates are not applied to `arguments`:
/// they are returned in `updated`.
InterpreterResult interpret(const Graph &graph, const TensorMap &arguments,
                            Precision precision = Precision::Native);

} // namespace kiln
