// signer.hpp: DKIM signatures (RFC 6376) for rewritten copies.
//
// relaxed/relaxed canonicalisation; rsa-sha256, or ed25519-sha256 (RFC 8463:
// the Ed25519 signature is over the SHA-256 of the canonicalised data). h=
// names From, To, Subject, Date, Message-ID, MIME-Version, Content-Type,
// List-Unsubscribe and List-Unsubscribe-Post, as RFC 8058 §4 requires for
// one-click unsubscribe; a listed field that is absent is signed as absent.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay::dkim {

class Signer {
 public:
  /// Loads the PEM private key; nullptr and error when it cannot, or when the
  /// key type does not match the algorithm.
  static std::shared_ptr<const Signer> load(const config::Dkim& settings, std::string& error);
  ~Signer();

  /// The DKIM-Signature field (with CRLF) to prepend to message.
  std::string sign(std::string_view message, long long now = 0) const;

  struct Key;

 private:
  Signer() = default;
  std::string domain_;
  std::string selector_;
  bool ed25519_ = false;
  std::unique_ptr<Key> key_;
};

/// Canonicalisation, exposed for the unit tests.
std::string relaxed_body(std::string_view body);
std::string relaxed_header(std::string_view name, std::string_view value);

}  // namespace unsubrelay::dkim
