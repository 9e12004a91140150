// ses_feedback.cpp: POST /feedback/ses (ses_feedback.hpp).
#include "unsubrelay/http/ses_feedback.hpp"

#include <ctime>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/clock.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/common/tls.hpp"
#include "unsubrelay/feedback/ses.hpp"
#include "unsubrelay/feedback/sns.hpp"
#include "unsubrelay/feedback/sns_check.hpp"

namespace unsubrelay::http {

namespace {

Response text(int status, std::string body) { return {status, "text/plain; charset=utf-8", std::move(body) + "\n", {}}; }


/// One recipient's report: the copy recorded under the SES message id, else the address alone.
store::Feedback report_for(const std::string& address, const std::vector<store::SentCopy>& copies,
                           const feedback::SesNotification& n, const std::string& sns_id) {
  store::Feedback f;
  f.address = store::normalise_address(address);
  for (const auto& c : copies) {
    if (store::normalise_address(c.address) == f.address) {
      f.uid = c.uid;
      f.launch_list_id = c.launch_list_id;
      f.email_id = c.email_id;
      break;
    }
  }
  f.source = "ses";
  f.time = now_seconds();
  // SES's feedbackId names one bounce or complaint event: an SNS retry carries the same one.
  f.dedup_key = fmt::format("ses:{}:{}", n.feedback_id.empty() ? sns_id : n.feedback_id, f.address);
  return f;
}

}  // namespace

feedback::Fetcher ses_fetcher(const config::SesSns& settings, const config::Tls& profile, std::string& error) {
  feedback::FetchOptions options;
  options.allowed_prefixes = settings.cert_url_prefixes;
  options.tls = make_client_context(profile, settings.ca_file, error);
  if (!options.tls) {
    error = "feedback.ses_sns: " + error;
    return {};
  }
  options.limits.timeout = std::chrono::seconds(settings.fetch_timeout_seconds);
  options.limits.max_body_bytes = settings.max_certificate_bytes;
  return [options](const std::string& url) { return feedback::https_get(url, options); };
}

SesFeedback::SesFeedback(const config::SesSns& settings, feedback::Recorder& recorder, feedback::Fetcher fetcher)
    : settings_(settings),
      recorder_(recorder),
      fetcher_(fetcher),
      pool_(fetch_threads, max_waiting_fetches),
      certificates_(std::move(fetcher), pool_) {}

Response SesFeedback::handle(const Request& request) {
  const auto parsed = feedback::parse_sns(request.body);
  if (!parsed.message) {
    spdlog::warn("feedback/ses: from {}: not an SNS delivery: {}", request.client_ip, parsed.error);
    return text(400, "not an SNS message: " + parsed.error);
  }
  const auto& m = *parsed.message;
  const feedback::SnsPolicy policy{settings_.topic_arns, settings_.cert_url_prefixes, settings_.max_age_seconds};
  const auto check = feedback::check_sns(m, policy, certificates_, now_seconds());
  if (!check.ok()) {
    // The certificate could not be had: 503, so SNS delivers again (it drops a delivery answered with a 4xx).
    const bool unavailable = check.verdict == feedback::SnsVerdict::certificate_unavailable;
    spdlog::warn("feedback/ses: from {}: refused ({}: {}), topic {}, MessageId {}: nothing recorded",
                 request.client_ip, feedback::describe(check.verdict), check.detail, printable(m.topic_arn, 200),
                 printable(m.message_id, 100));
    if (!unavailable) return text(403, "forbidden");
    auto busy = text(503, "signing certificate unavailable; try again later");
    busy.headers.emplace_back("Retry-After", "30");
    return busy;
  }
  switch (m.type) {
    case feedback::SnsType::subscription_confirmation: return confirm(m);
    case feedback::SnsType::notification: return notification(m);
    default:
      spdlog::info("feedback/ses: {} for topic {} acknowledged", printable(m.type_text, 60), printable(m.topic_arn, 200));
      return text(200, "ok");
  }
}

Response SesFeedback::confirm(const feedback::SnsMessage& m) {
  // check_sns() already held SubscribeURL to the allow-list; https_get checks it again.
  const auto got = pool_.run([this, &m] { return fetcher_(m.subscribe_url); });
  if (!got) {
    spdlog::warn("feedback/ses: cannot confirm the subscription to {} now: too many fetches waiting",
                 printable(m.topic_arn, 200));
    return text(503, "subscription not confirmed; try again later");
  }
  if (!got->ok()) {
    spdlog::warn("feedback/ses: cannot confirm the subscription to {}: {} ({})", printable(m.topic_arn, 200),
                 feedback::describe(got->error), printable(got->detail, 200));
    return text(502, "subscription not confirmed");
  }
  spdlog::info("feedback/ses: subscription to {} confirmed", printable(m.topic_arn, 200));
  return text(200, "subscription confirmed");
}

Response SesFeedback::notification(const feedback::SnsMessage& m) {
  const auto parsed = feedback::parse_ses(m.message);
  if (!parsed.notification) {
    // Signed by AWS but not an SES notification: acknowledged, or SNS would retry it for days.
    spdlog::warn("feedback/ses: MessageId {}: not an SES notification ({}): ignored", printable(m.message_id, 100),
                 parsed.error);
    return text(200, "ignored");
  }
  const auto& n = *parsed.notification;
  if (n.kind != feedback::SesKind::bounce && n.kind != feedback::SesKind::complaint) return text(200, "ignored");
  // The tenant whose store recorded the message id (SPEC Part 3); without tenants, the one store.
  auto* recorder = &recorder_;
  auto copies = n.message_id.empty() ? std::optional<std::vector<store::SentCopy>>(std::vector<store::SentCopy>{})
                                     : recorder_.store().sent_copies(n.message_id);
  for (auto* tenant : tenants_) {
    if (!copies || !copies->empty() || n.message_id.empty()) break;
    copies = tenant->store().sent_copies(n.message_id);
    recorder = tenant;
  }
  if (!copies) return text(503, "store unavailable");
  if (!tenants_.empty() && copies->empty()) {
    spdlog::warn("feedback/ses: SES message {} was sent by no tenant's copy here: applied to nobody",
                 printable(n.message_id, 100));
    return text(200, "unmatched");
  }
  std::vector<store::Feedback> reports;
  if (n.kind == feedback::SesKind::bounce) {
    const auto kind = feedback::classify_ses_bounce(n.bounce_type) == feedback::BounceKind::hard
                          ? store::FeedbackKind::hard_bounce
                          : store::FeedbackKind::soft_bounce;
    for (const auto& b : n.bounced) {
      auto f = report_for(b.email_address, *copies, n, m.message_id);
      f.kind = kind;
      f.status = b.status.empty() ? n.bounce_type : b.status;
      f.diagnostic = b.diagnostic_code.empty() ? n.bounce_type + "/" + n.bounce_sub_type : b.diagnostic_code;
      reports.push_back(std::move(f));
    }
  } else {
    for (const auto& address : n.complained) {
      auto f = report_for(address, *copies, n, m.message_id);
      f.kind = store::FeedbackKind::complaint;
      f.status = n.complaint_feedback_type;
      f.diagnostic = "SES complaint " + n.complaint_sub_type;
      reports.push_back(std::move(f));
    }
  }
  for (const auto& f : reports) {
    if (!recorder->record(f, "ses " + printable(n.message_id, 80))) return text(503, "store unavailable");
  }
  return text(200, "ok");
}

}  // namespace unsubrelay::http
