#include "runtime/Feeds.h"

#include "runtime/Error.h"
#include "runtime/Npy.h"

#include <map>

namespace kiln {

TensorMap readFeedList(const std::string &spec,
                       const std::function<void(const TensorMap &, const std::string &)> &check) {
  TensorMap feeds;
  std::map<std::string, std::string> sourceOf;
  size_t begin = 0;
  while (begin <= spec.size()) {
    size_t comma = std::min(spec.find(',', begin), spec.size());
    std::string entry = spec.substr(begin, comma - begin);
    begin = comma + 1;
    if (entry.empty())
      throwError("", "--inputs has an empty entry in '" + spec + "'");
    TensorMap tensors;
    std::string source = entry;
    if (entry.size() > 4 && entry.compare(entry.size() - 4, 4, ".npy") == 0) {
      size_t eq = entry.find('=');
      if (eq == std::string::npos || eq == 0)
        throwError("", "--inputs entry '" + entry + "' needs the argument's name: NAME=FILE.npy");
      source = entry.substr(eq + 1);
      tensors[entry.substr(0, eq)] = readNpy(source);
    } else {
      tensors = readSafetensors(entry);
    }
    check(tensors, source);
    for (auto &[name, t] : tensors) {
      auto [it, inserted] = sourceOf.emplace(name, source);
      if (!inserted)
        throwError("", "--inputs gives '" + name + "' twice (in " + it->second + " and " + source + ")");
      feeds[name] = std::move(t);
    }
  }
  return feeds;
}

} // namespace kiln
