// fuzz_token.cpp: token verification on any bytes never crashes and never
// accepts what the key did not sign.
#include <cstdint>
#include <string>

#include "unsubrelay/token/token.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace unsubrelay::token;
  static const KeySet keys = [] {
    std::vector<std::string> errors;
    return *KeySet::from_keys({{"k1", std::string(32, 'k')}}, errors);
  }();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto v = verify(input, keys, 1'800'000'000);
  if (v.claims) {
    // Anything accepted must be exactly what signing those claims produces.
    if (sign(*v.claims, keys.signing()) != input.substr(input.rfind("/u/") == std::string_view::npos ? 0 : input.rfind("/u/") + 3)) {
      // Trailing slashes or newlines are trimmed by verify; compare without them.
      std::string trimmed(input.substr(input.rfind("/u/") == std::string_view::npos ? 0 : input.rfind("/u/") + 3));
      while (!trimmed.empty() && (trimmed.back() == '/' || trimmed.back() == '\n' || trimmed.back() == '\r')) trimmed.pop_back();
      if (sign(*v.claims, keys.signing()) != trimmed) __builtin_trap();
    }
  }
  (void)base64url_decode(input);
  return 0;
}
