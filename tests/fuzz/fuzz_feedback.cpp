// fuzz_feedback.cpp: the feedback parsers on any bytes: DSN (RFC 3464/6533 and
// plain-text bounces), ARF (RFC 5965) with the token search in the returned
// message, the SNS envelope with its string to sign and signature check, the
// SES notification JSON, and the URL allow-list. Every input goes through all
// of them (a mail fails JSON parsing at once, and the other way round), so the
// seeds need no selector byte. Invariants: ranges lie inside the input, lists
// stay within their limits, every token candidate is token-shaped, and an
// allowed URL is an https URL under the prefix's host.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>

#include "unsubrelay/feedback/arf.hpp"
#include "unsubrelay/feedback/dsn.hpp"
#include "unsubrelay/feedback/locate.hpp"
#include "unsubrelay/feedback/ses.hpp"
#include "unsubrelay/feedback/sns.hpp"

namespace fb = unsubrelay::feedback;

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

bool token_shaped(const std::string& t) {
  if (t.size() < 16 || t.size() > 512) return false;
  for (char c : t) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

/// A self-signed certificate, made once: verify_signature runs to the RSA step.
const std::string& certificate() {
  static const std::string pem = [] {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_RSA_gen(1024), EVP_PKEY_free);
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    X509_set_version(cert.get(), 2);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -86400);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * 3650);
    X509_set_pubkey(cert.get(), key.get());
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
    X509_sign(cert.get(), key.get(), EVP_sha256());
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_X509(bio.get(), cert.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
  }();
  return pem;
}

void fuzz_reports(std::string_view input) {
  const fb::ReportLimits limits;
  const auto dsn = fb::parse_dsn(input, limits);
  check(dsn.report.recipients.size() <= limits.max_recipients);
  check(dsn.report.returned.begin <= dsn.report.returned.end && dsn.report.returned.end <= input.size());
  for (const auto& r : dsn.report.recipients) {
    (void)fb::classify(r);
    check(r.status.empty() || fb::find_enhanced_status(r.status) == r.status);
  }
  const auto arf = fb::parse_arf(input, limits);
  check(arf.report.returned.begin <= arf.report.returned.end && arf.report.returned.end <= input.size());
  fb::LocateOptions options;
  options.return_path_domain = "bounces.example.net";
  const auto candidates = fb::complaint_token_candidates(input, arf.report, options);
  check(candidates.size() <= options.max_candidates);
  for (const auto& c : candidates) check(token_shaped(c.token));
  (void)fb::unredacted_recipient(arf.report);
  for (const auto& t : fb::tokens_in_text(input, 16)) check(token_shaped(t));
}

void fuzz_json(std::string_view input) {
  const auto sns = fb::parse_sns(input);
  if (sns.message) {
    const auto to_sign = fb::string_to_sign(*sns.message);
    check(to_sign.has_value() == (sns.message->type != fb::SnsType::other));
    (void)fb::verify_signature(*sns.message, certificate(), 1'800'000'000);
    (void)fb::parse_ses(sns.message->message);
    // A Timestamp that parses is at or after 1970 (years before are refused).
    if (const auto t = fb::parse_sns_timestamp(sns.message->timestamp)) check(*t >= 0);
  }
  (void)fb::parse_sns_timestamp(input);
  const auto ses = fb::parse_ses(input, 50);
  if (ses.notification) {
    check(ses.notification->bounced.size() <= 50 && ses.notification->complained.size() <= 50);
    (void)fb::classify_ses_bounce(ses.notification->bounce_type);
  }
}

void fuzz_url(std::string_view input) {
  static const std::vector<std::string> prefixes{"https://sns.us-east-1.amazonaws.com",
                                                 "https://127.0.0.1:8443/certs/"};
  const auto line = input.substr(0, input.find('\n'));
  if (fb::url_allowed(line, prefixes)) {
    const auto u = fb::parse_https_url(line);
    check(u.has_value() && line.starts_with("https://"));
    check(u->host == "sns.us-east-1.amazonaws.com" || u->host == "127.0.0.1");
    const auto authority_end = line.find_first_of("/?", 8);
    check(authority_end != std::string_view::npos || line.find('@') == std::string_view::npos);
    check(line.substr(0, authority_end).find('@') == std::string_view::npos);
  }
  (void)fb::url_token(line);
  (void)fb::address_token(line, "b+", "bounces.example.net");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  fuzz_reports(input);
  fuzz_json(input);
  fuzz_url(input);
  return 0;
}
