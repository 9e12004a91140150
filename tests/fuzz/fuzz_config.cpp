// fuzz_config.cpp: the configuration loader on any text: errors, never crashes.
#include <cstdint>
#include <string>

#include "unsubrelay/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto result = unsubrelay::config::load_text(text, "fuzz.yaml");
  for (const auto& e : result.errors) (void)e.to_string("fuzz.yaml");
  return 0;
}
