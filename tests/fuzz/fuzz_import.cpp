// fuzz_import.cpp: the suppression import parser on any bytes: never a crash,
// memory bounded by its limits, and the same rows and errors whether the input
// arrives whole or split into pieces (the first byte picks the piece size).
// The HTTP import streams its body through this parser (Importer, pieces as
// they arrive) and, when the body stops short, applies what push() gave
// without finish() (Importer::abandon): those rows must be the first rows of
// the whole input, never a record cut where the input stopped.
#include <cstdint>
#include <string>

#include "unsubrelay/suppression/import.hpp"

namespace {

using namespace unsubrelay::suppression;

ImportParser make_parser() {
  ImportLimits limits;
  limits.max_line_bytes = 256;  // small, so the fuzzer reaches the bounds
  limits.max_element_bytes = 256;
  return ImportParser({"offers", "newsletter"}, limits);
}

std::string row_text(const ImportRow& row) {
  return "|" + std::to_string(row.line) + row.address + name(row.reason) + row.topic + std::to_string(row.created);
}

/// The rows of the input's first `stop` bytes, pushed in pieces and never finished.
std::string abandoned(std::string_view input, std::size_t chunk, std::size_t stop) {
  auto parser = make_parser();
  ImportOutput out;
  const auto head = input.substr(0, stop);
  for (std::size_t i = 0; i < head.size(); i += chunk) parser.push(head.substr(i, chunk), out);
  std::string rows;
  for (const auto& row : out.rows) rows += row_text(row);
  return rows;
}

std::string run(std::string_view input, std::size_t chunk, std::string* rows_only = nullptr) {
  auto parser = make_parser();
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
    summary += row_text(row);
    if (rows_only) *rows_only += row_text(row);
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
  std::string rows;
  if (run(input, input.size() + 1, &rows) != run(input, chunk)) __builtin_trap();
  // A body that stops short (the second byte picks where): its rows are the first rows of the whole.
  const std::size_t stop = size > 1 ? input.size() * data[1] / 255 : 0;
  if (!rows.starts_with(abandoned(input, chunk, stop))) __builtin_trap();
  (void)parse_time(input.substr(0, 64));
  return 0;
}
