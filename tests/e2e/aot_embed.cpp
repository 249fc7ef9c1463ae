// A program that embeds `kiln compile tests/e2e/aot_softmax.kir --emit=obj -o
// softmax.o` through its generated header, as an outside project would
// (tests/e2e/aot.py builds and runs it). It checks the results against a
// softmax computed here, and the C API's errors. Prints "ok" on success.
#include "softmax.h"

#include <cmath>
#include <cstdio>
#include <cstring>

static int fail(const char *what) {
  std::printf("FAILED: %s: %s\n", what, kiln_last_error());
  return 1;
}

int main() {
  kiln_program *p = kiln_softmax_create(7);
  if (!p)
    return fail("create");
  float x[4][8], y[4][8];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 8; ++j)
      x[i][j] = std::sin(float(3 * i + j)) * 2.5f;
  if (kiln_program_set(p, "x", x, sizeof x) || kiln_program_run(p) ||
      kiln_program_result(p, "probs", y, sizeof y))
    return fail("set/run/result");
  for (int i = 0; i < 4; ++i) {
    double m = -INFINITY, sum = 0;
    for (int j = 0; j < 8; ++j)
      m = std::fmax(m, x[i][j]);
    for (int j = 0; j < 8; ++j)
      sum += std::exp(double(x[i][j]) - m);
    for (int j = 0; j < 8; ++j) {
      double expected = std::exp(double(x[i][j]) - m) / sum;
      if (std::fabs(y[i][j] - expected) > 1e-6 * std::fabs(expected) + 1e-7) {
        std::printf("FAILED: probs[%d][%d] = %.9g, expected %.9g\n", i, j, y[i][j], expected);
        return 1;
      }
    }
  }
  // Errors: a wrong byte count and an unknown name come back as 1 with a message.
  if (kiln_program_set(p, "x", x, sizeof x - 4) != 1 ||
      !std::strstr(kiln_last_error(), "argument 'x' is 128 bytes, got 124"))
    return fail("wrong size accepted");
  if (kiln_program_result(p, "nope", y, sizeof y) != 1 || !std::strstr(kiln_last_error(), "nope"))
    return fail("unknown result accepted");
  kiln_program_destroy(p);
  std::printf("ok\n");
  return 0;
}
