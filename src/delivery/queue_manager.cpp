// queue_manager.cpp: scheduling (which message is due), copy slots, bounces, drain.
// One delivery attempt, step by step, is in queue_attempt.cpp.
#include "unsubrelay/delivery/queue_manager.hpp"

#include <algorithm>
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
#include "unsubrelay/common/poll.hpp"
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
                           const mime::Rewriter* rewriter, store::Store* store, config::Suppression suppression,
                           ShardLink shard)
    : strand_(asio::make_strand(io)),
      disk_(disk),
      spool_(spool),
      upstream_(upstream),
      retry_(retry),
      hostname_(std::move(hostname)),
      rewriter_(rewriter && store ? rewriter : nullptr),
      store_(rewriter && store ? store : nullptr),
      suppression_(suppression),
      shard_(std::move(shard)),
      own_recorder_(store_ && !shard_.recorder ? std::make_unique<store::DeliveryRecorder>(*store_) : nullptr),
      recorder_(!store_ ? nullptr : own_recorder_ ? own_recorder_.get() : shard_.recorder),
      wake_(strand_),
      own_counters_(shard_.counters ? nullptr : std::make_unique<QueueCounters>()),
      counters_(shard_.counters ? shard_.counters : own_counters_.get()) {
  default_ = {rewriter_, store_, recorder_, suppression_, nullptr, {}};
}

const TenantDelivery* QueueManager::tenant_of(const std::string& id) const {
  const bool is_default = id.empty() || id == "default";
  if (tenants_) {
    if (const auto it = tenants_->find(is_default ? std::string("default") : id); it != tenants_->end()) {
      return &it->second;
    }
  }
  return is_default ? &default_ : nullptr;
}

std::size_t QueueManager::shard_of(const std::string& id, std::size_t count) {
  return count <= 1 ? 0 : std::hash<std::string>{}(id) % count;
}

void QueueManager::flush() {
  asio::post(strand_, [this] { rescan(); });
}

void QueueManager::start(const std::vector<std::string>& recovered) {
  asio::post(strand_, [this, recovered] {
    for (const auto& id : recovered) {
      if (owns(id)) make_due(id, entries_[id]);
    }
    asio::co_spawn(strand_, schedule_loop(), asio::detached);
  });
}

void QueueManager::enqueue(std::string id, std::unique_ptr<spool::OpenMessage> opened) {
  asio::post(strand_, [this, id = std::move(id), opened = std::shared_ptr<spool::OpenMessage>(std::move(opened))] {
    auto& entry = entries_[id];
    entry.next_try = 0;
    entry.opened = opened;
    if (opened) entry.tenant = opened->message.envelope.tenant;
    make_due(id, entry);
    // Started here, not at the scheduler's next wake-up: a drain queued on the
    // strand behind this (SIGTERM right after the 250) then waits for it.
    if (!stopping_) start_due();
  });
}

void QueueManager::rescan() {
  // `queue flush`: everything retries now, and files that appeared in the
  // spool behind our back (restored by an operator) are picked up.
  for (const auto& id : spool_.list_ids()) {
    if (owns(id)) entries_.try_emplace(id);
  }
  for (auto& [id, entry] : entries_) {
    entry.next_try = 0;
    make_due(id, entry);
  }
  wake_.cancel();
  spdlog::info("queue flush: {} message(s) scheduled for immediate delivery", entries_.size());
}

void QueueManager::make_due(const std::string& id, Entry& entry) {
  if (entry.ready || entry.in_flight || entry.classifying) return;
  if (!entry.tenant) {
    entry.classifying = true;
    unclassified_.push_back(id);
    if (!classifying_) {
      classifying_ = true;
      asio::co_spawn(strand_, classify_loop(), asio::detached);
    }
    return;
  }
  entry.ready = true;
  ready_.push(*entry.tenant, id);
}

asio::awaitable<void> QueueManager::classify_loop() {
  // Messages found at start-up (or queued without their content) join their
  // tenant's queue once their envelope is read, in batches on the disk pool:
  // the first ones are due after one batch, not after the whole spool.
  constexpr std::size_t batch_size = 256;
  while (!unclassified_.empty() && !stopping_) {
    const auto take = std::min(batch_size, unclassified_.size());
    std::vector<std::pair<std::string, std::string>> batch;  // id, tenant
    for (std::size_t i = 0; i < take; ++i) batch.emplace_back(std::move(unclassified_[i]), "");
    unclassified_.erase(unclassified_.begin(), unclassified_.begin() + static_cast<std::ptrdiff_t>(take));
    co_await offload(disk_, [&] {
      // Unreadable or gone: "default" for now; its attempt finds out what it is.
      for (auto& [id, tenant] : batch) {
        if (const auto m = spool_.load(id)) tenant = m->envelope.tenant;
      }
    });
    for (auto& [id, tenant] : batch) {
      const auto it = entries_.find(id);
      if (it == entries_.end()) continue;
      it->second.classifying = false;
      it->second.tenant = std::move(tenant);
      make_due(id, it->second);
    }
    if (!stopping_) start_due();
  }
  classifying_ = false;
}

