// Reading and writing NumPy's `.npy` format
// (numpy.lib.format): the magic `\x93NUMPY`, a version byte pair, the header
// length (2 bytes in version 1.0, 4 in 2.0 and 3.0), a Python dict literal
// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with
// spaces and a newline, then the raw elements.
#pragma once

#include "runtime/Tensor.h"

#include <string>

namespace kiln {

/// Reads one array from a `.npy` file: versions 1.0, 2.0 and 3.0; dtypes
/// `<f4 <f8 <f2 <i4 <i8 |b1`; C order and little-endian only. Every header
/// field is checked against the file size before anything is allocated; any
/// defect is a `kiln::Error` naming the file (`a.npy: error: ...`).
HostTensor readNpy(const std::string &path);
/// The same from bytes in memory; `displayName` is used in messages.
HostTensor parseNpy(const std::string &bytes, const std::string &displayName);

/// The file image of `t` as numpy writes it: version 1.0 (2.0 only when the
/// header outgrows 64 KiB), the header padded so the data starts at a multiple
/// of 64 bytes. `bf16` has no `.npy` dtype: a `kiln::Error`.
std::string serializeNpy(const HostTensor &t);
/// Writes `t` to `path` atomically (runtime/Safetensors.h: writeFileAtomically).
void writeNpy(const std::string &path, const HostTensor &t);

} // namespace kiln
