// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
#pragma once

#include "runtime/Tensor.h"

#include <map>
#include <string>
#include <string_view>

namespace kiln {

/// Tensors by name, in name order (deterministic files and printing).
using TensorMap = std::map<std::string, HostTensor>;

/// Reads every tensor of a safetensors file. Every header field is checked
/// against the file size before anything is allocated; any defect is a
/// `kiln::Error` naming the file and the tensor.
TensorMap readSafetensors(const std::string &path);
/// The same from bytes in memory; `displayName` is used in messages.
TensorMap parseSafetensors(const std::string &bytes, const std::string &displayName);

/// Writes `tensors` to `path` through a temporary file in the same folder that
/// is renamed over `path` only when complete, so a failed write never damages
/// an existing file.
void writeSafetensors(const std::string &path, const TensorMap &tensors);
/// The file image `writeSafetensors` would write.
std::string serializeSafetensors(const TensorMap &tensors);

/// Safetensors' dtype names: F32 F64 BF16 F16 I32 I64 BOOL.
const char *safetensorsDTypeName(DType t);

/// nlohmann copies, compares and prints JSON values recursively, so a deep
/// enough nesting overflows the stack: readers refuse files nested deeper than
/// this (a graph file nests about ten levels, a safetensors header three).
inline constexpr int kMaxJsonDepth = 64;
/// The offset of the first `[` or `{` of `json` nested deeper than
/// kMaxJsonDepth (strings skipped), or npos.
size_t findDeepJsonNesting(std::string_view json);

/// Writes `bytes` to `path` atomically (temporary file, then rename).
void writeFileAtomically(const std::string &path, const std::string &bytes);
/// Reads a whole file; a missing or unreadable file is a located error.
std::string readFile(const std::string &path);

} // namespace kiln
