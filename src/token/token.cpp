// token.cpp: token encoding, HMAC signing and constant-time verification.
#include "unsubrelay/token/token.hpp"

#include <fstream>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <yaml-cpp/yaml.h>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::token {

namespace {

constexpr unsigned char version_plain = 1;  // no topic (Part 1)
constexpr unsigned char version_topic = 2;  // with a topic
constexpr std::size_t mac_size = 16;
constexpr std::size_t max_token_chars = 512;
constexpr std::size_t max_id_bytes = 64;

}  // namespace

std::array<unsigned char, 32> hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, 32> out{};
  std::size_t len = 0;
  // OpenSSL 3's EVP_MAC interface, in its one-shot form.
  if (!EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                 reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), out.size(), &len) ||
      len != out.size()) {
    throw std::runtime_error("HMAC-SHA256 failed in OpenSSL");
  }
  return out;
}

namespace {

bool valid_key_id(std::string_view id) {
  if (id.empty() || id.size() > 16) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::uint32_t get_u32(std::string_view in) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

}  // namespace

const char* describe(TokenError e) {
  switch (e) {
    case TokenError::malformed: return "malformed token";
    case TokenError::wrong_version: return "unsupported token version";
    case TokenError::unknown_key: return "token signed with an unknown key";
    case TokenError::bad_signature: return "token signature does not match (tampered or truncated)";
    case TokenError::expired: return "token has expired";
  }
  return "invalid token";
}

std::string base64url_encode(std::string_view bytes) {
  std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string std_b64(text);
  for (auto& c : std_b64) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
      return std::nullopt;  // '+', '/', '=' and anything else are not base64url
    }
  }
  const std::size_t pad = (4 - std_b64.size() % 4) % 4;
  std_b64.append(pad, '=');
  std::string out(std_b64.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(std_b64.data()),
                                static_cast<int>(std_b64.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(n) - pad);
  // Canonical only (RFC 4648 §3.5): the bits after the last byte must be zero.
  // Otherwise up to 16 spellings of one token would all verify (found by fuzz_token).
  if (pad > 0 && base64url_encode(out) != text) return std::nullopt;
  return out;
}

std::optional<KeySet> KeySet::from_keys(std::vector<Key> keys, std::vector<std::string>& errors) {
  if (keys.empty()) errors.push_back("keys: at least one key is required");
  for (const auto& k : keys) {
    if (!valid_key_id(k.id)) errors.push_back(fmt::format("key id '{}': must be 1-16 of [A-Za-z0-9_-]", printable(k.id, 40)));
    if (k.secret.size() < 32) errors.push_back(fmt::format("key '{}': secret must be at least 32 bytes", printable(k.id, 40)));
  }
  if (!errors.empty()) return std::nullopt;
  KeySet set;
  set.keys_ = std::move(keys);
  return set;
}

std::optional<KeySet> KeySet::load(const std::string& path, std::vector<std::string>& errors) {
  std::vector<Key> keys;
  try {
    const auto root = YAML::LoadFile(path);
    const auto list = root["keys"];
    if (!list || !list.IsSequence()) {
      errors.push_back(fmt::format("{}: expected 'keys: [{{id, secret}}, ...]'", path));
      return std::nullopt;
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
      const auto id = list[i]["id"] ? list[i]["id"].as<std::string>() : std::string();
      const auto secret_b64 = list[i]["secret"] ? list[i]["secret"].as<std::string>() : std::string();
      std::string raw(secret_b64.size(), '\0');
      const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                                    reinterpret_cast<const unsigned char*>(secret_b64.data()),
                                    static_cast<int>(secret_b64.size()));
      if (n < 0 || secret_b64.size() % 4 != 0) {
        errors.push_back(fmt::format("{}:{}: keys[{}].secret is not base64", path, list[i].Mark().line + 1, i));
        continue;
      }
      std::size_t len = static_cast<std::size_t>(n);
      if (!secret_b64.empty() && secret_b64.back() == '=') --len;
      if (secret_b64.size() > 1 && secret_b64[secret_b64.size() - 2] == '=') --len;
      raw.resize(len);
      keys.push_back({id, raw});
    }
  } catch (const YAML::Exception& e) {
    errors.push_back(fmt::format("{}: {}", path, e.what()));
    return std::nullopt;
  }
  auto set = from_keys(std::move(keys), errors);
  for (auto& e : errors) {
    if (!e.starts_with(path)) e = path + ": " + e;
  }
  return set;
}

const Key* KeySet::find(std::string_view id) const {
  for (const auto& k : keys_) {
    if (k.id == id) return &k;
  }
  return nullptr;
}

std::string generate_keys_file(const std::string& id) {
  std::array<unsigned char, 32> secret{};
  if (RAND_bytes(secret.data(), secret.size()) != 1) throw std::runtime_error("RAND_bytes failed");
  std::string b64(48, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), secret.data(), secret.size());
  b64.resize(static_cast<std::size_t>(n));
  return fmt::format(
      "# unsubrelay token keys: the first signs, every listed key verifies.\n"
      "# To rotate: add a new key at the top, keep the old ones until their links no longer matter.\n"
      "keys:\n  - id: \"{}\"\n    secret: \"{}\"\n",
      id, b64);
}

