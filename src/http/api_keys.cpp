// api_keys.cpp: parsing http.api_keys_file, matching a bearer key, and the
// scope each /api/ route needs (api_keys.hpp).
#include "unsubrelay/http/api_keys.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::http {

namespace {

constexpr std::array<std::pair<std::string_view, Scope>, 5> scope_table{{{"read", scope_read},
                                                                          {"write", scope_write},
                                                                          {"import", scope_import},
                                                                          {"export", scope_export},
                                                                          {"erase", scope_erase}}};

constexpr std::uintmax_t max_keys_file_bytes = 1 << 20;

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/// A key is what a client can send after "Bearer ": visible ASCII, no blanks.
bool key_character(unsigned char c) { return c > 0x20 && c < 0x7f; }

std::array<unsigned char, 32> digest_of(std::string_view text) {
  std::array<unsigned char, 32> out{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out.data());
  return out;
}

/// The scopes after a key ("" = every scope); an error message when one is unknown.
unsigned parse_scope_list(std::string_view rest, std::string& error) {
  unsigned scopes = 0;
  bool named = false, comma = false;
  std::size_t at = 0;
  while (at < rest.size()) {
    if (blank(rest[at]) || rest[at] == ',') {
      comma = comma || rest[at] == ',';
      ++at;
      continue;
    }
    if (rest[at] == '#') break;  // a comment to the end of the line
    std::size_t end = at;
    while (end < rest.size() && !blank(rest[end]) && rest[end] != ',' && rest[end] != '#') ++end;
    const auto name = rest.substr(at, end - at);
    const auto scope = parse_scope(name);
    if (!scope) {
      // A short lower-case word is a mistyped scope and is shown; anything else may be part of a
      // key (an old-format line held one key, blanks and all), so it is not.
      const bool shown =
          name.size() <= 10 && std::all_of(name.begin(), name.end(), [](char c) { return c >= 'a' && c <= 'z'; });
      error = fmt::format("unknown scope {} (scopes: read, write, import, export, erase; none: all of them)",
                          shown ? "'" + std::string(name) + "'" : std::string("(not shown: it may be part of a key)"));
      return 0;
    }
    scopes |= *scope;
    named = true;
    at = end;
  }
  if (!named && comma) {
    error = "a scope list without a scope (write the scopes, or only the key for all of them)";
    return 0;
  }
  return named ? scopes : all_scopes;
}

}  // namespace

std::string scope_names(unsigned scopes) {
  std::string out;
  for (const auto& [name, bit] : scope_table) {
    if (scopes & bit) out += (out.empty() ? "" : " or ") + std::string(name);
  }
  return out;
}

std::optional<Scope> parse_scope(std::string_view name) {
  for (const auto& [known, bit] : scope_table) {
    if (iequals(name, known)) return bit;
  }
  return std::nullopt;
}

ApiKeysFile parse_api_keys(std::string_view text, const std::string& file) {
  ApiKeysFile out;
  std::map<std::array<unsigned char, 32>, std::size_t> seen;  // digests: the map never holds a key
  std::size_t number = 0;
  while (!text.empty()) {
    const auto newline = text.find('\n');
    const auto line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    ++number;
    std::size_t at = 0;
    while (at < line.size() && blank(line[at])) ++at;
    if (at == line.size() || line[at] == '#') continue;
    std::size_t end = at;
    while (end < line.size() && !blank(line[end])) ++end;
    const auto key = line.substr(at, end - at);
    const auto error = [&](const std::string& message) {
      out.errors.push_back(fmt::format("{}:{}: {}", file, number, message));
    };
    std::size_t bad = 0;
    while (bad < key.size() && key_character(static_cast<unsigned char>(key[bad]))) ++bad;
    if (bad < key.size()) {
      error(fmt::format("the key has a byte (0x{:02x}) a client cannot send in \"Authorization: Bearer\"",
                        static_cast<unsigned char>(key[bad])));
      continue;
    }
    std::string why;
    const auto scopes = parse_scope_list(line.substr(end), why);
    if (!why.empty()) {
      error(why);
      continue;
    }
    const auto [previous, fresh] = seen.emplace(digest_of(key), number);
    if (!fresh) {
      error(fmt::format("the same key as line {} (list each key once, with all its scopes)", previous->second));
      continue;
    }
    out.keys.push_back({std::string(key), scopes, number});
  }
  return out;
}

ApiKeysFile load_api_keys(const std::string& path) {
  if (path.empty()) return {};
  // A regular file of sane size: never /dev/zero or a FIFO that would block the loader.
  std::error_code ec;
  const auto size = std::filesystem::is_regular_file(path, ec) ? std::filesystem::file_size(path, ec) : 0;
  if (ec || !std::filesystem::is_regular_file(path, ec)) return {{}, {fmt::format("{}: not a regular file", path)}};
  if (size > max_keys_file_bytes) {
    return {{}, {fmt::format("{}: larger than {} bytes: not a keys file", path, max_keys_file_bytes)}};
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in) return {{}, {fmt::format("{}: cannot read the keys file", path)}};
  return parse_api_keys(text.str(), path);
}

ApiKeyMatcher::ApiKeyMatcher(const std::vector<ApiKey>& keys) {
  for (const auto& k : keys) entries_.push_back({digest_of(k.key), k.scopes});
}

unsigned ApiKeyMatcher::scopes_of(std::string_view presented) const {
  // Constant time: comparing the key itself byte by byte with an early exit
  // (std::set::count, operator==) answers sooner the fewer leading bytes are
  // right, which lets a client guess a key a byte at a time by timing. The
  // presented key is hashed once and its digest compared with every key's
  // digest with CRYPTO_memcmp (no early exit), over all keys (no early exit
  // either), so the time depends on neither the key nor which key matched.
  const auto digest = digest_of(presented);
  unsigned scopes = 0;
  for (const auto& e : entries_) {
    const unsigned equal = CRYPTO_memcmp(digest.data(), e.digest.data(), digest.size()) == 0 ? 1u : 0u;
    scopes |= e.scopes & (0u - equal);  // all bits when equal, none otherwise
  }
  return scopes;
}

unsigned required_scopes(std::string_view method, std::string_view path) {
  const bool get = method == "GET", post = method == "POST", put = method == "PUT", del = method == "DELETE";
  const auto when = [](bool applies, unsigned scopes) { return applies ? scopes : 0u; };
  if (path == "/api/v2/email/unsubscribe") return when(post, scope_write);
  if (path.starts_with("/api/v2/email/") && path.ends_with("/responses/summary")) return when(get, scope_read);
  if (path == "/api/v1/suppressions" || path.starts_with("/api/v1/suppressions/")) {
    const auto rest = path.substr(20);
    if (rest == "/import") return when(post, scope_import);
    if (get) return scope_read;
    return when((put || del) && rest.size() > 1, scope_write);
  }
  if (path == "/api/v1/events") return when(get, scope_read);  // IPs and user agents: scope_export too
  if (path.starts_with("/api/v1/contacts/")) {
    // A contact without its events' IPs and user agents for read; with them for export.
    if (get) return scope_read | scope_export;
    return when(del, scope_erase);
  }
  return 0;
}

}  // namespace unsubrelay::http
