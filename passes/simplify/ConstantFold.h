// Constant folding over the graph IR.
#pragma once

#include "ir/Attribute.h"

#include <memory>
#include <optional>

namespace kiln {

class Pass;
struct Value;

/// The `constant-fold` pass: replaces a node whose operands are all
/// `constant`s by a `constant` holding its value, when that value is small
/// (at most 64 elements) or a splat (one value everywhere, e.g. an elementwise
/// op of splats, a broadcast or reshape of a splat, a reduction of a splat).
/// The value is what the reference interpreter computes for that node in
/// Precision::Native (a one-node graph), so running the folded graph gives
/// exactly what running the original gave. It is written as a splat when all
/// elements are equal, else as a literal list. `rng_uniform` is never folded,
/// nor a `fusion` node (run it before `fuse`).
/// The folded nodes, and the constants only they used, are erased; the new
/// constant takes the folded node's place and location.
/// Requires a verified graph; keeps it verified.
std::unique_ptr<Pass> createConstantFoldPass();

/// The one value of every element of `v` when `v` is a `constant` splat (a
/// number, or a non-empty list of equal numbers); nothing otherwise.
std::optional<Attribute> splatValue(const Value &v);

} // namespace kiln
