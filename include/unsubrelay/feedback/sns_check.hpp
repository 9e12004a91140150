// sns_check.hpp: everything that must hold before an SNS delivery is
// believed, in an order that fetches nothing it need not.
//
// 1. TopicArn is one of the configured topic_arns (no fetch for strangers);
// 2. SigningCertURL passes url_allowed(); for confirmations, SubscribeURL too;
// 3. the certificate comes from the cache (fetched on a miss);
// 4. the signature verifies with it, inside its validity period.
// Any failure means 403 and nothing recorded (SPEC Part 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unsubrelay/feedback/https_fetch.hpp"
#include "unsubrelay/feedback/sns.hpp"

namespace unsubrelay::feedback {

struct SnsPolicy {
  std::vector<std::string> topic_arns;         // feedback.ses_sns.topic_arns
  std::vector<std::string> cert_url_prefixes;  // feedback.ses_sns.cert_url_prefixes
};

enum class SnsVerdict {
  ok,
  unlisted_topic,
  cert_url_not_allowed,
  subscribe_url_not_allowed,
  certificate_unavailable,  // the fetch failed (FetchError in detail)
  signature_invalid,        // see SnsCheck::signature
};
const char* describe(SnsVerdict v);

struct SnsCheck {
  SnsVerdict verdict = SnsVerdict::ok;
  SignatureError signature = SignatureError::none;
  std::string detail;  // for the log: which URL, which fetch error
  bool ok() const { return verdict == SnsVerdict::ok; }
};

/// now: unix seconds (certificate validity, cache age).
SnsCheck check_sns(const SnsMessage& message, const SnsPolicy& policy, CertificateCache& certificates,
                   std::int64_t now);

}  // namespace unsubrelay::feedback
