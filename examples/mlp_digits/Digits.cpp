#include "examples/mlp_digits/Digits.h"

#include "runtime/Error.h"
#include "runtime/Random.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace kiln::examples {

std::string defaultDigitsPath() { return std::string(KILN_EXAMPLES_DIR) + "/data/digits.csv.gz"; }

namespace {

struct GzCloser {
  void operator()(gzFile_s *file) const { gzclose(file); }
};

/// Throws when reading (or decompressing) the file failed.
void checkRead(gzFile_s *file, const std::string &path) {
  int status = Z_OK;
  const char *message = gzerror(file, &status);
  if (status == Z_OK || status == Z_STREAM_END)
    return;
  std::string text = message;
  if (text.compare(0, path.size() + 2, path + ": ") == 0) // zlib names the file itself
    text.erase(0, path.size() + 2);
  throwError(path, "cannot read: " + text);
}

/// Appends the 64 scaled pixels and the label of one CSV row, or throws at `where`.
void parseRow(const char *line, const std::string &where, DigitsDataset &out) {
  const int64_t fields = DigitsDataset::kPixels + 1;
  const char *p = line;
  for (int64_t field = 0; field < fields; ++field) {
    char *end = nullptr;
    errno = 0;
    long v = std::strtol(p, &end, 10);
    if (end == p || errno == ERANGE)
      throwError(where, "field " + std::to_string(field + 1) + " is not an integer");
    bool last = field == fields - 1;
    if (last) {
      if (v < 0 || v >= DigitsDataset::kClasses)
        throwError(where, "label " + std::to_string(v) + " is outside 0..9");
      out.labels.push_back(int32_t(v));
    } else {
      if (v < 0 || v > 16)
        throwError(where, "pixel " + std::to_string(field + 1) + " is " + std::to_string(v) +
                              ", outside 0..16");
      out.pixels.push_back(float(v) / 16.0f);
    }
    p = end;
    if (last)
      break;
    if (*p != ',')
      throwError(where, "expected " + std::to_string(fields) + " fields, got " +
                            std::to_string(field + 1));
    ++p;
  }
  while (*p == '\r' || *p == '\n' || *p == ' ')
    ++p;
  if (*p)
    throwError(where, "expected " + std::to_string(fields) + " fields, got more");
}

} // namespace

DigitsDataset loadDigits(const std::string &path) {
  // gzopen reads plain files unchanged, so an uncompressed CSV works as well.
  std::unique_ptr<gzFile_s, GzCloser> file(gzopen(path.c_str(), "rb"));
  if (!file)
    throwError(path, std::string("cannot open: ") + std::strerror(errno));
  DigitsDataset data;
  char line[4096];
  for (int lineNo = 1; gzgets(file.get(), line, sizeof line); ++lineNo) {
    std::string where = path + ":" + std::to_string(lineNo);
    size_t length = std::strlen(line);
    if (line[length - 1] != '\n') {
      if (length == sizeof line - 1)
        throwError(where, "line too long");
      checkRead(file.get(), path); // a last line without '\n' may be cut short by an error
    }
    if (line[0] == '\n' || (line[0] == '\r' && line[1] == '\n'))
      continue;
    parseRow(line, where, data);
  }
  checkRead(file.get(), path);
  if (data.size() == 0)
    throwError(path, "no rows");
  return data;
}

uint64_t digitsKey(uint64_t seed, const std::string &purpose) {
  return (seed * 0x9E3779B97F4A7C15ull) ^ hashName(purpose.data(), purpose.size());
}

std::vector<int64_t> shuffledIndices(int64_t n, uint64_t key) {
  std::vector<int64_t> order(size_t(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i)
    order[size_t(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    std::array<uint32_t, 4> bits = philox4x32(key, uint64_t(i));
    uint64_t r = (uint64_t(bits[0]) << 32) | bits[1];
    std::swap(order[size_t(i)], order[size_t(r % uint64_t(i + 1))]);
  }
  return order;
}

namespace {

DigitsDataset selectRows(const DigitsDataset &all, const int64_t *rows, int64_t count) {
  DigitsDataset out;
  out.pixels.reserve(size_t(count * DigitsDataset::kPixels));
  out.labels.reserve(size_t(count));
  for (int64_t i = 0; i < count; ++i) {
    auto first = all.pixels.begin() + rows[i] * DigitsDataset::kPixels;
    out.pixels.insert(out.pixels.end(), first, first + DigitsDataset::kPixels);
    out.labels.push_back(all.labels[size_t(rows[i])]);
  }
  return out;
}

} // namespace

DigitsSplit splitDigits(const DigitsDataset &all, int64_t testSize, uint64_t seed) {
  if (testSize <= 0 || testSize >= all.size())
    throwError("", "the held-out set must have 1 to " + std::to_string(all.size() - 1) +
                       " rows, got " + std::to_string(testSize));
  std::vector<int64_t> order = shuffledIndices(all.size(), digitsKey(seed, "split"));
  DigitsSplit split;
  split.test = selectRows(all, order.data(), testSize);
  split.train = selectRows(all, order.data() + testSize, all.size() - testSize);
  return split;
}

HostTensor gatherImages(const DigitsDataset &data, const int64_t *rows, int64_t count) {
  HostTensor images(DType::F32, Shape{count, DigitsDataset::kPixels});
  float *out = images.dataAs<float>();
  for (int64_t i = 0; i < count; ++i)
    std::memcpy(out + i * DigitsDataset::kPixels,
                data.pixels.data() + rows[i] * DigitsDataset::kPixels,
                sizeof(float) * DigitsDataset::kPixels);
  return images;
}

HostTensor gatherLabels(const DigitsDataset &data, const int64_t *rows, int64_t count) {
  HostTensor labels(DType::I32, Shape{count});
  int32_t *out = labels.dataAs<int32_t>();
  for (int64_t i = 0; i < count; ++i)
    out[i] = data.labels[size_t(rows[i])];
  return labels;
}

} // namespace kiln::examples
