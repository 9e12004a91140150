// tls.hpp: the one TLS profile every context uses, and server contexts that reload.
//
// Mozilla's "intermediate" profile (docs/tls.md): TLS 1.2 with ECDHE key
// exchange and AEAD ciphers only (AES-GCM, ChaCha20-Poly1305), the server's
// cipher order, no renegotiation, no compression; TLS 1.3 as OpenSSL ships it.
// "modern" is TLS 1.3 only. The same profile goes on the SMTP listeners
// (STARTTLS and implicit TLS), the HTTPS listeners, the upstream client, the
// webhook client and the SNS certificate fetcher (make_client_context).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <utility>  // before Asio, see delivery/upstream.hpp
#include <boost/asio/ssl/context.hpp>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay {

/// The TLS 1.2 cipher list of the intermediate profile (OpenSSL names).
extern const char* const intermediate_tls12_ciphers;

/// Applies the profile to a context. "" or why OpenSSL refused it.
std::string apply_tls_profile(boost::asio::ssl::context& ctx, const config::Tls& profile, bool server);

/// A client context with the profile that verifies its peer against ca_file
/// (PEM), or the system's CA store when ca_file is "". Made once at start
/// and shared by every connection (the peer's name is set per connection).
/// nullptr, and why, when the profile or the CA store cannot be applied:
/// the caller refuses to start rather than fall back to OpenSSL's defaults.
std::shared_ptr<boost::asio::ssl::context> make_client_context(const config::Tls& profile, const std::string& ca_file,
                                                              std::string& error);

/// A server context with its certificate chain and key. load() builds a fresh
/// context and swaps it in only when everything loaded: a SIGHUP with a bad
/// file keeps the running certificate. Connections hold the context they
/// started with (shared_ptr), so a swap never disturbs a handshake.
class TlsServerContext {
 public:
  /// "" or an error naming the file ("http.tls.cert /path: ...").
  std::string load(const config::TlsFiles& files, const config::Tls& profile, const std::string& what);
  std::shared_ptr<boost::asio::ssl::context> get() const;
  bool ready() const { return get() != nullptr; }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> context_;
};

}  // namespace unsubrelay