void QueueManager::schedule_at(const std::string& id, long long when) {
  const auto it = entries_.find(id);
  if (it == entries_.end()) return;
  it->second.next_try = when;
  waiting_.emplace(when, id);
}

void QueueManager::start_due() {
  const auto now = now_seconds();
  // Deferred messages whose time has come join the due ones (a record whose
  // next try has changed since, by a flush or a later deferral, is stale).
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    const auto node = waiting_.extract(waiting_.begin());
    const auto it = entries_.find(node.mapped());
    if (it != entries_.end() && it->second.next_try == node.key()) make_due(it->first, it->second);
  }
  // At most upstream.concurrency() messages in flight; their copies share the copy slots.
  while (!ready_.empty() && in_flight_ < upstream_.concurrency()) {
    const auto id = ready_.pop();
    const auto it = entries_.find(id);
    if (it == entries_.end()) continue;
    it->second.ready = false;
    if (it->second.in_flight) continue;
    it->second.in_flight = true;
    ++in_flight_;
    asio::co_spawn(strand_, deliver(id), asio::detached);
  }
}

asio::awaitable<void> QueueManager::schedule_loop() {
  while (!stopping_) {
    // One manager watches for `queue flush` and tells its siblings, and keeps the
    // spool (requests, compaction): once a second, not at every wake-up (under
    // load the loop wakes for most new messages).
    if (shard_.index == 0 && polled_at_ != now_seconds()) {
      polled_at_ = now_seconds();
      if (spool_.take_flush_request()) {
        if (shard_.flush_all) {
          shard_.flush_all();
        } else {
          rescan();
        }
      }
      co_await upkeep();
    }
    if (stopping_) break;  // a drain began meanwhile: no new attempt
    start_due();
    const auto now = now_seconds();
    long long next_wake = now + 1;  // poll the flush request once a second
    if (!waiting_.empty()) next_wake = std::min(next_wake, waiting_.begin()->first);
    wake_.expires_after(std::chrono::seconds(std::max<long long>(0, next_wake - now)));
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

std::vector<std::string> log_applied_requests(spool::Spool::AppliedRequests applied) {
  for (const auto& id : applied.deleted) spdlog::info("{}: deleted from the queue (queue delete)", id);
  for (const auto& note : applied.notes) spdlog::warn("spool: {}", note);
  return std::move(applied.deleted);
}

asio::awaitable<void> QueueManager::upkeep() {
  // More segments than this, kept only by a few long-deferred messages, and
  // those messages are copied forward (docs/spool.md, "Compaction").
  constexpr std::size_t max_segments = 4;
  spool::Spool::AppliedRequests applied;
  std::size_t compacted = 0;
  upkeep_ = true;
  co_await offload(disk_, [&] {
    applied = spool_.apply_requests();
    compacted = spool_.compact_segments(max_segments);
  });
  upkeep_ = false;
  // A deleted message still listed here is forgotten at its next attempt (as a deleted queue file is).
  log_applied_requests(std::move(applied));
  if (compacted) spdlog::info("spool: {} long-queued message(s) copied to the newest segment (compaction)", compacted);
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
    schedule_at(id, next);
  }
}

long long QueueManager::retry_at(long long now, unsigned attempts) const {
  // The scheduler's clock counts whole seconds: +1 rounds up, so a retry never
  // comes sooner than its backoff (found by tests/integration/test_fault_upstream.py).
  return now + backoff_seconds(retry_, attempts) + 1;
}

asio::awaitable<void> QueueManager::acquire_copy_slot(const std::string& tenant) {
  // At most upstream.concurrency() copies in flight over all messages: the
  // upstream opens a connection per copy that finds none idle. Copies wait in
  // their tenant's line: one tenant's message of 100,000 recipients does not
  // hold back another's copies for the length of its own.
  if (copies_in_flight_ < upstream_.concurrency() && slot_waiters_.empty()) {
    ++copies_in_flight_;
    co_return;
  }
  asio::steady_timer handed_over(strand_, asio::steady_timer::time_point::max());
  slot_waiters_.push(tenant, &handed_over);
  boost::system::error_code ec;
  co_await handed_over.async_wait(asio::redirect_error(asio::use_awaitable, ec));  // cancelled: the slot is ours
}

void QueueManager::release_copy_slot() {
  if (slot_waiters_.empty()) {
    --copies_in_flight_;
    return;
  }
  auto* next = slot_waiters_.pop();  // the slot passes to it, still counted
  next->cancel();
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
  // The tenant's own: it goes out through its upstream and waits in its line (fair_queue.hpp).
  spool::QueueEnvelope bounce_env{now, "127.0.0.1", hostname_, {}, false, "", {env.sender}, env.tenant};
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
  const auto idle = [this] { return in_flight_ == 0 && !classifying_ && !upkeep_; };  // named: no temporaries in a co_await (g++ 12)
  co_await poll_until(strand_, idle);
  co_await upstream_.close();
}

}  // namespace unsubrelay::delivery
