#include "ir/ModuleFile.h"

#include "ir/Graph.h"
#include "ir/Json.h"
#include "ir/Parser.h"
#include "runtime/Safetensors.h"

#include <iostream>
#include <iterator>

namespace kiln {

std::string readStdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

Module loadModuleFile(const std::string &path) {
  if (path == "-") {
    // JSON starts with '{'; `.kir` text never does.
    std::string text = readStdin();
    size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && text[first] == '{')
      return parseJsonModule(text, "<stdin>", "");
    return parseModule(text, "<stdin>");
  }
  if (path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0)
    return readJsonModule(path);
  return parseModule(readFile(path), path);
}

} // namespace kiln
