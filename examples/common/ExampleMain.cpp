#include "examples/common/ExampleMain.h"

#include <cstdlib>
#include <iostream>
#include <new>

namespace kiln::examples {

int exampleMain(const char *tool, int (*run)(int, char **), int argc, char **argv, int errorCode) {
  try {
    return run(argc, argv);
  } catch (const Error &e) {
    std::cerr << toolMessage(tool, e) << "\n";
  } catch (const std::bad_alloc &) {
    std::cerr << tool << ": error: out of memory\n";
  } catch (const std::exception &e) {
    std::cerr << tool << ": internal error: " << e.what() << "\n";
  }
  return errorCode;
}

double numberOption(const CommandLine &cl, const std::string &name, double fallback,
                    bool zeroAllowed) {
  if (!cl.has(name))
    return fallback;
  std::string text = cl.get(name);
  char *end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end || !(v > 0 || (zeroAllowed && v == 0)) || v > 1e6)
    throwError("", "option '" + name + "' expects a " +
                       (zeroAllowed ? "non-negative" : "positive") + " number, got '" + text + "'");
  return v;
}

} // namespace kiln::examples
