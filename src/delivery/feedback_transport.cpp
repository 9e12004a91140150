// feedback_transport.cpp: DSNs and ARF reports, from the spool to the store.
#include "unsubrelay/delivery/feedback_transport.hpp"

#include <ctime>

#include <boost/asio/ip/address.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/offload.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/config/network_match.hpp"
#include "unsubrelay/feedback/processor.hpp"

namespace unsubrelay::delivery {

namespace {

constexpr const char* relay_name = "feedback";

/// What the disk-pool step found: the result, and where to forward (if anywhere).
struct Applied {
  RecipientResult result;
  std::string forward_to;
};

RecipientResult deferred(std::string why) { return {DeliveryStatus::deferred, "451 4.3.0 " + why, relay_name, {}}; }

class FeedbackTransport final : public Upstream {
 public:
  FeedbackTransport(const config::Feedback& settings, feedback::Addresses addresses, const token::KeySet& keys,
                    feedback::Recorder& recorder, std::function<feedback::Recorder*(const std::string&)> route,
                    Upstream& upstream, boost::asio::thread_pool& disk)
      : settings_(settings), addresses_(std::move(addresses)), keys_(keys), recorder_(recorder),
        route_(std::move(route)), upstream_(upstream), disk_(disk) {}

  boost::asio::awaitable<std::vector<RecipientResult>> deliver(OutboundCopy copy) override {
    std::vector<RecipientResult> results;
    for (const auto& rcpt : copy.recipients) {
      auto applied = co_await offload(disk_, [&] { return apply(copy, rcpt); });
      if (applied.result.status == DeliveryStatus::sent && !applied.forward_to.empty()) {
        applied.result = co_await forward(copy, applied.forward_to, std::move(applied.result));
      }
      results.push_back(std::move(applied.result));
    }
    co_return results;
  }

  std::size_t concurrency() const override { return 4; }

 private:
  /// Disk pool: resolve, find the contact's address, record; where to forward.
  Applied apply(const OutboundCopy& copy, const std::string& rcpt) {
    const auto now = static_cast<long long>(std::time(nullptr));
    const feedback::Origin origin{copy.queue_id, trusted(copy.client_address)};
    auto resolved = feedback::resolve_report(copy.content, rcpt, addresses_, keys_, now, origin);
    spdlog::info("{}: feedback: to=<{}>: {}", copy.queue_id, printable(rcpt, 256), resolved.how);
    // The tenant whose key verified the token (SPEC Part 3); else the default's.
    auto* routed = route_ && !resolved.key_id.empty() ? route_(resolved.key_id) : nullptr;
    auto& recorder = routed ? *routed : recorder_;
    if (resolved.unverified) {
      resolved.unverified->client = copy.client_address;
      if (!recorder.record_unverified(*resolved.unverified, copy.queue_id)) {
        return {deferred("store unavailable: " + recorder.store().last_error()), {}};
      }
      return {{DeliveryStatus::sent, "250 2.0.0 unverified, applied to nobody: " + resolved.how, relay_name, {}}, {}};
    }
    if (!resolved.report) {
      return {{DeliveryStatus::sent, "250 2.0.0 nothing to record: " + resolved.how, relay_name, {}}, {}};
    }
    auto& report = *resolved.report;
    auto& store = recorder.store();
    if (report.address.empty() && !report.uid.empty()) {
      const auto address = store.address_of(report.uid);
      if (!address) return {deferred("store unavailable: " + store.last_error()), {}};
      report.address = *address;  // "" for a uid this store does not know: recorded, applied to nobody
    }
    const auto outcome = recorder.record(report, copy.queue_id);
    if (!outcome) return {deferred("store unavailable: " + store.last_error()), {}};
    Applied out{{DeliveryStatus::sent,
                 fmt::format("250 2.0.0 {} recorded ({})", store::name(report.kind), resolved.how), relay_name, {}},
                {}};
    if (settings_.forward_to_sender && !report.launch_list_id.empty()) {
      const auto sender = store.launch_sender(report.launch_list_id);
      if (!sender) return {deferred("store unavailable: " + store.last_error()), {}};
      // Never to ourselves; each report once, and at most forward_per_hour a sender.
      if (addresses_.classify(*sender) == feedback::AddressKind::none && !sender->empty()) {
        if (!claim(store, copy, report, *sender, now, out)) return {deferred("store unavailable: " + store.last_error()), {}};
      }
    }
    return out;
  }