std::string sign(const Claims& c, const Key& key) {
  std::string payload;
  const auto topic = std::string_view(c.topic).substr(0, max_id_bytes);
  payload.push_back(static_cast<char>(topic.empty() ? version_plain : version_topic));
  payload.push_back(static_cast<char>(key.id.size()));
  payload += key.id;
  payload.append(reinterpret_cast<const char*>(c.uid.data()), c.uid.size());
  const auto email = std::string_view(c.email_id).substr(0, max_id_bytes);
  const auto launch = std::string_view(c.launch_list_id).substr(0, max_id_bytes);
  payload.push_back(static_cast<char>(email.size()));
  payload += email;
  payload.push_back(static_cast<char>(launch.size()));
  payload += launch;
  if (!topic.empty()) {
    payload.push_back(static_cast<char>(topic.size()));
    payload += topic;
  }
  put_u32(payload, c.issued);
  put_u32(payload, c.expires);
  const auto mac = hmac_sha256(key.secret, payload);
  payload.append(reinterpret_cast<const char*>(mac.data()), mac_size);
  return base64url_encode(payload);
}

namespace {

/// The bytes of a token, or of the one a /u/TOKEN URL ends in; nullopt when
/// it is empty, too long or not base64url.
std::optional<std::string> token_bytes(std::string_view input) {
  // Accept a whole URL: the token is what follows the last "/u/".
  if (const auto pos = input.rfind("/u/"); pos != std::string_view::npos) input = input.substr(pos + 3);
  while (!input.empty() && (input.back() == '/' || input.back() == '\n' || input.back() == '\r')) input.remove_suffix(1);
  if (input.empty() || input.size() > max_token_chars) return std::nullopt;
  return base64url_decode(input);
}

}  // namespace

std::string key_id_of(std::string_view input) {
  const auto raw = token_bytes(input);
  if (!raw || raw->size() < 2) return "";
  const std::size_t len = static_cast<unsigned char>((*raw)[1]);
  if (2 + len > raw->size()) return "";
  return raw->substr(2, len);
}

Verified verify(std::string_view input, const KeySet& keys, std::uint32_t now) {
  Verified v;
  const auto raw = token_bytes(input);
  if (!raw || raw->size() < 2 + mac_size) return v;
  const std::string_view p(*raw);
  const auto version = static_cast<unsigned char>(p[0]);
  if (version != version_plain && version != version_topic) {
    v.error = TokenError::wrong_version;
    return v;
  }
  std::size_t pos = 1;
  auto take_string = [&](std::string& out) {
    if (pos >= p.size()) return false;
    const std::size_t len = static_cast<unsigned char>(p[pos++]);
    if (pos + len > p.size()) return false;
    out = std::string(p.substr(pos, len));
    pos += len;
    return true;
  };
  Claims c;
  if (!take_string(c.key_id)) return v;
  if (pos + c.uid.size() > p.size()) return v;
  std::copy(p.begin() + pos, p.begin() + pos + c.uid.size(), c.uid.begin());
  pos += c.uid.size();
  if (!take_string(c.email_id) || !take_string(c.launch_list_id)) return v;
  // A version 2 token always names a topic: an empty one would be a second
  // spelling of a version 1 token.
  if (version == version_topic && (!take_string(c.topic) || c.topic.empty())) return v;
  if (pos + 8 + mac_size != p.size()) return v;
  c.issued = get_u32(p.substr(pos, 4));
  c.expires = get_u32(p.substr(pos + 4, 4));
  pos += 8;

  const Key* key = keys.find(c.key_id);
  if (!key) {
    v.error = TokenError::unknown_key;
    return v;
  }
  const auto mac = hmac_sha256(key->secret, p.substr(0, pos));
  if (CRYPTO_memcmp(mac.data(), p.data() + pos, mac_size) != 0) {
    v.error = TokenError::bad_signature;
    return v;
  }
  if (c.expires != 0 && now >= c.expires) {
    v.error = TokenError::expired;
    return v;
  }
  v.claims = std::move(c);
  return v;
}

std::string uid_text(const Uid& uid) {
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(uid.data()), uid.size()));
}

std::optional<std::string> random_uid_text() {
  Uid uid{};
  if (RAND_bytes(uid.data(), static_cast<int>(uid.size())) != 1) return std::nullopt;
  return uid_text(uid);
}

std::optional<Uid> parse_uid(std::string_view text) {
  const auto raw = base64url_decode(text);
  if (!raw || raw->size() != 16) return std::nullopt;
  Uid uid{};
  std::copy(raw->begin(), raw->end(), uid.begin());
  return uid;
}

}  // namespace unsubrelay::token
