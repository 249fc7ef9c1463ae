// Memory planning: a schedule, liveness, in-place reuse and arena offsets.
#pragma once

#include <cstdint>
#include <memory>

namespace kiln {

class Pass;

/// Alignment of every slice the planner hands out, in bytes.
inline constexpr int64_t kBufferAlignment = 64;

/// The `plan-memory` pass. Must run last (after fusion): it treats every node
/// generically, as results computed from its operands (one, or one per value
/// a multi-output fusion yields), and looks at no op kind except through the
/// `Elementwise` trait.
///
///  1. Schedule: among the graph's current order, greedy list schedules
///     (each step takes the ready node that frees the most / allocates the
///     least arena bytes, ties by current order) and an as-late-as-possible
///     one (from the end, the latest ready node), the topological order whose
///     plan needs the smallest arena (then: writes the most updates in place);
///     applied with `reorderNodes`.
///  2. Liveness over that schedule: a node's value lives from its node to its
///     last use; results and `update` sources live to the end of the step.
///     Arguments (inputs, params, state) keep their own persistent buffers.
///  3. `update %w, %src` is written in place, `%src` getting `%w[0:bytes]`,
///     when every other reader of `%w`'s old value runs before `%src`'s node
///     (or is that node, if it reads `%w` only where it writes, see 4) and
///     nothing reads `%w` at the end of the step. The schedule orders those
///     readers first wherever the data flow allows it.
///  4. In place: a node whose operand is an arena value of the same byte size
///     dying at it takes that operand's slice when it reads each element of
///     the operand only to write the same element: an `Elementwise` op, or a
///     fusion whose body passes the operand through elementwise ops only
///     (a fused optimizer update, a fused activation). In a multi-output
///     fusion the result's body node must also come after every body node
///     reading the operand (a kernel writes each result as its body runs),
///     and the operand must not be yielded; an operand goes to one result.
///  5. Offsets: greedy best-fit by decreasing size (TFLite's arena planner,
///     XLA's heap simulator): each buffer goes where it fits best among the
///     buffers whose live ranges intersect its own; offsets are 64-byte
///     aligned. A few placement orders are tried and the smallest arena kept.
///
/// Every node gets a `buffer` attribute (a list of slices, one per result,
/// for a multi-output fusion), constants and values nobody reads included (a backend may leave a constant unmaterialized; its slice is then
/// simply unused). Slices are `arena[off:off+bytes]` or `%w[0:bytes]`; the
/// arena's size is the largest end, rounded up to 64. Nodes inside a fusion's
/// body get none: they live in the fused kernel. `passes/memory/MemoryChecker.h`
/// proves the result sound.
std::unique_ptr<Pass> createPlanMemoryPass();

} // namespace kiln
