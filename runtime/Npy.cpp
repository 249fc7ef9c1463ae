#include "runtime/Npy.h"

#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <cstdio>
#include <cstring>
#include <utility>
#include <optional>

namespace kiln {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
/// numpy aligns the start of the data to this many bytes.
constexpr size_t kArrayAlign = 64;
/// numpy pads the header so the first dimension can grow to this many digits in place.
constexpr size_t kGrowthAxisMaxDigits = 21;

struct NpyDType {
  const char *descr;
  DType dtype;
};
constexpr NpyDType kNpyDTypes[] = {{"<f4", DType::F32}, {"<f8", DType::F64}, {"<f2", DType::F16},
                                   {"<i4", DType::I32}, {"<i8", DType::I64}, {"|b1", DType::I1}};

std::optional<DType> dtypeFromDescr(const std::string &descr) {
  for (const NpyDType &d : kNpyDTypes)
    if (descr == d.descr)
      return d.dtype;
  return std::nullopt;
}

const char *descrOf(DType t) {
  for (const NpyDType &d : kNpyDTypes)
    if (d.dtype == t)
      return d.descr;
  return nullptr;
}

/// The fields of the header dict, unset until read.
struct NpyHeader {
  std::optional<std::string> descr;
  std::optional<bool> fortranOrder;
  std::optional<std::vector<int64_t>> shape;
  std::string shapeText; // as written, for messages
  bool negativeDim = false;
};

/// A recursive-descent reader of the Python dict literal numpy writes. Only
/// what a `.npy` header can hold is accepted: string keys; string, True,
/// False and tuple-of-integer values. Messages give the byte offset in the file.
class HeaderParser {
public:
  HeaderParser(const std::string &bytes, size_t begin, size_t end, const std::string &file)
      : bytes_(bytes), pos_(begin), end_(end), file_(file) {}

  NpyHeader parse() {
    NpyHeader header;
    expect('{', "'{' opening the header dict");
    skipSpace();
    while (peek() != '}') {
      size_t keyAt = pos_;
      std::string key = parseString("a quoted key");
      skipSpace();
      expect(':', "':' after the key");
      skipSpace();
      if (key == "descr") {
        checkFirst(header.descr.has_value(), key, keyAt);
        if (peek() == '[')
          fail(pos_, "structured dtypes (a list as 'descr') are not supported");
        header.descr = parseString("a dtype string");
      } else if (key == "fortran_order") {
        checkFirst(header.fortranOrder.has_value(), key, keyAt);
        header.fortranOrder = parseBool();
      } else if (key == "shape") {
        checkFirst(header.shape.has_value(), key, keyAt);
        header.shape = parseShape(header);
      } else {
        fail(keyAt, "unexpected key '" + key +
                        "' (a .npy header holds 'descr', 'fortran_order' and 'shape')");
      }
      skipSpace();
      if (peek() == ',') {
        ++pos_;
        skipSpace();
      } else if (peek() != '}') {
        fail(pos_, "expected ',' or '}' after the value of '" + key + "'");
      }
    }
    ++pos_;
    // numpy pads with spaces and ends with a newline; nothing else may follow the dict.
    skipSpace();
    if (pos_ != end_)
      fail(pos_, "unexpected " + describeByte() + " after the header dict");
    return header;
  }

private:
  int peek() const { return pos_ < end_ ? uint8_t(bytes_[pos_]) : -1; }

  std::string describeByte() const {
    int c = peek();
    if (c < 0)
      return "end of header";
    if (c >= 0x20 && c < 0x7f)
      return std::string("'") + char(c) + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
    return buf;
  }

  [[noreturn]] void fail(size_t at, const std::string &what) const {
    throwError(file_, "malformed .npy header at byte " + std::to_string(at) + ": " + what);
  }

