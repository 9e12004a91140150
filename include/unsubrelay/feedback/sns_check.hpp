// sns_check.hpp: everything that must hold before an SNS delivery is
// believed, in an order that fetches nothing it need not.
//
// 1. TopicArn is one of the configured topic_arns (no fetch for strangers);
// 2. SigningCertURL passes url_allowed(); for confirmations, SubscribeURL too;
// 3. the message could be signed at all: a known Type, SignatureVersion 1
//    or 2, a Signature in base64;
// 4. its Timestamp is at most max_age_seconds old and at most
//    max_ahead_seconds ahead (a captured delivery cannot be replayed for ever);
// 5. the certificate comes from the cache (fetched on a miss; a failure is
//    remembered, certificate_cache.hpp);
// 6. the signature verifies with it, inside its validity period.
// Steps 1 to 4 cost no fetch. Any failure means nothing is recorded (SPEC
// Part 2); the caller answers 403, or 503 when the certificate could not be
// had (SNS delivers it again later).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unsubrelay/feedback/certificate_cache.hpp"
#include "unsubrelay/feedback/sns.hpp"

namespace unsubrelay::feedback {

/// How far ahead of our clock a Timestamp may be: clocks drift, but an hour is not drift.
constexpr std::int64_t max_timestamp_ahead_seconds = 3600;

struct SnsPolicy {
  std::vector<std::string> topic_arns;         // feedback.ses_sns.topic_arns
  std::vector<std::string> cert_url_prefixes;  // feedback.ses_sns.cert_url_prefixes
  std::int64_t max_age_seconds = 86400;        // a day: SNS retries for an hour at most
  std::int64_t max_ahead_seconds = max_timestamp_ahead_seconds;
};

enum class SnsVerdict {
  ok,
  unlisted_topic,
  cert_url_not_allowed,
  subscribe_url_not_allowed,
  stale_timestamp,          // Timestamp unreadable, too old or too far ahead
  certificate_unavailable,  // the fetch failed or is remembered as failed (FetchError in fetch, detail)
  signature_invalid,        // see SnsCheck::signature
};
const char* describe(SnsVerdict v);

struct SnsCheck {
  SnsVerdict verdict = SnsVerdict::ok;
  SignatureError signature = SignatureError::none;
  FetchError fetch = FetchError::none;  // certificate_unavailable: why
  std::string detail;  // for the log: which URL, which fetch error
  bool ok() const { return verdict == SnsVerdict::ok; }
};

/// now: unix seconds (Timestamp age, certificate validity, cache age).
SnsCheck check_sns(const SnsMessage& message, const SnsPolicy& policy, CertificateCache& certificates,
                   std::int64_t now);

}  // namespace unsubrelay::feedback
