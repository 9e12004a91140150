// sns_signature.cpp: SHA1withRSA / SHA256withRSA over the string to sign,
// with OpenSSL 3's EVP_DigestVerify and the certificate's validity period.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>

#include "unsubrelay/feedback/sns.hpp"
#include "unsubrelay/mime/codec.hpp"

namespace unsubrelay::feedback {

namespace {

struct Free {
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, Free>;

/// PEM certificates are small; a bigger input is not one (bounds PEM_read work).
constexpr std::size_t max_certificate_bytes = 64 * 1024;

Owned<X509> read_certificate(std::string_view pem) {
  if (pem.empty() || pem.size() > max_certificate_bytes) return nullptr;
  Owned<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return Owned<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

}  // namespace

const char* describe(SignatureError e) {
  switch (e) {
    case SignatureError::none: return "ok";
    case SignatureError::unsupported_version: return "unsupported SignatureVersion";
    case SignatureError::unknown_type: return "unknown message Type";
    case SignatureError::bad_signature_encoding: return "Signature is not base64";
    case SignatureError::bad_certificate: return "not a PEM certificate with an RSA key";
    case SignatureError::certificate_not_yet_valid: return "certificate not yet valid";
    case SignatureError::certificate_expired: return "certificate expired";
    case SignatureError::bad_signature: return "signature does not verify";
  }
  return "?";
}

SignatureError check_signature_form(const SnsMessage& message) {
  if (message.signature_version != "1" && message.signature_version != "2") return SignatureError::unsupported_version;
  if (!string_to_sign(message)) return SignatureError::unknown_type;
  const auto signature = mime::base64_decode(message.signature);
  if (!signature || signature->empty()) return SignatureError::bad_signature_encoding;
  return SignatureError::none;
}

SignatureError verify_signature(const SnsMessage& message, std::string_view certificate_pem, std::int64_t now) {
  if (const auto form = check_signature_form(message); form != SignatureError::none) return form;
  const EVP_MD* digest = message.signature_version == "1" ? EVP_sha1() : EVP_sha256();
  const auto to_sign = string_to_sign(message);
  const auto signature = mime::base64_decode(message.signature);

  const auto cert = read_certificate(certificate_pem);
  if (!cert) {
    ERR_clear_error();
    return SignatureError::bad_certificate;
  }
  auto t = static_cast<std::time_t>(now);
  if (X509_cmp_time(X509_get0_notBefore(cert.get()), &t) > 0) return SignatureError::certificate_not_yet_valid;
  if (X509_cmp_time(X509_get0_notAfter(cert.get()), &t) < 0)
    return SignatureError::certificate_expired;
  Owned<EVP_PKEY> key(X509_get_pubkey(cert.get()));
  if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) return SignatureError::bad_certificate;

  Owned<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, digest, nullptr, key.get()) != 1)
    return SignatureError::bad_certificate;
  const auto* sig = reinterpret_cast<const unsigned char*>(signature->data());
  const auto* data = reinterpret_cast<const unsigned char*>(to_sign->data());
  const int rc = EVP_DigestVerify(ctx.get(), sig, signature->size(), data, to_sign->size());
  ERR_clear_error();  // a failed verify queues errors; later TLS on this thread must not see them
  return rc == 1 ? SignatureError::none : SignatureError::bad_signature;
}

}  // namespace unsubrelay::feedback
