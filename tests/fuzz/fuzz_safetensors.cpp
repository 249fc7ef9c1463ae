// libFuzzer target: the safetensors reader and the write -> read round trip
// (tests/fuzz/FuzzTargets.h). Run by scripts/fuzz.sh.
#include "tests/fuzz/FuzzTargets.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string input(reinterpret_cast<const char *>(data), size);
  kiln::fuzz::trapOnFinding(kiln::fuzz::fuzzSafetensors(input));
  return 0;
}
