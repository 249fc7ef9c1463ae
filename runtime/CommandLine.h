// A small command-line parser shared by the Kiln tools and AOT executables: `--name=value`,
// `--name value`, boolean `--flag`, and positional arguments. Unknown options
// are errors.
#pragma once

#include "runtime/Error.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace kiln {

class CommandLine {
public:
  /// `valueOptions` take a value; `flags` do not.
  CommandLine(std::set<std::string> valueOptions, std::set<std::string> flags)
      : valueOptions_(std::move(valueOptions)), flags_(std::move(flags)) {}

  void parse(int argc, char **argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.size() < 2 || arg[0] != '-' || arg == "-") {
        positional_.push_back(arg);
        continue;
      }
      std::string name = arg, value;
      bool hasValue = false;
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        name = arg.substr(0, eq);
        value = arg.substr(eq + 1);
        hasValue = true;
      }
      if (flags_.count(name)) {
        if (hasValue)
          throwError("", "option '" + name + "' takes no value");
        values_[name] = "true";
      } else if (valueOptions_.count(name)) {
        if (!hasValue) {
          if (i + 1 >= argc)
            throwError("", "option '" + name + "' needs a value");
          value = argv[++i];
        }
        values_[name] = value;
      } else {
        throwError("", "unknown option '" + name + "' (see --help)");
      }
    }
  }

  bool has(const std::string &name) const { return values_.count(name) > 0; }
  std::string get(const std::string &name, const std::string &fallback = "") const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  /// A non-negative integer option.
  uint64_t getUnsigned(const std::string &name, uint64_t fallback) const {
    if (!has(name))
      return fallback;
    std::string text = get(name);
    errno = 0;
    char *end = nullptr;
    unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end || errno == ERANGE || text[0] == '-')
      throwError("", "option '" + name + "' expects a non-negative integer, got '" + text + "'");
    return v;
  }
  const std::vector<std::string> &positional() const { return positional_; }

private:
  std::set<std::string> valueOptions_, flags_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

/// A tool's one-line report of `e`: located messages as they are
/// (`model.kir:3:8: error: ...`), unlocated ones prefixed with the tool name.
inline std::string toolMessage(const char *tool, const Error &e) {
  std::string message = e.what();
  if (message.compare(0, 6, "error:") == 0)
    return std::string(tool) + ": " + message;
  return message;
}

} // namespace kiln
