// ses_feedback.hpp: POST /feedback/ses, Amazon SES notifications through SNS.
//
// Order of checks (feedback/sns_check.hpp): the body parses as an SNS
// delivery (else 400); its TopicArn is listed, its SigningCertURL (and
// SubscribeURL) is under a cert_url_prefixes entry, its Type,
// SignatureVersion and Signature could be AWS's, and its Timestamp is
// at most a day old (else 403, and nothing is fetched); then the
// certificate, from the cache or fetched, and the signature (a bad one is
// 403). A certificate that cannot be had, now or remembered from a failed
// fetch in the last 30 s, or a fetch that finds the fetch pool full, is 503:
// SNS delivers it again later. Nothing is recorded on any refusal. Then: a
// SubscriptionConfirmation is confirmed by fetching its SubscribeURL; a
// Bounce or Complaint notification is matched to the contact and launch
// through the SES message id recorded at send time (else the recipient
// address alone) and recorded through the Recorder, once per SES feedbackId
// and recipient (SNS retries count once). A store failure is 503, so SNS
// delivers it again later.
//
// Fetches run on a pool of their own (fetch_threads threads; at most
// max_waiting_fetches of the HTTP service's handler threads wait for them),
// so a certificate URL that hangs never holds up one-click unsubscribes or
// /healthz.
#pragma once

#include <memory>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/feedback/certificate_cache.hpp"
#include "unsubrelay/feedback/fetch_pool.hpp"
#include "unsubrelay/feedback/https_fetch.hpp"
#include "unsubrelay/feedback/recorder.hpp"
#include "unsubrelay/feedback/sns.hpp"
#include "unsubrelay/http/service.hpp"

namespace unsubrelay::http {

constexpr std::size_t fetch_threads = 2;        // certificate and SubscribeURL fetches at once
constexpr std::size_t max_waiting_fetches = 6;  // handler threads that may wait for them

class SesFeedback {
 public:
  /// fetcher: how SubscribeURLs and certificates are fetched (https_get with
  /// the allow-list; tests may inject another).
  SesFeedback(const config::SesSns& settings, feedback::Recorder& recorder, feedback::Fetcher fetcher);

  Response handle(const Request& request);
  /// SPEC Part 3: the other tenants' recorders. A notification then goes to the
  /// tenant whose store recorded its SES message id; one that no tenant sent
  /// is acknowledged and applied to nobody (whose contact it is cannot be told).
  void set_tenant_recorders(std::vector<feedback::Recorder*> recorders) { tenants_ = std::move(recorders); }

 private:
  Response confirm(const feedback::SnsMessage& message);
  Response notification(const feedback::SnsMessage& message);

  const config::SesSns& settings_;
  feedback::Recorder& recorder_;
  std::vector<feedback::Recorder*> tenants_;
  feedback::Fetcher fetcher_;
  feedback::FetchPool pool_;  // before the cache: its jobs are done before the cache goes
  feedback::CertificateCache certificates_;
};

/// The fetcher production uses: https_get with the allow-list, ca_file and
/// bounds of settings and a client context with the TLS profile. An empty
/// function, and why, when the profile or the CA file cannot be applied.
feedback::Fetcher ses_fetcher(const config::SesSns& settings, const config::Tls& profile, std::string& error);

}  // namespace unsubrelay::http
