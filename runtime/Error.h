// The one exception type for user mistakes: a located, one-line message.
#pragma once

#include <stdexcept>
#include <string>

namespace kiln {

/// A user-facing error. The message is complete and printable as is, e.g.
/// `model.kir:3:8: error: add expects operands of equal shape, got f32[4] and f32[8]`.
class Error : public std::runtime_error {
public:
  explicit Error(const std::string &message) : std::runtime_error(message) {}
};

/// Throws `kiln::Error` with "WHERE: error: WHAT" (or "error: WHAT" without a place).
[[noreturn]] void throwError(const std::string &where, const std::string &what);

} // namespace kiln

#define KILN_UNREACHABLE(msg) (assert(false && msg), __builtin_unreachable())
