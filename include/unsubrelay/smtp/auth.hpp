// auth.hpp: SMTP AUTH (RFC 4954) credentials: the users file and SASL decoding.
//
// Passwords are never stored in clear: the users file holds crypt(3) hashes
// ($y$ yescrypt, $6$ SHA-512 crypt, as mkpasswd writes them), checked with
// libxcrypt's crypt_r(). Unknown users still cost one hash computation, so
// timing does not reveal which names exist.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::smtp {

std::optional<std::string> base64_decode(std::string_view text);
std::string base64_encode(std::string_view bytes);

/// SASL PLAIN message (RFC 4616): [authzid] NUL authcid NUL passwd.
struct PlainCredentials {
  std::string authzid;
  std::string user;
  std::string password;
};
std::optional<PlainCredentials> decode_sasl_plain(std::string_view base64);

class UsersFile {
 public:
  /// Loads "name:hash" lines; '#' starts a comment. Errors name the line.
  static std::optional<UsersFile> load(const std::string& path, std::vector<std::string>& errors);

  bool verify(const std::string& user, const std::string& password) const;
  std::size_t size() const { return hashes_.size(); }
  /// Whether the name has a line (the configuration checks tenants[].smtp_users).
  bool has(const std::string& user) const { return hashes_.count(user) != 0; }

 private:
  std::map<std::string, std::string> hashes_;
};

}  // namespace unsubrelay::smtp
