// The .npy reader and writer: round trips of every dtype, bytes exactly as
// numpy writes them (spelled out here, so numpy is not needed), and headers
// that lie about the file.
#include "runtime/Error.h"
#include "runtime/Npy.h"
#include "runtime/Safetensors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace kiln {
namespace {

std::string bytesOf(std::initializer_list<int> values) {
  std::string s;
  for (int v : values)
    s += char(v);
  return s;
}

/// The message `parseNpy` throws for `bytes`, or "no error".
std::string errorOf(const std::string &bytes) {
  try {
    parseNpy(bytes, "a.npy");
  } catch (const Error &e) {
    return e.what();
  }
  return "no error";
}

/// A version 1.0 file with `dict` as header, padded as numpy pads it.
std::string npyV1(const std::string &dict, const std::string &data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64)
    header += ' ';
  header += '\n';
  return std::string("\x93NUMPY\x01\x00", 8) + char(header.size() & 0xff) +
         char(header.size() >> 8) + header + data;
}

// 1, 2, 3, 4, 5, 6 as little-endian f32.
const std::string kF32OneToSix = bytesOf({0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40,
                                          0, 0, 0x80, 0x40, 0, 0, 0xa0, 0x40, 0, 0, 0xc0, 0x40});

TEST(Npy, RoundTripsEveryDTypeButBf16) {
  std::vector<double> values = {1.5, -2.25, 3, 0.125, -7, 42};
  for (DType t : kAllDTypes) {
    if (t == DType::BF16)
      continue;
    std::vector<double> v = values;
    if (t == DType::I1)
      v = {1, 0, 1, 1, 0, 1};
    for (const Shape &shape : {Shape{2, 3}, Shape{6}, Shape{3, 1, 2}}) {
      HostTensor a = HostTensor::fromDoubles(t, shape, v);
      HostTensor b = parseNpy(serializeNpy(a), "t.npy");
      EXPECT_EQ(b.dtype(), t) << dtypeName(t);
      EXPECT_EQ(b.shape(), shape) << dtypeName(t);
      ASSERT_EQ(b.byteSize(), a.byteSize()) << dtypeName(t);
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.byteSize()), 0) << dtypeName(t);
      EXPECT_EQ(b.toDoubles(), a.toDoubles()) << dtypeName(t);
    }
  }
  HostTensor scalar = HostTensor::fromDoubles(DType::F64, Shape{}, {2.5});
  HostTensor back = parseNpy(serializeNpy(scalar), "s.npy");
  EXPECT_EQ(back.shape().rank(), 0u);
  EXPECT_EQ(back.getDouble(0), 2.5);
  HostTensor empty(DType::I32, Shape{0, 4});
  EXPECT_EQ(parseNpy(serializeNpy(empty), "e.npy").shape(), (Shape{0, 4}));
}

TEST(Npy, WritesAndReadsFiles) {
  std::string path = ::testing::TempDir() + "/npy-test-" + std::to_string(::getpid()) + ".npy";
  HostTensor a = HostTensor::fromDoubles(DType::F16, Shape{2, 2}, {0.5, -1, 65504, 3});
  writeNpy(path, a);
  HostTensor b = readNpy(path);
  EXPECT_EQ(b.typeString(), "f16[2,2]");
  EXPECT_EQ(b.toDoubles(), a.toDoubles());
  std::remove(path.c_str());
  try {
    readNpy(path);
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), path + ": error: cannot open file: No such file or directory");
  }
}

TEST(Npy, Bf16HasNoNpyDType) {
  HostTensor t(DType::BF16, Shape{2});
  try {
    writeNpy("/tmp/never-written.npy", t);
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()),
              "/tmp/never-written.npy: error: bf16 has no .npy dtype (numpy has no bfloat16; cast "
              "to f32 or use safetensors)");
  }
  EXPECT_THROW(serializeNpy(t), Error);
}

// np.save('a.npy', np.array([[1, 2, 3], [4, 5, 6]], dtype='<f4')) with numpy 1.24:
// 10 bytes of prefix, a 118-byte header (the dict, 58 spaces, a newline), the data.
const std::string kNumpyV1 =
    std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + std::string(58, ' ') + "\n" +
    kF32OneToSix;

