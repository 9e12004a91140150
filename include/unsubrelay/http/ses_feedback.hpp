// ses_feedback.hpp: POST /feedback/ses, Amazon SES notifications through SNS.
//
// Order of checks (feedback/sns_check.hpp): the body parses as an SNS
// delivery, its TopicArn is listed, its SigningCertURL (and SubscribeURL) is
// under a cert_url_prefixes entry, the certificate (cached) is valid and the
// signature verifies; anything else is 403 and nothing is recorded or
// fetched. Then: a SubscriptionConfirmation is confirmed by fetching its
// SubscribeURL; a Bounce or Complaint notification is matched to the
// contact and launch through the SES message id recorded at send time (else
// the recipient address alone) and recorded through the Recorder, once per
// SES feedbackId and recipient (SNS retries count once). A store failure is
// 503, so SNS delivers it again later.
#pragma once

#include <memory>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/feedback/https_fetch.hpp"
#include "unsubrelay/feedback/recorder.hpp"
#include "unsubrelay/feedback/sns.hpp"
#include "unsubrelay/http/service.hpp"

namespace unsubrelay::http {

class SesFeedback {
 public:
  /// fetcher: how SubscribeURLs and certificates are fetched (https_get with
  /// the allow-list; tests may inject another).
  SesFeedback(const config::SesSns& settings, feedback::Recorder& recorder, feedback::Fetcher fetcher);

  Response handle(const Request& request);

 private:
  Response confirm(const feedback::SnsMessage& message);
  Response notification(const feedback::SnsMessage& message);

  const config::SesSns& settings_;
  feedback::Recorder& recorder_;
  feedback::Fetcher fetcher_;
  feedback::CertificateCache certificates_;
};

/// The fetcher production uses: https_get with the allow-list, ca_file and bounds of settings.
feedback::Fetcher ses_fetcher(const config::SesSns& settings);

}  // namespace unsubrelay::http
