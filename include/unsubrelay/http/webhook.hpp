// webhook.hpp: events pushed to receivers, off the mail path (docs/events.md).
//
// One thread per receiver reads new events from the store, keeps the actions
// the receiver's `events:` names (absent: unsubscribe, resubscribe, erase),
// POSTs them as JSON (one object per POST, or with batch_size > 1 an array of
// up to batch_size, waiting at most batch_ms for more) with
// X-Unsubrelay-Signature: sha256=HEX(HMAC-SHA256(secret, body)), and retries a
// failure with exponential backoff (1 s doubling to 5 min) before moving on:
// events are delivered in order, at least once. The
// position (the last event id sent) is kept in the store under the
// receiver's URL, so a restart resumes there. In a fleet sharing a store, the
// relays hold a lease per receiver (store::Store::take_lease): one relay
// sends, the others wait, and one of them takes over within lease_seconds
// when the sender stops. Mail never waits for a receiver.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace boost::asio::ssl {
class context;
}

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/store/store.hpp"

namespace unsubrelay::http {

struct WebhookUrl;
class EventFilter;

class WebhookSender {
 public:
  /// tls: the client context for https:// receivers (common/tls.hpp
  /// make_client_context: the TLS profile, the system CAs); holder: this
  /// relay's name for leases (stable across its restarts); state_dir: where
  /// an older version kept per-relay cursor files (read once, to carry on from them).
  WebhookSender(const std::vector<config::Webhook>& hooks, std::shared_ptr<boost::asio::ssl::context> tls,
                store::Store& store, std::string holder, std::string state_dir);
  ~WebhookSender();  // stops and joins
  void stop();

 private:
  struct Stream;
  void run(std::size_t index, config::Webhook hook, std::string secret);
  /// Reads on from the stream's position into its batch (up to batch_size
  /// wanted events); true when it caught up, nullopt when the store failed.
  std::optional<bool> read_more(const config::Webhook& hook, const EventFilter& filter, Stream& s);
  /// The position a receiver starts from: the fleet's, else an older
  /// version's cursor file, else the newest event; nullopt when the store failed.
  std::optional<long long> start_position(const std::string& name, std::size_t index);
  /// POSTs one batch until the receiver accepts it; false when stopping or
  /// when this relay lost the lease (hold() false) before it was accepted.
  bool deliver(const config::Webhook& hook, const WebhookUrl& url, const std::string& secret,
               const std::vector<store::StoredEvent>& batch, std::chrono::milliseconds& backoff,
               const std::function<bool()>& hold);
  /// Sleeps d, waking early when stop() is called.
  void pause(std::chrono::milliseconds d) const;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  store::Store& store_;
  std::string holder_;
  std::string state_dir_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

/// The signature header value for a body: "sha256=" + lower-case hex HMAC.
std::string webhook_signature(const std::string& secret, const std::string& body);


}  // namespace unsubrelay::http
