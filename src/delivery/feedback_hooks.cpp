// feedback_hooks.cpp: VERP senders, in-session bounce classification, sent_after_optout.
#include "unsubrelay/delivery/feedback_hooks.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/feedback/dsn.hpp"

namespace unsubrelay::delivery {

namespace {

/// "5.1.1" from "550 5.1.1 User unknown"; "" when the reply carries no enhanced code.
std::string enhanced_status(const std::string& reply) {
  if (reply.size() < 9 || reply[3] != ' ') return {};
  const auto end = reply.find(' ', 4);
  return reply.substr(4, end == std::string::npos ? std::string::npos : end - 4);
}

store::Feedback report_for(const CampaignCopy& copy, long long now) {
  store::Feedback f;
  f.address = copy.address;
  f.uid = copy.uid;
  f.launch_list_id = copy.launch_list_id;
  f.email_id = copy.email_id;
  f.source = "smtp";
  f.time = now;
  return f;
}

}  // namespace

FeedbackHooks::FeedbackHooks(const config::Feedback& settings, feedback::Recorder* recorder, config::Suppression mode)
    : addresses_(settings), recorder_(recorder), mode_(mode) {}

std::string FeedbackHooks::envelope_sender(const std::string& message_sender, const std::string& token) const {
  if (!verp() || token.empty()) return message_sender;
  return addresses_.verp_address(token);
}

std::optional<store::Feedback> FeedbackHooks::refusal(const CampaignCopy& copy, const RecipientResult& result,
                                                      long long now) const {
  if (result.status != DeliveryStatus::bounced || copy.uid.empty() || result.relay == "none") return std::nullopt;
  auto f = report_for(copy, now);
  f.status = enhanced_status(result.reply);
  // SPEC Part 2: 5.1.x (bad address or mailbox) and 5.2.1 (disabled) are hard
  // bounces; any other refusal (policy, content, 5.7.x, or no enhanced code at
  // all) is `blocked`, which never suppresses.
  f.kind = feedback::classify_status(f.status) == feedback::BounceKind::hard ? store::FeedbackKind::hard_bounce
                                                                             : store::FeedbackKind::blocked;
  f.diagnostic = result.reply;
  f.dedup_key = fmt::format("smtp:{}:{}", copy.queue_id, copy.index);
  return f;
}

std::optional<store::Feedback> FeedbackHooks::expiry(const CampaignCopy& copy, const std::string& last_reply,
                                                     long long now) const {
  if (copy.uid.empty()) return std::nullopt;
  auto f = report_for(copy, now);
  f.kind = store::FeedbackKind::soft_bounce;
  f.status = "4.4.7";
  f.diagnostic = "expired in the queue; last reply: " + last_reply;
  f.dedup_key = fmt::format("expired:{}:{}", copy.queue_id, copy.index);
  return f;
}

void FeedbackHooks::record(const std::vector<store::Feedback>& reports, const std::string& queue_id) {
  if (!recorder_) return;
  for (const auto& r : reports) {
    // The copy's outcome stands either way; a report the store cannot take now is logged by the Recorder.
    recorder_->record(r, queue_id);
  }
}

void FeedbackHooks::mark_after_optout(std::vector<store::Send>& sends, const std::vector<std::string>& addresses,
                                      const store::CopyKind& kind, long long now) {
  if (!recorder_ || sends.empty() || sends.size() != addresses.size()) return;
  std::vector<std::string> delivered;
  for (std::size_t i = 0; i < sends.size(); ++i) {
    if (sends[i].status == store::SendStatus::delivered) delivered.push_back(addresses[i]);
  }
  if (delivered.empty()) return;
  const auto entries = recorder_->store().suppressions_for(delivered, now);
  if (!entries) return;  // unknown: nothing is claimed either way
  for (std::size_t i = 0; i < sends.size(); ++i) {
    if (sends[i].status != store::SendStatus::delivered) continue;
    const auto address = store::normalise_address(addresses[i]);
    if (const auto* stop = store::applicable_to(*entries, address, kind, mode_, sends[i].time)) {
      sends[i].after_optout = true;
      ++recorder_->metrics().sent_after_optout;
      spdlog::error("{}: to=<{}>: handed upstream after an opt-out recorded at {} ({}, source {}): sent_after_optout",
                    sends[i].queue_id, printable(addresses[i], 256), rfc5322_date(stop->created), stop->reason,
                    stop->source);
    }
  }
}

}  // namespace unsubrelay::delivery
