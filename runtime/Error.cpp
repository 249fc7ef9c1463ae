#include "runtime/Error.h"

namespace kiln {

void throwError(const std::string &where, const std::string &what) {
  if (where.empty())
    throw Error("error: " + what);
  throw Error(where + ": error: " + what);
}

} // namespace kiln
