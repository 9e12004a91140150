// token.hpp: signed unsubscribe tokens, a pure codec.
//
// A token is base64url (no padding) of a compact binary payload and its
// HMAC-SHA256 (RFC 2104, truncated to 16 bytes as RFC 2104 §5 allows):
//
//   version (1) | key id length (1) | key id | uid (16) |
//   email_id length (1) | email_id | launch_list_id length (1) | launch_list_id |
//   [version 2 only: topic length (1) | topic] |
//   issued, unix seconds (4, big-endian) | expires, unix seconds or 0 (4) | MAC (16)
//
// Version 1 has no topic; a copy with a topic (unsubscribe.topics) gets a
// version 2 token. A token without a topic is still signed as version 1, so
// the tokens of Part 1, and relays of a fleet not yet upgraded, keep working.
//
// No e-mail address is in it: the uid stands for the contact. Verification
// recomputes the MAC with the key the token names and compares in constant
// time (CRYPTO_memcmp), then checks the expiry; every failure has a reason.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::token {

/// One HMAC key with its id; ids are 1-16 characters of [A-Za-z0-9_-].
struct Key {
  std::string id;
  std::string secret;  // raw bytes, at least 32
};

/// The keys of keys_file: the first signs, every one verifies (rotation).
class KeySet {
 public:
  static std::optional<KeySet> load(const std::string& path, std::vector<std::string>& errors);
  static std::optional<KeySet> from_keys(std::vector<Key> keys, std::vector<std::string>& errors);

  const Key& signing() const { return keys_.front(); }
  const Key* find(std::string_view id) const;
  /// Every key, the signing one first.
  const std::vector<Key>& keys() const { return keys_; }

 private:
  std::vector<Key> keys_;
};

/// A new keys file with one random 32-byte key, as YAML.
std::string generate_keys_file(const std::string& id);

using Uid = std::array<unsigned char, 16>;

struct Claims {
  Uid uid{};
  std::string email_id;        // at most 64 bytes
  std::string launch_list_id;  // at most 64 bytes
  std::string topic;           // at most 64 bytes; "" = none (a version 1 token)
  std::uint32_t issued = 0;
  std::uint32_t expires = 0;   // 0 = never
  std::string key_id;          // filled by verify
};

enum class TokenError { malformed, wrong_version, unknown_key, bad_signature, expired };
const char* describe(TokenError e);

struct Verified {
  std::optional<Claims> claims;
  TokenError error = TokenError::malformed;
};

std::string sign(const Claims& claims, const Key& key);
/// Checks a token, or a URL ending in /u/TOKEN. Tokens over 512 characters are malformed.
Verified verify(std::string_view token_or_url, const KeySet& keys, std::uint32_t now);

/// The key id a token (or /u/TOKEN URL) names, unverified: which tenant's keys
/// to verify it with (SPEC Part 3). "" when it names none.
std::string key_id_of(std::string_view token_or_url);

std::string uid_text(const Uid& uid);  // base64url, 22 characters
/// A new contact's uid: 16 random bytes as uid_text; nullopt when the CSPRNG failed.
std::optional<std::string> random_uid_text();
std::optional<Uid> parse_uid(std::string_view text);

/// HMAC-SHA256 (OpenSSL 3 EVP_MAC); tokens and webhook signatures both use it.
std::array<unsigned char, 32> hmac_sha256(std::string_view key, std::string_view data);

std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace unsubrelay::token
