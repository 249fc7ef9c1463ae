// `--report=memory --report-format=svg`: the arena of a memory plan as a picture.
#pragma once

#include <string>

namespace kiln {

class Graph;

/// An SVG picture of the arena of `graph`'s memory plan (run `plan-memory`
/// first): the schedule on x (one column per node position), the arena
/// offset on y (0 at the top), and one `<rect class="buffer">` per value with
/// a non-empty slice of the arena, spanning its live range (from its node's
/// position to its last use; to the right edge when it lives to the end of
/// the step) and its bytes. Each rectangle's `<title>` (the hover text) gives
/// the value's printed name (`%7`, `%7#1` for a multi-output fusion's) and op, its size, offset and live range. Values
/// in an argument's buffer (updates written in place) are not in the arena
/// and are not drawn. Throws kiln::Error for a graph without a plan.
std::string memoryReportSvg(const Graph &graph);

} // namespace kiln
