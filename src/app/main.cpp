// main.cpp: entry point of the unsubrelay binary.
#include <exception>
#include <iostream>

#include "unsubrelay/app/commands.hpp"

int main(int argc, char** argv) {
  try {
    return unsubrelay::app::main_with_args(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "unsubrelay: fatal: " << e.what() << "\n";
    return 70;  // EX_SOFTWARE: a bug, not bad input
  }
}
