// auth.cpp: base64, SASL PLAIN and crypt(3) password checks.
#include "unsubrelay/smtp/auth.hpp"

#include <crypt.h>

#include <fstream>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace unsubrelay::smtp {

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                    c == '/' || c == '=';
    if (!ok) return std::nullopt;
  }
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  std::size_t len = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts padding as zero bytes; take them back off.
  if (text.size() >= 1 && text.back() == '=') --len;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<PlainCredentials> decode_sasl_plain(std::string_view base64) {
  const auto raw = base64_decode(base64);
  if (!raw) return std::nullopt;
  const auto first = raw->find('\0');
  if (first == std::string::npos) return std::nullopt;
  const auto second = raw->find('\0', first + 1);
  if (second == std::string::npos || raw->find('\0', second + 1) != std::string::npos) return std::nullopt;
  PlainCredentials c{raw->substr(0, first), raw->substr(first + 1, second - first - 1), raw->substr(second + 1)};
  if (c.user.empty()) return std::nullopt;
  return c;
}

std::optional<UsersFile> UsersFile::load(const std::string& path, std::vector<std::string>& errors) {
  std::ifstream in(path);
  if (!in) {
    errors.push_back(fmt::format("{}: cannot open", path));
    return std::nullopt;
  }
  UsersFile users;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.front() == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) {
      errors.push_back(fmt::format("{}:{}: expected name:crypt-hash", path, n));
      continue;
    }
    const auto hash = line.substr(colon + 1);
    if (!hash.starts_with("$y$") && !hash.starts_with("$6$") && !hash.starts_with("$5$") &&
        !hash.starts_with("$2b$") && !hash.starts_with("$gy$")) {
      errors.push_back(fmt::format("{}:{}: '{}' does not have a crypt(3) hash ($y$ or $6$, from mkpasswd)", path, n,
                                   line.substr(0, colon)));
      continue;
    }
    users.hashes_[line.substr(0, colon)] = hash;
  }
  if (!errors.empty()) return std::nullopt;
  return users;
}

bool UsersFile::verify(const std::string& user, const std::string& password) const {
  // A fixed, valid hash for unknown users keeps the cost of a guess the same.
  static const std::string dummy = "$6$unsubrelaydummy$Q8Fxs8SH1tqpsFP/gXW4lqA9UVpjc6X3IHa30mRQ7l9bu7nIc9S.4bE3jh7EgdCn9n0bWQ2UzUDrfB1sDUQWB1";
  const auto it = hashes_.find(user);
  const std::string& hash = it == hashes_.end() ? dummy : it->second;
  crypt_data data{};
  const char* out = crypt_r(password.c_str(), hash.c_str(), &data);
  if (out == nullptr || out[0] == '*') return false;
  const auto len = std::string_view(out).size();
  return it != hashes_.end() && len == hash.size() && CRYPTO_memcmp(out, hash.data(), len) == 0;
}

}  // namespace unsubrelay::smtp