  void skipSpace() {
    while (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')
      ++pos_;
  }

  void expect(char c, const char *what) {
    if (peek() != uint8_t(c))
      fail(pos_, std::string("expected ") + what + ", got " + describeByte());
    ++pos_;
  }

  void checkFirst(bool alreadySet, const std::string &key, size_t at) const {
    if (alreadySet)
      fail(at, "key '" + key + "' appears twice");
  }

  std::string parseString(const char *what) {
    int quote = peek();
    if (quote != '\'' && quote != '"')
      fail(pos_, std::string("expected ") + what + ", got " + describeByte());
    size_t start = ++pos_;
    while (peek() != quote) {
      if (peek() < 0 || peek() == '\n')
        fail(start - 1, "unterminated string");
      if (peek() == '\\')
        fail(pos_, "escape sequences are not supported in a .npy header");
      ++pos_;
    }
    return bytes_.substr(start, pos_++ - start);
  }

  bool parseBool() {
    for (const char *word : {"True", "False"}) {
      size_t n = std::strlen(word);
      if (end_ - pos_ >= n && bytes_.compare(pos_, n, word) == 0) {
        pos_ += n;
        return word[0] == 'T';
      }
    }
    fail(pos_, "expected True or False as 'fortran_order', got " + describeByte());
  }

  /// `()`, `(3,)`, `(2, 3)` or `(2, 3,)`: as Python, one element needs its comma.
  std::vector<int64_t> parseShape(NpyHeader &header) {
    size_t start = pos_;
    expect('(', "a tuple as 'shape'");
    std::vector<int64_t> dims;
    bool trailingComma = false;
    skipSpace();
    while (peek() != ')') {
      dims.push_back(parseDim(header));
      skipSpace();
      trailingComma = peek() == ',';
      if (trailingComma) {
        ++pos_;
        skipSpace();
      } else if (peek() != ')') {
        fail(pos_, "expected ',' or ')' in 'shape', got " + describeByte());
      }
    }
    ++pos_;
    header.shapeText = bytes_.substr(start, pos_ - start);
    if (dims.size() == 1 && !trailingComma)
      fail(start, "'shape' must be a tuple, got " + header.shapeText + " (write (N,))");
    return dims;
  }

  /// A decimal integer; values past kMaxElements saturate there plus one, so
  /// checkedNumElements rejects them without overflow.
  int64_t parseDim(NpyHeader &header) {
    bool negative = peek() == '-';
    if (negative)
      ++pos_;
    if (peek() < '0' || peek() > '9')
      fail(pos_, "expected an integer in 'shape', got " + describeByte());
    int64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      if (v <= kMaxElements)
        v = v * 10 + (peek() - '0');
      ++pos_;
    }
    if (negative && v != 0)
      header.negativeDim = true;
    return v > kMaxElements ? kMaxElements + 1 : v;
  }

  const std::string &bytes_;
  size_t pos_, end_;
  const std::string &file_;
};

std::string dtypeList() {
  std::string s;
  size_t n = sizeof kNpyDTypes / sizeof *kNpyDTypes;
  for (size_t i = 0; i < n; ++i)
    s += std::string(i == 0 ? "" : i + 1 == n ? " or " : ", ") + kNpyDTypes[i].descr;
  return s;
}

std::string noNpyDType(DType t) {
  return std::string(dtypeName(t)) +
         " has no .npy dtype (numpy has no bfloat16; cast to f32 or use safetensors)";
}

} // namespace

