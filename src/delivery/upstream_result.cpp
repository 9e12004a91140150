// upstream_result.cpp: per-recipient outcome of an SMTP transaction.
#include "unsubrelay/delivery/upstream_result.hpp"

namespace unsubrelay::delivery {

namespace {

RecipientResult from_reply(const smtp::ServerReply& r, const std::string& relay) {
  const auto status = r.positive() ? DeliveryStatus::sent : r.permanent() ? DeliveryStatus::bounced
                                                                          : DeliveryStatus::deferred;
  return {status, r.text(), relay, {}};
}

}  // namespace

std::vector<RecipientResult> all_deferred(std::size_t recipients, const std::string& reason, const std::string& relay) {
  return std::vector<RecipientResult>(recipients, RecipientResult{DeliveryStatus::deferred, reason, relay, {}});
}

std::vector<RecipientResult> results_of(const smtp::Transaction& tx, std::size_t recipients, const std::string& relay,
                                        bool ses) {
  const std::string lost = "451 4.4.2 " + (tx.failure.empty() ? std::string("no reply") : tx.failure);
  if (!tx.mail) return all_deferred(recipients, lost, relay);
  if (!tx.mail->positive()) return std::vector<RecipientResult>(recipients, from_reply(*tx.mail, relay));

  std::vector<RecipientResult> out;
  for (std::size_t i = 0; i < recipients; ++i) {
    const auto& rcpt = i < tx.rcpt.size() ? tx.rcpt[i] : std::nullopt;
    if (!rcpt) {
      out.push_back({DeliveryStatus::deferred, lost, relay, {}});
    } else if (!rcpt->positive()) {
      out.push_back(from_reply(*rcpt, relay));
    } else if (!tx.data) {
      out.push_back({DeliveryStatus::deferred, lost, relay, {}});
    } else if (tx.data->code != 354) {
      out.push_back(from_reply(*tx.data, relay));
    } else if (!tx.done) {
      // The dot was sent but no reply came: the message may have arrived.
      // Deferring risks a duplicate, bouncing risks a loss; Postfix defers too.
      out.push_back({DeliveryStatus::deferred, lost, relay, {}});
    } else {
      auto r = from_reply(*tx.done, relay);
      if (ses && r.status == DeliveryStatus::sent) r.upstream_id = smtp::ses_message_id(*tx.done);
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace unsubrelay::delivery
