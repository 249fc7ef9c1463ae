// The reference interpreter: Kiln's numerical oracle for every backend.
#pragma once

#include "runtime/Safetensors.h"

#include <cstdint>
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

struct InterpreterOptions {
  Precision precision = Precision::Native;
  /// Checks every float argument, and every float value a node computes (the
  /// nodes of a fusion body included) as soon as it is computed, for NaN and
  /// infinities. The first found is a `kiln::Error` located at that argument
  /// or node: `exp produced inf at element 3 (check-numerics)`.
  bool checkNumerics = false;
};

/// Runs a verified graph once. `arguments` must hold a value for every graph
/// argument, by name, of the argument's exact type (a `kiln::Error` names the
/// first one missing or mismatched). Updates are not applied to `arguments`:
/// they are returned in `updated`.
InterpreterResult interpret(const Graph &graph, const TensorMap &arguments,
                            Precision precision = Precision::Native);
InterpreterResult interpret(const Graph &graph, const TensorMap &arguments,
                            const InterpreterOptions &options);

/// The most bytes of values `interpret` holds at once while running `graph`,
/// computed from the graph alone: 8 bytes per element whatever the dtype (the
/// interpreter keeps every element as a double or an int64), arguments from
/// the start, each value from its node until its last use (results and
/// update sources to the end), a fusion body's values while it runs. The
/// caller's argument tensors and the returned tensors are not counted.
/// Saturates at UINT64_MAX.
uint64_t interpreterPeakBytes(const Graph &graph);

} // namespace kiln