HostTensor parseNpy(const std::string &bytes, const std::string &file) {
  if (bytes.compare(0, std::min(bytes.size(), kMagicSize), kMagic,
                    std::min(bytes.size(), kMagicSize)) != 0)
    throwError(file, "not a .npy file (it does not start with the magic string \\x93NUMPY)");
  if (bytes.size() < 10)
    throwError(file, "truncated .npy file: " + std::to_string(bytes.size()) +
                         " bytes, the magic string and header length alone need 10");
  int major = uint8_t(bytes[6]), minor = uint8_t(bytes[7]);
  if (minor != 0 || major < 1 || major > 3)
    throwError(file, "unsupported .npy version " + std::to_string(major) + "." +
                         std::to_string(minor) + " (Kiln reads 1.0, 2.0 and 3.0)");
  size_t lengthBytes = major == 1 ? 2 : 4;
  size_t prefix = 8 + lengthBytes;
  if (bytes.size() < prefix)
    throwError(file, "truncated .npy file: " + std::to_string(bytes.size()) + " bytes, a version " +
                         std::to_string(major) + ".0 header length alone needs " +
                         std::to_string(prefix));
  uint64_t headerLen = 0;
  for (size_t i = lengthBytes; i-- > 0;)
    headerLen = (headerLen << 8) | uint8_t(bytes[8 + i]);
  if (headerLen > bytes.size() - prefix)
    throwError(file, ".npy header length " + std::to_string(headerLen) +
                         " exceeds the file size (" + std::to_string(bytes.size()) + " bytes)");
  size_t dataStart = prefix + size_t(headerLen);
  NpyHeader header = HeaderParser(bytes, prefix, dataStart, file).parse();

  for (auto [present, key] : {std::pair{header.descr.has_value(), "descr"},
                               std::pair{header.fortranOrder.has_value(), "fortran_order"},
                               std::pair{header.shape.has_value(), "shape"}})
    if (!present)
      throwError(file, std::string(".npy header lacks '") + key + "'");
  std::optional<DType> dtype = dtypeFromDescr(*header.descr);
  if (!dtype) {
    const std::string &d = *header.descr;
    if (d.size() > 1 && d[0] == '>' && dtypeFromDescr("<" + d.substr(1)))
      throwError(file, "big-endian dtype '" + d + "' is not supported (save it as '<" +
                           d.substr(1) + "')");
    throwError(file, "unsupported dtype '" + d + "' (expected " + dtypeList() + ")");
  }
  if (*header.fortranOrder)
    throwError(file, "Fortran-order arrays are not supported (save np.ascontiguousarray(a))");
  if (header.negativeDim)
    throwError(file, "'shape' must hold non-negative integers, got " + header.shapeText);
  const std::vector<int64_t> &dims = *header.shape;
  int64_t numElements = checkedNumElements(dims);
  if (numElements < 0)
    throwError(file, "shape " + header.shapeText + " is too large");
  uint64_t dataSize = bytes.size() - dataStart;
  uint64_t expected = uint64_t(numElements) * dtypeSize(*dtype);
  if (dataSize != expected)
    throwError(file, "holds " + std::to_string(dataSize) + " data bytes but " +
                         std::string(dtypeName(*dtype)) + Shape(dims).toString() + " needs " +
                         std::to_string(expected));

  HostTensor t(*dtype, Shape(dims));
  if (expected)
    std::memcpy(t.data(), bytes.data() + dataStart, expected);
  if (*dtype == DType::I1)
    for (int64_t i = 0; i < numElements; ++i)
      t.dataAs<uint8_t>()[i] = t.dataAs<uint8_t>()[i] != 0;
  return t;
}

HostTensor readNpy(const std::string &path) { return parseNpy(readFile(path), path); }

std::string serializeNpy(const HostTensor &t) {
  const char *descr = descrOf(t.dtype());
  if (!descr)
    throwError("", noNpyDType(t.dtype()));
  // Byte for byte what numpy.save writes (numpy/lib/format.py: _write_array_header).
  const std::vector<int64_t> &dims = t.shape().dims();
  std::string shape = "(";
  for (size_t i = 0; i < dims.size(); ++i)
    shape += (i ? ", " : "") + std::to_string(dims[i]);
  shape += dims.size() == 1 ? ",)" : ")";
  std::string header =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  if (!dims.empty())
    header.append(kGrowthAxisMaxDigits - std::to_string(dims[0]).size(), ' ');

  std::string out;
  for (int major : {1, 2}) {
    size_t lengthBytes = major == 1 ? 2 : 4;
    size_t unpadded = 8 + lengthBytes + header.size() + 1;
    size_t pad = kArrayAlign - unpadded % kArrayAlign;
    uint64_t headerLen = header.size() + pad + 1;
    if (major == 1 && headerLen > 0xffff)
      continue;
    out.assign(kMagic, kMagicSize);
    out += char(major);
    out += char(0);
    for (size_t i = 0; i < lengthBytes; ++i)
      out += char((headerLen >> (8 * i)) & 0xff);
    out += header;
    out.append(pad, ' ');
    out += '\n';
    break;
  }
  out.append(static_cast<const char *>(t.data()), t.byteSize());
  return out;
}

void writeNpy(const std::string &path, const HostTensor &t) {
  if (!descrOf(t.dtype()))
    throwError(path, noNpyDType(t.dtype()));
  writeFileAtomically(path, serializeNpy(t));
}

} // namespace kiln