TEST(Npy, ReadsWhatNumpyWritesInVersion1) {
  ASSERT_EQ(kNumpyV1.size(), 128u + 24u);
  HostTensor t = parseNpy(kNumpyV1, "a.npy");
  EXPECT_EQ(t.typeString(), "f32[2,3]");
  EXPECT_EQ(t.toDoubles(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  // And writes the same bytes.
  EXPECT_EQ(serializeNpy(t), kNumpyV1);
}

TEST(Npy, ReadsWhatNumpyWritesInVersions2And3) {
  // np.lib.format.write_array(f, a, version=(2, 0)): a 4-byte header length, 116 bytes.
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + std::string(56, ' ') + "\n";
  std::string v2 = std::string("\x93NUMPY\x02\x00\x74\x00\x00\x00", 12) + header + kF32OneToSix;
  HostTensor t = parseNpy(v2, "a.npy");
  EXPECT_EQ(t.typeString(), "f32[2,3]");
  EXPECT_EQ(t.toDoubles(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  std::string v3 = v2;
  v3[6] = 3; // 3.0 differs only in the header's encoding (UTF-8)
  EXPECT_EQ(parseNpy(v3, "a.npy").toDoubles(), t.toDoubles());
}

TEST(Npy, ReadsOtherSpellingsOfTheHeader) {
  // Double quotes, another key order, no trailing comma, a 1-tuple, bools as any nonzero byte.
  HostTensor b = parseNpy(npyV1("{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"|b1\"}",
                                bytesOf({0, 2, 1})),
                          "a.npy");
  EXPECT_EQ(b.typeString(), "i1[3]");
  EXPECT_EQ(b.toDoubles(), (std::vector<double>{0, 1, 1}));
  HostTensor s = parseNpy(npyV1("{'descr':'<i8','fortran_order':False,'shape':()}",
                                bytesOf({0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
                          "a.npy");
  EXPECT_EQ(s.typeString(), "i64[]");
  EXPECT_EQ(s.getInt(0), -2);
}

TEST(Npy, RejectsBadFilesWithLocatedMessages) {
  const std::string dict23 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  struct Case {
    std::string bytes, message;
  };
  std::vector<Case> cases = {
      {"", "a.npy: error: truncated .npy file: 0 bytes, the magic string and header length alone "
           "need 10"},
      {std::string("\x93NUMPY\x01", 7),
       "a.npy: error: truncated .npy file: 7 bytes, the magic string and header length alone "
       "need 10"},
      {"PK\x03\x04 a zip file, not npy",
       "a.npy: error: not a .npy file (it does not start with the magic string \\x93NUMPY)"},
      {std::string("\x93NUMPY\x04\x00\x10\x00", 10) + std::string(16, ' '),
       "a.npy: error: unsupported .npy version 4.0 (Kiln reads 1.0, 2.0 and 3.0)"},
      {std::string("\x93NUMPY\x02\x00\x10\x00", 10),
       "a.npy: error: truncated .npy file: 10 bytes, a version 2.0 header length alone needs 12"},
      // Header lengths that claim more than the file holds.
      {std::string("\x93NUMPY\x01\x00\xff\xff", 10) + "{}",
       "a.npy: error: .npy header length 65535 exceeds the file size (12 bytes)"},
      {std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12) + "{}",
       "a.npy: error: .npy header length 4294967295 exceeds the file size (14 bytes)"},
      // A shape whose data would need terabytes, in a file of 152 bytes: no allocation.
      {npyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }",
             kF32OneToSix),
       "a.npy: error: shape (1099511627776, 1099511627776) is too large"},
      {npyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", ""),
       "a.npy: error: shape (99999999999999999999999,) is too large"},
      {npyV1("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000,), }", kF32OneToSix),
       "a.npy: error: holds 24 data bytes but f64[1000000000] needs 8000000000"},
      {npyV1(dict23, kF32OneToSix.substr(0, 20)),
       "a.npy: error: holds 20 data bytes but f32[2,3] needs 24"},
      {npyV1(dict23, kF32OneToSix + "x"),
       "a.npy: error: holds 25 data bytes but f32[2,3] needs 24"},
      {npyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", ""),
       "a.npy: error: 'shape' must hold non-negative integers, got (2, -3)"},
      {npyV1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", kF32OneToSix),
       "a.npy: error: Fortran-order arrays are not supported (save np.ascontiguousarray(a))"},
      {npyV1("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", kF32OneToSix),
       "a.npy: error: big-endian dtype '>f4' is not supported (save it as '<f4')"},
      {npyV1("{'descr': '<u1', 'fortran_order': False, 'shape': (2, 3), }", "abcdef"),
       "a.npy: error: unsupported dtype '<u1' (expected <f4, <f8, <f2, <i4, <i8 or |b1)"},
      {npyV1("{'descr': '<V2', 'fortran_order': False, 'shape': (3,), }", "abcdef"),
       "a.npy: error: unsupported dtype '<V2' (expected <f4, <f8, <f2, <i4, <i8 or |b1)"},
      {npyV1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", "abcd"),
       "a.npy: error: malformed .npy header at byte 20: structured dtypes (a list as 'descr') are "
       "not supported"},
      {npyV1("{'descr': '<f4', 'shape': (2, 3), }", kF32OneToSix),
       "a.npy: error: .npy header lacks 'fortran_order'"},
      {npyV1("{'descr': '<f4', 'descr': '<f4', }", ""),
       "a.npy: error: malformed .npy header at byte 27: key 'descr' appears twice"},
      {npyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", kF32OneToSix),
       "a.npy: error: malformed .npy header at byte 66: unexpected key 'x' (a .npy header holds "
       "'descr', 'fortran_order' and 'shape')"},
      {npyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", kF32OneToSix),
       "a.npy: error: malformed .npy header at byte 60: 'shape' must be a tuple, got (6) (write "
       "(N,))"},
      {npyV1("{'descr': '<f4', 'fortran_order': 0, 'shape': (6,), }", kF32OneToSix),
       "a.npy: error: malformed .npy header at byte 44: expected True or False as 'fortran_order', "
       "got '0'"},
      {npyV1("{'descr': '<f4' 'fortran_order': False}", ""),
       "a.npy: error: malformed .npy header at byte 26: expected ',' or '}' after the value of "
       "'descr'"},
      {npyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), } x", kF32OneToSix),
       "a.npy: error: malformed .npy header at byte 68: unexpected 'x' after the header dict"},
      {npyV1("{'descr': '<f\\x34', }", ""),
       "a.npy: error: malformed .npy header at byte 23: escape sequences are not supported in a "
       ".npy header"},
      {std::string("\x93NUMPY\x01\x00\x05\x00{'des", 15),
       "a.npy: error: malformed .npy header at byte 11: unterminated string"},
  };
  for (const Case &c : cases)
    EXPECT_EQ(errorOf(c.bytes), c.message);
}

} // namespace
} // namespace kiln
