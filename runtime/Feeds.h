// Feed lists (`--inputs` of `kiln run` and of AOT executables).
#pragma once

#include "runtime/Safetensors.h"

#include <functional>
#include <string>

namespace kiln {

/// The tensors of a comma list of entries, each a safetensors file or
/// `NAME=FILE.npy` (an entry ending in `.npy` is the latter). `check` sees
/// each entry's tensors with the file they came from, and throws for a
/// tensor that does not fit; a name given twice is an error.
TensorMap readFeedList(const std::string &spec,
                       const std::function<void(const TensorMap &, const std::string &)> &check);

} // namespace kiln
