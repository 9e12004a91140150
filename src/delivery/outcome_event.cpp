// outcome_event.cpp: a campaign copy's outcome as an event (outcome_event.hpp).
#include "unsubrelay/delivery/outcome_event.hpp"

#include "unsubrelay/feedback/dsn.hpp"

namespace unsubrelay::delivery {

namespace {

/// "5.1.1" from "550 5.1.1 User unknown"; "" when the reply carries no enhanced code.
std::string reply_status(const std::string& reply) {
  if (reply.size() < 9 || reply[3] != ' ' || (reply[4] != '2' && reply[4] != '4' && reply[4] != '5') ||
      reply[5] != '.') {
    return {};
  }
  const auto end = reply.find(' ', 4);
  return reply.substr(4, end == std::string::npos ? std::string::npos : end - 4);
}

store::Event event_base(const CampaignCopy& copy, const std::string& topic, long long now) {
  store::Event e;
  e.uid = copy.uid;
  e.email_id = copy.email_id;
  e.launch_list_id = copy.launch_list_id;
  e.topic = topic;
  e.queue_id = copy.queue_id;
  e.copy = static_cast<long long>(copy.index);
  e.source = "smtp";
  e.time = now;
  return e;
}

}  // namespace

store::Event copy_event(const CampaignCopy& copy, const std::string& topic, const RecipientResult& result,
                        const std::string& suppressed, const std::string& scope, long long now) {
  auto e = event_base(copy, topic, now);
  if (!suppressed.empty()) {
    e.action = store::Action::suppressed;
    e.source = "relay";
    e.detail = suppressed;
    e.kind = scope;
    return e;
  }
  e.detail = result.reply;
  e.status = reply_status(result.reply);
  switch (result.status) {
    case DeliveryStatus::sent:
      e.action = store::Action::delivered;
      e.upstream_id = result.upstream_id;
      break;
    case DeliveryStatus::deferred: e.action = store::Action::deferred; break;
    case DeliveryStatus::bounced:
      // The feedback hooks' rule (SPEC Part 2): 5.1.x and 5.2.1 are hard
      // bounces; any other refusal (policy, content, 5.7.x, no code) is blocked.
      if (feedback::classify_status(e.status) == feedback::BounceKind::hard) {
        e.action = store::Action::bounced;
        e.kind = "hard";
      } else {
        e.action = store::Action::blocked;
      }
      break;
  }
  return e;
}

store::Event expired_event(const CampaignCopy& copy, const std::string& topic, const std::string& last_reply,
                           long long now) {
  auto e = event_base(copy, topic, now);
  e.action = store::Action::bounced;
  e.kind = "soft";
  e.status = "4.4.7";
  e.detail = "expired in the queue; last reply: " + last_reply;
  return e;
}

}  // namespace unsubrelay::delivery
