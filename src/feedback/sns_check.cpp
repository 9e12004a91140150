// sns_check.cpp: topic, URLs, form, Timestamp, certificate, signature, in that order.
#include "unsubrelay/feedback/sns_check.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::feedback {

const char* describe(SnsVerdict v) {
  switch (v) {
    case SnsVerdict::ok: return "ok";
    case SnsVerdict::unlisted_topic: return "topic not listed";
    case SnsVerdict::cert_url_not_allowed: return "SigningCertURL not allowed";
    case SnsVerdict::subscribe_url_not_allowed: return "SubscribeURL not allowed";
    case SnsVerdict::stale_timestamp: return "Timestamp refused";
    case SnsVerdict::certificate_unavailable: return "signing certificate unavailable";
    case SnsVerdict::signature_invalid: return "signature invalid";
  }
  return "?";
}

namespace {

/// The Timestamp is readable, at most max_age_seconds old and at most max_ahead_seconds ahead.
bool timestamp_acceptable(const SnsMessage& message, const SnsPolicy& policy, std::int64_t now, std::string& why) {
  const auto t = parse_sns_timestamp(message.timestamp);
  if (!t) {
    why = "Timestamp unreadable: " + printable(message.timestamp, 40);
  } else if (now - *t > policy.max_age_seconds) {
    why = fmt::format("Timestamp {} is {} s old (max_age_seconds {})", printable(message.timestamp, 40), now - *t,
                      policy.max_age_seconds);
  } else if (*t - now > policy.max_ahead_seconds) {
    why = fmt::format("Timestamp {} is {} s ahead of this clock (at most {})", printable(message.timestamp, 40),
                      *t - now, policy.max_ahead_seconds);
  }
  return why.empty();
}

}  // namespace

SnsCheck check_sns(const SnsMessage& message, const SnsPolicy& policy, CertificateCache& certificates,
                   std::int64_t now) {
  SnsCheck out;
  if (std::find(policy.topic_arns.begin(), policy.topic_arns.end(), message.topic_arn) == policy.topic_arns.end()) {
    out.verdict = SnsVerdict::unlisted_topic;
    out.detail = printable(message.topic_arn, 200);
    return out;
  }
  if (!url_allowed(message.signing_cert_url, policy.cert_url_prefixes)) {
    out.verdict = SnsVerdict::cert_url_not_allowed;
    out.detail = printable(message.signing_cert_url, 200);
    return out;
  }
  const bool confirmation = message.type == SnsType::subscription_confirmation ||
                            message.type == SnsType::unsubscribe_confirmation;
  if (confirmation && !url_allowed(message.subscribe_url, policy.cert_url_prefixes)) {
    out.verdict = SnsVerdict::subscribe_url_not_allowed;
    out.detail = printable(message.subscribe_url, 200);
    return out;
  }
  // Steps 3 and 4 (sns_check.hpp): still nothing fetched.
  out.signature = check_signature_form(message);
  if (out.signature != SignatureError::none) {
    out.verdict = SnsVerdict::signature_invalid;
    out.detail = describe(out.signature);
    return out;
  }
  if (!timestamp_acceptable(message, policy, now, out.detail)) {
    out.verdict = SnsVerdict::stale_timestamp;
    return out;
  }
  const auto certificate = certificates.get(message.signing_cert_url, now);
  if (!certificate.ok()) {
    out.verdict = SnsVerdict::certificate_unavailable;
    out.fetch = certificate.error;
    out.detail = std::string(describe(certificate.error)) + ": " + certificate.detail;
    return out;
  }
  out.signature = verify_signature(message, certificate.body, now);
  if (out.signature != SignatureError::none) {
    out.verdict = SnsVerdict::signature_invalid;
    out.detail = describe(out.signature);
  }
  return out;
}

}  // namespace unsubrelay::feedback
