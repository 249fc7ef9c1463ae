// What the `kiln` tool's commands share (tools/kiln.cpp: print, compile,
// check-grad; tools/RunCommand.cpp: run).
#pragma once

#include "CommandLine.h"
#include "compiler/TrainingStep.h"
#include "ir/Graph.h"
#include "ir/ModuleFile.h"
#include "runtime/Safetensors.h"
#include "runtime/Tensor.h"

#include <string>

namespace kiln {
namespace cli {

/// `loss: f32[] = 2.302585`, or min/mean/max for larger tensors.
std::string summarize(const std::string &name, const HostTensor &t);

/// The graph named `name` of `module` (its only graph when `name` is empty);
/// an error located at `file` otherwise.
const Graph &selectGraph(const Module &module, const std::string &name, const std::string &file);

/// Checks that every tensor of `source` names an argument of `graph` and has its type.
void checkFeeds(const Graph &graph, const TensorMap &tensors, const std::string &source);

/// The tensors named by `--inputs`: a comma list of entries, each a
/// safetensors file or `NAME=FILE.npy` (an entry ending in `.npy` is the
/// latter). Each is checked against `graph` where it was read; a name given
/// twice is an error.
TensorMap loadFeeds(const Graph &graph, const std::string &spec);

/// Option `name` as a finite number (`fallback` when absent).
double getDouble(const CommandLine &cl, const std::string &name, double fallback);

/// The optimizer of `--train` (`--optimizer`, `--lr`, `--momentum`, ...).
OptimizerOptions optimizerOptions(const CommandLine &cl);

/// `kiln run` (tools/RunCommand.cpp).
int runCommand(const CommandLine &cl);

} // namespace cli
} // namespace kiln
