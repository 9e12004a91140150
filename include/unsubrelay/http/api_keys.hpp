// api_keys.hpp: the bearer keys of /api/ (http.api_keys_file) and what each may do.
//
// One key a line, optionally followed by its scopes:
//
//     # comment
//     KEY                      every scope (what a key line meant before scopes)
//     KEY read                 only reading
//     KEY read,export          reading, with IP addresses and user agents
//
// Scopes are separated by commas and/or blanks; a `#` after the key starts a
// comment. A route needs one scope (docs/unsubscribe.md has the table); a key
// without it gets 403 naming it. The parser is pure (fuzz_api_keys) and its
// errors name FILE:LINE, never a key.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::http {

/// Bits of a scope set.
enum Scope : unsigned {
  scope_read = 1,     // GET suppressions, contacts (without IPs and user agents), statistics
  scope_write = 2,    // add and lift suppressions, the Emarsys unsubscribe
  scope_import = 4,   // POST /api/v1/suppressions/import
  scope_export = 8,   // personal data: the IP addresses and user agents of a contact's events
  scope_erase = 16,   // DELETE /api/v1/contacts/ADDRESS
};
constexpr unsigned all_scopes = scope_read | scope_write | scope_import | scope_export | scope_erase;

/// "read", "write", ...; for a set, the names joined by " or ".
std::string scope_names(unsigned scopes);
/// A scope by name (any case); nullopt when there is none.
std::optional<Scope> parse_scope(std::string_view name);

struct ApiKey {
  std::string key;
  unsigned scopes = all_scopes;
  std::size_t line = 0;
};

struct ApiKeysFile {
  std::vector<ApiKey> keys;
  std::vector<std::string> errors;  // "FILE:LINE: message"

  bool ok() const { return errors.empty(); }
};

/// Parses a keys file's text; `file` names it in the errors.
ApiKeysFile parse_api_keys(std::string_view text, const std::string& file);
/// Reads and parses the file ("" = no file: no keys, no error).
ApiKeysFile load_api_keys(const std::string& path);

/// Finds a presented key among the configured ones without telling, by its
/// timing, how much of it was right: see api_keys.cpp.
class ApiKeyMatcher {
 public:
  ApiKeyMatcher() = default;
  explicit ApiKeyMatcher(const std::vector<ApiKey>& keys);

  /// The scopes of the presented key; 0 when it is not one of the keys.
  unsigned scopes_of(std::string_view presented) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::array<unsigned char, 32> digest{};  // SHA-256 of the key
    unsigned scopes = 0;
  };
  std::vector<Entry> entries_;
};

/// The scopes of which a key needs one for this /api/ request (a bit set);
/// 0 when any valid key will do (an unknown route's 404, a wrong method's 405).
unsigned required_scopes(std::string_view method, std::string_view path);

}  // namespace unsubrelay::http
