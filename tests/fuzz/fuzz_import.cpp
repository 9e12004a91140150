// fuzz_import.cpp: the suppression import parser on any bytes: never a crash,
// memory bounded by its limits, and the same rows and errors whether the input
// arrives whole or split into pieces (the first byte picks the piece size).
#include <cstdint>
#include <string>

#include "unsubrelay/suppression/import.hpp"

namespace {

using namespace unsubrelay::suppression;

std::string run(std::string_view input, std::size_t chunk) {
  ImportLimits limits;
  limits.max_line_bytes = 256;  // small, so the fuzzer reaches the bounds
  limits.max_element_bytes = 256;
  ImportParser parser({"offers", "newsletter"}, limits);
  ImportOutput out;
  for (std::size_t i = 0; i < input.size(); i += chunk) parser.push(input.substr(i, chunk), out);
  parser.finish(out);
  std::string summary = parser.fatal() + "|" + name(parser.format());
  std::size_t last_line = 0;
  for (const auto& row : out.rows) {
    std::string why;
    // What comes out is already normalised, and its line is one the parser has read.
    if (normalise_address(row.address, why) != row.address || row.line == 0 || row.line > parser.line()) {
      __builtin_trap();
    }
    if (row.line < last_line) __builtin_trap();  // rows come out in input order
    last_line = row.line;
    summary += "|" + std::to_string(row.line) + row.address + name(row.reason) + row.topic + std::to_string(row.created);
  }
  for (const auto& e : out.errors) {
    if (e.message.empty() || e.line == 0) __builtin_trap();
    summary += "|" + std::to_string(e.line) + e.message;
  }
  return summary;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 17;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (run(input, input.size() + 1) != run(input, chunk)) __builtin_trap();
  (void)parse_time(input.substr(0, 64));
  return 0;
}