  /// Whether the client the report came from may name its contact by address alone.
  bool trusted(const std::string& client) const { return config::in_networks(client, settings_.trusted_networks); }

  /// Sets out.forward_to when this copy may be forwarded (store::ForwardClaim); false when the store failed.
  bool claim(store::Store& store, const OutboundCopy& copy, const store::Feedback& report, const std::string& sender,
             long long now, Applied& out) {
    const auto owner = fmt::format("{}:{}", copy.queue_id, copy.copy_index);
    const auto claimed =
        store.claim_forward(report.dedup_key, sender, owner, now, settings_.forward_per_hour);
    if (!claimed) return false;
    auto& metrics = recorder_.metrics();
    switch (*claimed) {
      case store::ForwardClaim::forward: out.forward_to = sender; break;
      case store::ForwardClaim::duplicate:
        ++metrics.forwards_duplicate;
        out.result.reply += ", already forwarded";
        break;
      case store::ForwardClaim::limited:
        ++metrics.forwards_limited;
        spdlog::warn("{}: feedback: not forwarded to <{}>: forward_per_hour ({}) reached for that sender",
                     copy.queue_id, printable(sender, 256), settings_.forward_per_hour);
        out.result.reply += fmt::format(", not forwarded (forward_per_hour {} reached)", settings_.forward_per_hour);
        break;
    }
    return true;
  }

  /// forward_to_sender: the report, unchanged, from <> to the launch's sender.
  boost::asio::awaitable<RecipientResult> forward(const OutboundCopy& copy, const std::string& to,
                                                  RecipientResult applied) {
    OutboundCopy fwd{copy.queue_id, copy.copy_index, "", std::vector<std::string>(1, to), copy.content, {}};
    auto results = co_await upstream_.deliver(std::move(fwd));
    const auto r = results.empty() ? deferred("no result") : results.front();
    if (r.status == DeliveryStatus::deferred) {
      // Tried again later; the report itself is recorded and will count once.
      co_return deferred(fmt::format("report recorded, forwarding to <{}> deferred: {}", printable(to, 256),
                                     printable(r.reply, 200)));
    }
    ++recorder_.metrics().forwards_sent;
    spdlog::info("{}: feedback: forwarded to <{}>, relay={}, status={} ({})", copy.queue_id, printable(to, 256),
                 r.relay, r.status == DeliveryStatus::sent ? "sent" : "bounced", printable(r.reply, 200));
    applied.reply += fmt::format(", forwarded to <{}>", printable(to, 256));
    co_return applied;
  }

  const config::Feedback& settings_;
  feedback::Addresses addresses_;
  const token::KeySet& keys_;
  feedback::Recorder& recorder_;
  std::function<feedback::Recorder*(const std::string&)> route_;
  Upstream& upstream_;
  boost::asio::thread_pool& disk_;
};

}  // namespace

std::unique_ptr<Upstream> make_feedback_transport(const config::Feedback& settings, const token::KeySet& keys,
                                                  feedback::Recorder& recorder, Upstream& upstream,
                                                  boost::asio::thread_pool& disk) {
  return std::make_unique<FeedbackTransport>(settings, feedback::Addresses(settings), keys, recorder, nullptr,
                                             upstream, disk);
}

std::unique_ptr<Upstream> make_feedback_transport(
    const config::Feedback& settings, feedback::Addresses addresses, const token::KeySet& keys,
    feedback::Recorder& recorder, std::function<feedback::Recorder*(const std::string& key_id)> route,
    Upstream& upstream, boost::asio::thread_pool& disk) {
  return std::make_unique<FeedbackTransport>(settings, std::move(addresses), keys, recorder, std::move(route),
                                             upstream, disk);
}

}  // namespace unsubrelay::delivery
