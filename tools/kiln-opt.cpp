#include "ir/Graph.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"
#include <iostream>
int main(int argc, char **argv) {
  try {
    std::string text = kiln::readFile(argv[1]);
    kiln::Module m = kiln::parseModule(text, argv[1]);
    std::cout << kiln::printModule(m);
  } catch (const kiln::Error &e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
