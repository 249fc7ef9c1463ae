// The `.kir` text form of graphs (syntax: docs/ir.md).
#pragma once

#include <string>

namespace kiln {

class Graph;
struct Module;

/// Prints a graph in `.kir` syntax. Deterministic: arguments keep their names,
/// node results are numbered %0, %1, ... in order.
std::string printGraph(const Graph &graph);
/// Prints every graph of a module, separated by a blank line.
std::string printModule(const Module &module);

} // namespace kiln
