#include "runtime/Safetensors.h"

#include "runtime/Error.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace kiln {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20; // as the reference implementation

std::optional<DType> dtypeFromSafetensors(const std::string &name) {
  if (name == "F32") return DType::F32;
  if (name == "F64") return DType::F64;
  if (name == "BF16") return DType::BF16;
  if (name == "F16") return DType::F16;
  if (name == "I32") return DType::I32;
  if (name == "I64") return DType::I64;
  if (name == "BOOL") return DType::I1;
  return std::nullopt;
}

} // namespace

const char *safetensorsDTypeName(DType t) {
  switch (t) {
  case DType::F32: return "F32";
  case DType::F64: return "F64";
  case DType::BF16: return "BF16";
  case DType::F16: return "F16";
  case DType::I32: return "I32";
  case DType::I64: return "I64";
  case DType::I1: return "BOOL";
  }
  return "?";
}

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throwError(path, std::string("cannot open file: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad())
    throwError(path, "cannot read file");
  return ss.str();
}

TensorMap parseSafetensors(const std::string &bytes, const std::string &file) {
  if (bytes.size() < 8)
    throwError(file, "truncated safetensors file: " + std::to_string(bytes.size()) +
                         " bytes, the header length alone needs 8");
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i)
    headerLen = (headerLen << 8) | uint8_t(bytes[size_t(i)]);
  if (headerLen > kMaxHeaderBytes || headerLen > bytes.size() - 8)
    throwError(file, "safetensors header length " + std::to_string(headerLen) +
                         " exceeds the file size (" + std::to_string(bytes.size()) + " bytes)");
  if (findDeepJsonNesting(std::string_view(bytes).substr(8, headerLen)) != std::string::npos)
    throwError(file, "safetensors header nested deeper than " + std::to_string(kMaxJsonDepth) +
                         " levels");
  nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8,
                                                bytes.begin() + 8 + std::ptrdiff_t(headerLen),
                                                nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    throwError(file, "safetensors header is not a JSON object");
  uint64_t dataSize = bytes.size() - 8 - headerLen;
  const char *data = bytes.data() + 8 + headerLen;

  TensorMap tensors;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &name = it.key();
    if (name == "__metadata__")
      continue;
    std::string where = file + ": tensor '" + name + "'";
    const nlohmann::json &entry = it.value();
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      throwError(where, "expected an object with 'dtype', 'shape' and 'data_offsets'");
    const nlohmann::json &dt = entry["dtype"];
    std::optional<DType> dtype = dt.is_string() ? dtypeFromSafetensors(dt.get<std::string>())
                                                : std::nullopt;
    if (!dtype)
      throwError(where, "unsupported dtype " + dt.dump() +
                            " (expected F32, F64, BF16, F16, I32, I64 or BOOL)");
    const nlohmann::json &shapeJson = entry["shape"];
    if (!shapeJson.is_array())
      throwError(where, "'shape' must be an array of non-negative integers");
    std::vector<int64_t> dims;
    for (const nlohmann::json &d : shapeJson) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throwError(where, "'shape' must be an array of non-negative integers, got " +
                              shapeJson.dump());
      dims.push_back(d.get<int64_t>());
    }
    int64_t numElements = checkedNumElements(dims);
    if (numElements < 0)
      throwError(where, "shape " + shapeJson.dump() + " is too large");
    const nlohmann::json &offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      throwError(where, "'data_offsets' must be two non-negative integers");
    uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > dataSize)
      throwError(where, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                            "] lie outside the " + std::to_string(dataSize) + " data bytes");
    uint64_t expected = uint64_t(numElements) * dtypeSize(*dtype);
    if (end - begin != expected)
      throwError(where, "holds " + std::to_string(end - begin) + " bytes but " +
                            std::string(dtypeName(*dtype)) + Shape(dims).toString() + " needs " +
                            std::to_string(expected));
    HostTensor t(*dtype, Shape(dims));
    if (expected)
      std::memcpy(t.data(), data + begin, expected);
    if (*dtype == DType::I1)
      for (int64_t i = 0; i < numElements; ++i)
        t.dataAs<uint8_t>()[i] = t.dataAs<uint8_t>()[i] != 0;
    tensors.emplace(name, std::move(t));
  }
  return tensors;
}

size_t findDeepJsonNesting(std::string_view json) {
  int depth = 0;
  bool inString = false;
  for (size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::string_view::npos;
}

TensorMap readSafetensors(const std::string &path) { return parseSafetensors(readFile(path), path); }

std::string serializeSafetensors(const TensorMap &tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  uint64_t offset = 0;
  for (const auto &[name, t] : tensors) {
    nlohmann::ordered_json entry;
    entry["dtype"] = safetensorsDTypeName(t.dtype());
    entry["shape"] = t.shape().dims();
    entry["data_offsets"] = {offset, offset + t.byteSize()};
    header[name] = entry;
    offset += t.byteSize();
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8)
    text += ' ';
  std::string out(8, '\0');
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i)
    out[size_t(i)] = char((len >> (8 * i)) & 0xff);
  out += text;
  out.reserve(out.size() + offset);
  for (const auto &[name, t] : tensors)
    out.append(static_cast<const char *>(t.data()), t.byteSize());
  return out;
}

void writeFileAtomically(const std::string &path, const std::string &bytes) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f)
    throwError(path, std::string("cannot write file: ") + std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = (std::fflush(f) == 0) && ok;
  ok = (::fsync(fileno(f)) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throwError(path, "cannot write file: " + std::string(std::strerror(errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throwError(path, std::string("cannot replace file: ") + std::strerror(err));
  }
}

void writeSafetensors(const std::string &path, const TensorMap &tensors) {
  writeFileAtomically(path, serializeSafetensors(tensors));
}

} // namespace kiln
