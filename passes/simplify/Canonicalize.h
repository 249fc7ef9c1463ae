// Canonicalization: algebraic identities and shape-op chains.
#pragma once

#include <memory>

namespace kiln {

class Pass;

/// The `canonicalize` pass rewrites each node, in order, into a simpler
/// equivalent whose results are bit for bit the same:
///   - x+0, 0+x, x-0, x*1, 1*x, x/1 -> x, where the 0 or 1 is a splat
///     `constant` of exactly that value, possibly behind a broadcast;
///   - neg(neg x) -> x; cast of x to its own dtype -> x;
///   - reshape(reshape x) -> reshape x; a reshape to x's own shape -> x;
///   - transpose(transpose x) -> one transpose (perms composed), and the
///     identity permutation -> x;
///   - broadcast(broadcast x) -> one broadcast (dims composed), and a
///     broadcast to x's own shape -> x;
///   - a broadcast of a splat constant -> a splat constant of its shape;
///     a constant list of equal values -> a splat, and integer values of a
///     float constant -> floats (`1` -> `1.0`);
///   - matmul of transpose(a) whose perm swaps exactly the last two dims ->
///     matmul of a with transpose_a flipped (likewise for b).
/// It never folds x*0 (NaN and inf times 0 are not 0) and never reassociates
/// float arithmetic. Rewritten nodes keep their location; nodes it bypasses
/// are erased once unused (other unused nodes stay for `dce`). Results,
/// arguments and updates keep their types and names.
/// Requires a verified graph; keeps it verified.
std::unique_ptr<Pass> createCanonicalizePass();

} // namespace kiln
