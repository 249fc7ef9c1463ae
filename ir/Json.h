// The JSON form of graphs: a 1:1 image of the IR for machine-generated graphs
// (`{"format": "kiln.graph", "version": 1, ...}`, field list in docs/ir.md).
#pragma once

#include <string>

namespace kiln {

struct Module;

/// Reads and verifies a `.json` graph file. Weights named by its `"weights"`
/// field are read from that safetensors file (relative to the JSON file's
/// folder) into `Module::weights`. Mistakes throw `kiln::Error` located by a
/// JSON pointer (`model.json:/graphs/0/nodes/3/op: error: ...`) or, for
/// malformed JSON, by line and column.
Module readJsonModule(const std::string &path);
/// The same from text; `baseDir` resolves the weights file.
Module parseJsonModule(const std::string &text, const std::string &fileName,
                       const std::string &baseDir);

/// The JSON text of `module`. `weightsFile`, when not empty, is recorded as
/// the `"weights"` field (the caller writes that file).
std::string printJsonModule(const Module &module, const std::string &weightsFile = "");

/// Writes `path` (and, when the module has weights, `STEM.weights.safetensors`
/// beside it), each atomically.
void writeJsonModule(const std::string &path, const Module &module);

} // namespace kiln
