// queue_manager.cpp: scheduling (which message is due), copy slots, bounces, drain.
// One delivery attempt, step by step, is in queue_attempt.cpp.
#include "unsubrelay/delivery/queue_manager.hpp"

#include <ctime>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/clock.hpp"
#include "unsubrelay/common/offload.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/delivery/bounce.hpp"

namespace unsubrelay::delivery {

namespace asio = boost::asio;

void LatencyHistogram::observe(double seconds) {
  for (std::size_t i = 0; i < std::size(bounds); ++i) {
    if (seconds <= bounds[i]) ++buckets[i];
  }
  ++count;
  sum_micros += static_cast<std::uint64_t>(seconds * 1e6);
}

std::string LatencyHistogram::prometheus(const char* name) const {
  std::string out = fmt::format("# HELP {0} Time the upstream took for one copy, in seconds.\n# TYPE {0} histogram\n", name);
  for (std::size_t i = 0; i < std::size(bounds); ++i) {
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds[i], buckets[i].load());
  }
  out += fmt::format("{0}_bucket{{le=\"+Inf\"}} {1}\n{0}_sum {2}\n{0}_count {1}\n", name, count.load(),
                     static_cast<double>(sum_micros.load()) / 1e6);
  return out;
}

QueueManager::QueueManager(asio::io_context& io, asio::thread_pool& disk, const spool::Spool& spool,
                           Upstream& upstream, RetryPolicy retry, std::string hostname,
                           const mime::Rewriter* rewriter, store::Store* store, config::Suppression suppression)
    : strand_(asio::make_strand(io)),
      disk_(disk),
      spool_(spool),
      upstream_(upstream),
      retry_(retry),
      hostname_(std::move(hostname)),
      rewriter_(rewriter && store ? rewriter : nullptr),
      store_(rewriter && store ? store : nullptr),
      suppression_(suppression),
      recorder_(store_ ? std::make_unique<store::DeliveryRecorder>(*store_) : nullptr),
      wake_(strand_),
      slot_free_(strand_) {}

void QueueManager::start(const std::vector<std::string>& recovered) {
  asio::post(strand_, [this, recovered] {
    for (const auto& id : recovered) entries_.emplace(id, Entry{});
    asio::co_spawn(strand_, schedule_loop(), asio::detached);
  });
}

void QueueManager::enqueue(std::string id, std::unique_ptr<spool::OpenMessage> opened) {
  asio::post(strand_, [this, id = std::move(id), opened = std::shared_ptr<spool::OpenMessage>(std::move(opened))] {
    auto& entry = entries_[id];
    entry.next_try = 0;
    entry.opened = opened;
    wake_.cancel();
  });
}

void QueueManager::rescan() {
  // `queue flush`: everything retries now, and files that appeared in the
  // spool behind our back (restored by an operator) are picked up.
  for (const auto& id : spool_.list_ids()) entries_.emplace(id, Entry{});
  for (auto& [id, entry] : entries_) entry.next_try = 0;
  spdlog::info("queue flush: {} message(s) scheduled for immediate delivery", entries_.size());
}

asio::awaitable<void> QueueManager::schedule_loop() {
  while (!stopping_) {
    if (spool_.take_flush_request()) rescan();
    const auto now = now_seconds();
    long long next_wake = now + 1;  // poll the flush request once a second
    for (auto& [id, entry] : entries_) {
      if (in_flight_.count(id)) continue;
      if (entry.next_try <= now) {
        if (in_flight_.size() >= upstream_.concurrency()) break;
        in_flight_.insert(id);
        asio::co_spawn(strand_, deliver(id), asio::detached);
      } else {
        next_wake = std::min(next_wake, entry.next_try);
      }
    }
    wake_.expires_after(std::chrono::seconds(std::max<long long>(0, next_wake - now)));
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> QueueManager::deliver(std::string id) {
  // Nothing expected throws here; if something does, the message waits like a
  // deferral instead of being retried in a tight loop (and the relay goes on).
  std::string failure;
  try {
    co_await attempt(id);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    const auto now = now_seconds();
    const auto next = retry_at(now, 1);
    spdlog::error("{}: delivery attempt failed: {}; retry in {} s", id, failure, next - now);
    if (entries_.count(id)) entries_[id].next_try = next;
  }
}

long long QueueManager::retry_at(long long now, unsigned attempts) const {
  // The scheduler's clock counts whole seconds: +1 rounds up, so a retry never
  // comes sooner than its backoff (found by tests/integration/test_fault_upstream.py).
  return now + backoff_seconds(retry_, attempts) + 1;
}

asio::awaitable<void> QueueManager::acquire_copy_slot() {
  // At most upstream.concurrency() copies in flight over all messages: the
  // upstream opens a connection per copy that finds none idle.
  while (copies_in_flight_ >= upstream_.concurrency()) {
    slot_free_.expires_at(asio::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await slot_free_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  ++copies_in_flight_;
}

void QueueManager::release_copy_slot() {
  --copies_in_flight_;
  slot_free_.cancel();
}

std::string QueueManager::queue_bounce(const spool::QueuedMessage& message, const std::vector<FailedRecipient>& failed,
                                       std::string_view content, long long now) {
  const auto& env = message.envelope;
  if (env.sender.empty()) {
    // RFC 5321 §4.5.5: never bounce a bounce.
    spdlog::warn("{}: {} recipient(s) failed; sender is <>, so no bounce is sent", message.id, failed.size());
    return {};
  }
  const auto dsn = build_bounce({hostname_, message.id, env.sender, env.arrival, now, failed, content});
  spool::QueueEnvelope bounce_env{now, "127.0.0.1", hostname_, {}, false, "", {env.sender}};
  std::string err;
  auto writer = spool_.create(bounce_env, &err);
  if (writer) err = writer->append(dsn);
  if (err.empty() && writer) err = writer->commit();
  if (!err.empty()) {
    spdlog::error("{}: cannot queue the bounce to <{}>: {}", message.id, env.sender, err);
    return {};
  }
  spdlog::info("{}: sender non-delivery notification: {}", message.id, writer->id());
  return writer->id();
}

asio::awaitable<void> QueueManager::drain() {
  co_await asio::post(strand_, asio::use_awaitable);
  stopping_ = true;
  wake_.cancel();
  asio::steady_timer poll(strand_);
  while (!in_flight_.empty()) {
    poll.expires_after(std::chrono::milliseconds(20));
    boost::system::error_code ec;
    co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_await upstream_.close();
}

}  // namespace unsubrelay::delivery
