// tls.cpp: the `tls:` section: the profile of every TLS context (docs/tls.md).
#include "loaders.hpp"

#include <openssl/ssl.h>

namespace unsubrelay::config::detail {

namespace {

/// OpenSSL's own verdict on a cipher string: false when it selects nothing.
bool valid_cipher_string(const std::string& text, bool tls13) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (!ctx) return true;  // cannot check here; the context set-up will say
  const int ok = tls13 ? SSL_CTX_set_ciphersuites(ctx, text.c_str()) : SSL_CTX_set_cipher_list(ctx, text.c_str());
  SSL_CTX_free(ctx);
  return ok == 1;
}

}  // namespace

void load_tls(Section& s, Tls& t) {
  s.choice("profile", t.profile, {{"intermediate", TlsProfile::intermediate}, {"modern", TlsProfile::modern}});
  s.string("ciphers", t.ciphers);
  s.string("ciphersuites", t.ciphersuites);
  if (!t.ciphers.empty() && !valid_cipher_string(t.ciphers, false)) {
    s.error(s.raw("ciphers"), "tls.ciphers", "OpenSSL finds no cipher in this list");
  }
  if (!t.ciphersuites.empty() && !valid_cipher_string(t.ciphersuites, true)) {
    s.error(s.raw("ciphersuites"), "tls.ciphersuites", "OpenSSL finds no TLS 1.3 suite in this list");
  }
  s.finish();
}

}  // namespace unsubrelay::config::detail
