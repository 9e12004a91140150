// tls.cpp: the TLS profile (docs/tls.md), client contexts and reloadable server contexts.
#include "unsubrelay/common/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fmt/format.h>

namespace unsubrelay {

namespace asio = boost::asio;
namespace ssl = asio::ssl;

// Mozilla's intermediate list, ECDHE only: no static RSA (no forward secrecy),
// no CBC (LUCKY13), no finite-field DHE (slow, and weak groups in the wild).
const char* const intermediate_tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

namespace {
constexpr const char* groups = "X25519:prime256v1:secp384r1";
}

std::string apply_tls_profile(ssl::context& ctx, const config::Tls& profile, bool server) {
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (server) SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE);
  const int floor = profile.profile == config::TlsProfile::modern ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(native, floor) != 1) return "cannot set the lowest TLS version";
  const std::string ciphers = profile.ciphers.empty() ? intermediate_tls12_ciphers : profile.ciphers;
  if (SSL_CTX_set_cipher_list(native, ciphers.c_str()) != 1) {
    return fmt::format("tls.ciphers: OpenSSL finds no cipher in \"{}\"", ciphers);
  }
  if (!profile.ciphersuites.empty() && SSL_CTX_set_ciphersuites(native, profile.ciphersuites.c_str()) != 1) {
    return fmt::format("tls.ciphersuites: OpenSSL finds no suite in \"{}\"", profile.ciphersuites);
  }
  if (SSL_CTX_set1_groups_list(native, groups) != 1) return "cannot set the key exchange groups";
  return {};
}

std::shared_ptr<ssl::context> make_client_context(const config::Tls& profile, const std::string& ca_file,
                                                  std::string& error) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  if (error = apply_tls_profile(*ctx, profile, false); !error.empty()) {
    ERR_clear_error();  // what OpenSSL queued must not show up in a later handshake on this thread
    return nullptr;
  }
  boost::system::error_code ec;
  ctx->set_verify_mode(ssl::verify_peer, ec);
  if (!ec) {
    if (ca_file.empty()) {
      ctx->set_default_verify_paths(ec);
    } else {
      ctx->load_verify_file(ca_file, ec);
    }
  }
  if (ec) {
    error = fmt::format("CA store {}: {}", ca_file.empty() ? "(system)" : ca_file, ec.message());
    ERR_clear_error();
    return nullptr;
  }
  return ctx;
}

std::string TlsServerContext::load(const config::TlsFiles& files, const config::Tls& profile, const std::string& what) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  if (auto err = apply_tls_profile(*ctx, profile, true); !err.empty()) return err;
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(files.cert, ec);
  if (ec) return fmt::format("{}.cert {}: {}", what, files.cert, ec.message());
  ctx->use_private_key_file(files.key, ssl::context::pem, ec);
  if (ec) return fmt::format("{}.key {}: {}", what, files.key, ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return fmt::format("{}.key {}: does not match the certificate {}", what, files.key, files.cert);
  }
  std::lock_guard lock(mutex_);
  context_ = std::move(ctx);
  return {};
}

std::shared_ptr<ssl::context> TlsServerContext::get() const {
  std::lock_guard lock(mutex_);
  return context_;
}

}  // namespace unsubrelay
