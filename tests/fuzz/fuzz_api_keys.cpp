// fuzz_api_keys.cpp: http.api_keys_file's parser and the key matcher on any
// text (api_keys.hpp). Never a crash; every key parsed is found again by the
// matcher with exactly its scopes; route scopes for any method and path are
// a subset of all_scopes. It links only api_keys.cpp and text.cpp: quick to build.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "unsubrelay/http/api_keys.hpp"

using namespace unsubrelay::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto parsed = parse_api_keys(text, "fuzz-keys");
  const ApiKeyMatcher matcher(parsed.keys);
  for (const auto& k : parsed.keys) {
    if (k.key.empty() || k.scopes == 0 || (k.scopes & ~all_scopes)) std::abort();
    if (matcher.scopes_of(k.key) != k.scopes) std::abort();  // keys are unique (else an error)
    (void)matcher.scopes_of(k.key.substr(0, k.key.size() - 1));
    (void)matcher.scopes_of(k.key + "x");
  }
  (void)matcher.scopes_of(text);
  // The first line as a method, the rest as a path.
  const auto newline = text.find('\n');
  const auto method = text.substr(0, newline);
  const auto path = newline == std::string::npos ? std::string() : text.substr(newline + 1);
  if (required_scopes(method, path) & ~all_scopes) std::abort();
  (void)scope_names(required_scopes(method, path));
  return 0;
}
