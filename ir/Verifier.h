// Type inference and verification of graphs.
#pragma once

#include "ir/Graph.h"

#include <optional>
#include <string>
#include <vector>

namespace kiln {

/// The attribute every op may carry: its slice of memory after planning, a
/// list of slices (one per result) for a multi-output node.
inline constexpr const char *kBufferAttr = "buffer";

/// The `buffer` slices of `node`, one per result; empty when it has none (or
/// a malformed one, which the verifier reports).
std::vector<BufferSlice> nodeBuffers(const Node &node);
/// Sets `buffer`: one slice, or a list for a node with several results.
void setNodeBuffers(Node &node, const std::vector<BufferSlice> &slices);

/// Checks `attrs` against the op's attribute list in OpKind.def: no unknown
/// name, every required one present, each of the declared kind. Returns an
/// empty string when they are fine, otherwise the problem.
std::string checkAttributes(OpKind kind, const AttrMap &attrs);

/// The result type of `kind` over operands of `operandTypes` with `attrs`
/// (already checked by `checkAttributes`). For ops whose result type cannot be
/// inferred (`GivenType` in OpKind.def) `given` is the written type: it is
/// checked against the operands and returned. On a type error returns nullopt
/// and sets `error` to the problem (without location).
std::optional<TensorType> inferType(OpKind kind, const std::vector<TensorType> &operandTypes,
                                    const AttrMap &attrs, const TensorType *given,
                                    std::string &error);

/// Checks that a type is well formed: dims >= 0 and not absurdly large.
std::string checkType(const TensorType &type);

/// Verifies a graph: unique argument names, every operand defined before its
/// use, attributes and types of every node (the written type must equal the
/// inferred one), results, and updates (target a param or state argument once,
/// with a source of its exact type). Throws `kiln::Error` at the first problem,
/// located at the node (`file:line:col`, or `@graph: %N (op)` for built graphs).
void verifyGraph(const Graph &graph);
void verifyModule(const Module &module);
/// The checks of a `fusion` node's body (called by verifyGraph).
void verifyFusionBody(const Graph &graph, const Node &node);

/// True for `[A-Za-z_][A-Za-z0-9_.]*`.
bool isIdentifier(const std::string &s);

/// Where `node` is, for messages: its source location, or `@graph: %N (op)`.
std::string describeNodeLocation(const Graph &graph, const Node &node);

} // namespace kiln
