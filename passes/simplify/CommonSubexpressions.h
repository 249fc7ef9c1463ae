// Common-subexpression elimination over the graph IR.
#pragma once

#include <memory>

namespace kiln {

class Pass;

/// The `cse` pass: nodes of the same kind, operands, attributes and result
/// type compute the same value, so every use of a later one is given the first
/// one (in node order: deterministic) and the later one is erased. Operands of
/// commutative ops (add, mul, max, min, eq, ne, and, or) match in either order.
/// Constants match by value and type, whatever the spelling (`1` and `1.0`,
/// a splat and a list of equal values). All ops are pure, so `rng_uniform`
/// nodes with the same seed and offset are merged too. `fusion` nodes are
/// never merged (their bodies are not compared).
/// Requires a verified graph; keeps it verified.
std::unique_ptr<Pass> createCommonSubexpressionsPass();

} // namespace kiln
