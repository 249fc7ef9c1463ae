// What a pass is: a named transformation of one graph.
#pragma once

#include <memory>
#include <string_view>

namespace kiln {

class Graph;

enum class PassResult { Unchanged, Changed };

/// A pass transforms a graph in place and says whether it changed anything.
/// A user mistake it finds (a gradient through a non-differentiable op, ...)
/// throws `kiln::Error` with a located message.
class Pass {
public:
  virtual ~Pass() = default;
  virtual std::string_view name() const = 0;
  /// One line for `--help` and docs.
  virtual std::string_view description() const = 0;
  virtual PassResult run(Graph &graph) = 0;
};

} // namespace kiln
