// Comparing a backend's tensor with a reference, shared by the backend tests.
#pragma once

#include "runtime/Tensor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace kiln {

/// Integers and i1 exactly; floats within `rel` relative to max(1, |want|)
/// (so absolute near zero); a NaN where the reference has one.
inline void expectTensorClose(const HostTensor &got, const HostTensor &want, double rel, const std::string &what,
                              const char *backend) {
  ASSERT_EQ(got.numElements(), want.numElements()) << what;
  for (int64_t i = 0; i < want.numElements(); ++i) {
    if (!isFloat(got.dtype())) {
      ASSERT_EQ(got.getInt(i), want.getInt(i)) << what << "[" << i << "]";
      continue;
    }
    double a = got.getDouble(i), b = want.getDouble(i);
    if (std::isnan(b)) {
      ASSERT_TRUE(std::isnan(a)) << what << "[" << i << "]";
      continue;
    }
    ASSERT_LE(std::fabs(a - b), rel * std::max(1.0, std::fabs(b)))
        << what << "[" << i << "]: " << backend << " " << a << ", expected " << b;
  }
}

} // namespace kiln
