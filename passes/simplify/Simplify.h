// The simplification pipeline: canonicalize, constant-fold, cse, dce.
#pragma once

#include <memory>

namespace kiln {

class Pass;

/// The `simplify` pass runs `canonicalize`, `constant-fold`, `cse` and `dce`
/// in that order, again and again until none of them changes the graph (a
/// fixed point; each round only shortens chains or removes nodes, so this
/// takes a few rounds). Deterministic, and idempotent: running it on its own
/// output changes nothing. The interpreter's results and updated values stay
/// the same (bit for bit in Precision::Native, up to the sign of a zero from
/// x+0). Requires a verified graph; keeps it verified.
std::unique_ptr<Pass> createSimplifyPass();

} // namespace kiln
