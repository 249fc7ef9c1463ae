// `--report=memory`: what a memory plan costs and where every value lives.
#pragma once

#include <string>

namespace kiln {

class Graph;

/// A report of the memory plan of `graph` (run `plan-memory` first; a graph
/// without `buffer` attributes is reported as unplanned). As text, or as one
/// JSON object when `json` (`--report=memory --report-format=json`):
///
///   - `arena_bytes`: the arena's size, the largest end of an arena slice
///     rounded up to 64;
///   - `max_live_bytes`: the lower bound no offset assignment of this schedule
///     can beat: the largest, over node positions, sum of the 64-byte-rounded
///     sizes of the arena values live there (an elementwise result sharing
///     its operand's slice counts once);
///   - `ratio`: arena_bytes / max_live_bytes (1 is optimal for this schedule);
///   - `unshared_bytes`: the arena every node's value would need with a
///     buffer of its own (the sum of their 64-byte-rounded sizes);
///   - `in_place`: results sharing an operand's slice (`elementwise`, fusions
///     included) and update sources written straight into their argument's
///     buffer (`updates`);
///   - `check`: "ok", or the problem `checkMemoryPlan` finds;
///   - `buffers`: for every node's value in schedule order, `value` (its
///     printed name `%N`, `%N#k` for result k of a multi-output node), `op`, `first` (its node's position) and `last` (its
///     last use; the node count means the end of the step), `buffer`
///     ("arena" or "%ARG"), `offset` and `size` (bytes of its slice).
std::string memoryReport(const Graph &graph, bool json);

} // namespace kiln
