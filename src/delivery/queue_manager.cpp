// queue_manager.cpp: delivery scheduling, per-recipient outcomes, retries, bounces.
#include "unsubrelay/delivery/queue_manager.hpp"

#include <ctime>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/offload.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/delivery/bounce.hpp"

namespace unsubrelay::delivery {

namespace asio = boost::asio;

namespace {

long long now_seconds() { return static_cast<long long>(std::time(nullptr)); }

const char* status_name(DeliveryStatus s) {
  switch (s) {
    case DeliveryStatus::sent: return "sent";
    case DeliveryStatus::deferred: return "deferred";
    case DeliveryStatus::bounced: return "bounced";
  }
  return "?";
}

/// "5.1.1" from "550 5.1.1 User unknown"; a default when the reply has none.
std::string enhanced_of(const std::string& reply, const char* fallback) {
  if (reply.size() >= 9 && reply[3] == ' ' && reply[4] == '5' && reply[5] == '.') {
    const auto end = reply.find(' ', 4);
    return reply.substr(4, end == std::string::npos ? std::string::npos : end - 4);
  }
  return fallback;
}

}  // namespace

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

void QueueManager::enqueue(std::string id) {
  asio::post(strand_, [this, id = std::move(id)] {
    entries_[id].next_try = 0;
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

asio::awaitable<void> QueueManager::attempt(std::string id) {
  struct Done {  // whatever happens, the message leaves the in-flight set
    QueueManager* self;
    std::string id;
    ~Done() {
      self->in_flight_.erase(id);
      self->wake_.cancel();
    }
  } done{this, id};

  // Reading the queue file and the store's lookups run on the disk pool; this
  // coroutine (on the strand) only schedules, renders and talks to the upstream.
  Attempt a;
  co_await offload(disk_, [&] { prepare(id, a); });
  if (!a.message) {
    entries_.erase(id);
    co_return;
  }
  if (!a.content) {
    entries_[id].next_try = retry_at(now_seconds(), 1);
    co_return;
  }
  const auto& env = a.message->envelope;
  const auto& plan = a.plan;
  std::vector<FailedRecipient> failed;
  std::string defer_reason;
  std::vector<std::size_t> deferred;
  std::vector<store::Send> sends;  // recorded in one (group) transaction after the attempt
  // One copy: render, send, record its outcome. Copies of one message go out
  // in parallel over the upstream's connections; everything here runs on the strand.
  auto one_copy = [&](std::size_t i) -> asio::awaitable<void> {
    std::vector<RecipientResult> results;
    std::string uid;
    try {
      const bool campaign = plan && plan->rewritten();
      if (campaign) {
        // The store gives the contact its uid; if it cannot, the copy waits (never sent without one).
        const auto found = a.uids.find(env.recipients[i]);
        if (found == a.uids.end()) throw std::runtime_error("store unavailable: " + a.store_error);
        uid = found->second;
      }
      bool opted_out = false;
      if (campaign && suppression_ != config::Suppression::off) {
        const auto found = a.opted_out.find(uid);
        if (found == a.opted_out.end() || !found->second) {
          throw std::runtime_error("store unavailable: " + a.store_error);
        }
        opted_out = *found->second;
      }
      if (opted_out) {
        results = {{DeliveryStatus::sent, "250 2.0.0 suppressed: the contact unsubscribed", "none", {}}};
        results.front().upstream_id = "suppressed";
      } else if (plan && plan->refused()) {
        // body_link: reject (the SMTP server refuses these before 250; this covers spooled leftovers).
        results = {{DeliveryStatus::bounced, "550 5.7.0 campaign message without an unsubscribe link (body_link: reject)",
                    "none", {}}};
      } else {
        std::string rendered;
        if (campaign) {
          rendered = rewriter_->copy(*plan, uid, now_seconds());
          ++counters_.copies_rendered;
        }
        OutboundCopy copy{id, i, env.sender, {env.recipients[i]}, rendered.empty() ? *a.content : rendered};
        const auto started = std::chrono::steady_clock::now();
        results = co_await upstream_.deliver(std::move(copy));
        counters_.upstream_latency.observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      }
    } catch (const std::exception& e) {
      results = {{DeliveryStatus::deferred, std::string("451 4.3.0 internal error: ") + e.what(), "none", {}}};
    }
    const auto& r = results.empty() ? RecipientResult{DeliveryStatus::deferred, "451 4.3.0 no result", "none", {}}
                                    : results.front();
    const auto now = now_seconds();
    const bool was_suppressed = r.upstream_id == "suppressed";
    if (was_suppressed) {
      spdlog::info("{}: to=<{}>, delay={}, status=suppressed (unsubscribed, suppression: {})", id, env.recipients[i],
                   now - env.arrival, suppression_ == config::Suppression::campaign ? "campaign" : "global");
      ++counters_.suppressed;
    } else {
      // Postfix's log line: QUEUEID: to=<rcpt>, relay=..., delay=..., status=... (reply)
      spdlog::info("{}: to=<{}>, relay={}, delay={}, status={} ({}){}", id, env.recipients[i], r.relay,
                   now - env.arrival, status_name(r.status), printable(r.reply, 300),
                   r.upstream_id.empty() ? "" : ", upstream_id=" + r.upstream_id);
    }
    if (!uid.empty()) {
      const auto st = was_suppressed                           ? store::SendStatus::suppressed
                      : r.status == DeliveryStatus::sent     ? store::SendStatus::delivered
                      : r.status == DeliveryStatus::bounced  ? store::SendStatus::bounced
                                                             : store::SendStatus::deferred;
      sends.push_back({plan->launch_list_id(), uid, id, was_suppressed ? "" : r.upstream_id, st, now, r.reply});
    }
    switch (r.status) {
      case DeliveryStatus::sent:
        // A few bytes appended, not synced here: once per attempt below.
        if (auto err = spool_.mark_delivered(id, i, now, was_suppressed ? "" : r.upstream_id); !err.empty()) {
          spdlog::error("{}: cannot record delivery to <{}>: {}", id, env.recipients[i], err);
        }
        if (!was_suppressed) ++counters_.delivered;
        break;
      case DeliveryStatus::bounced:
        failed.push_back({env.recipients[i], enhanced_of(r.reply, "5.0.0"), r.reply});
        break;
      case DeliveryStatus::deferred:
        deferred.push_back(i);
        defer_reason = r.reply;
        ++counters_.deferred;
        break;
    }
  };
  std::size_t running = 0;
  asio::steady_timer copy_done(strand_);  // cancelled as each copy finishes
  for (std::size_t i = 0; i < env.recipients.size(); ++i) {
    if (a.message->state.recipients[i] != spool::RecipientStatus::pending) continue;
    co_await acquire_copy_slot();
    ++running;
    asio::co_spawn(strand_, one_copy(i), asio::bind_executor(strand_, [&, i](std::exception_ptr e) {
                     if (e) {  // no outcome recorded: the recipient waits, never counts as done
                       deferred.push_back(i);
                       defer_reason = "451 4.3.0 internal error";
                     }
                     --running;
                     release_copy_slot();
                     copy_done.cancel();
                   }));
  }
  while (running > 0) {  // every copy of this attempt has its outcome
    copy_done.expires_at(asio::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await copy_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  const auto now = now_seconds();
  if (!deferred.empty() && expired(retry_, env.arrival, now)) {
    for (auto i : deferred) {
      failed.push_back({env.recipients[i], "4.4.7",
                        fmt::format("message expired after {} hours in the queue; last error: {}",
                                    retry_.max_age_hours, defer_reason)});
      spdlog::info("{}: to=<{}>, status=expired, returned to sender", id, env.recipients[i]);
    }
    deferred.clear();
  }
  const auto attempts = a.message->state.attempts + 1;
  const auto next = retry_at(now, attempts);
  std::string bounce_id;
  co_await offload(disk_, [&] {
    if (!sends.empty() && !recorder_->record_sends(sends)) {
      spdlog::warn("{}: store: cannot record {} send(s): {}", id, sends.size(), store_->last_error());
    }
    if (!failed.empty()) {
      bounce_id = queue_bounce(*a.message, failed, *a.content, now);
      for (std::size_t i = 0; i < env.recipients.size(); ++i) {
        for (const auto& f : failed) {
          if (f.address == env.recipients[i] && a.message->state.recipients[i] == spool::RecipientStatus::pending) {
            spool_.mark_bounced(id, i, now);
            a.message->state.recipients[i] = spool::RecipientStatus::bounced;
          }
        }
      }
    }
    if (deferred.empty()) {
      spool_.remove(id);
    } else {
      spool_.sync_state(id);  // recipients delivered in this attempt stay delivered after a crash
      spool_.mark_deferred(id, attempts, next, defer_reason);
    }
  });
  counters_.bounced += failed.size();
  if (!bounce_id.empty()) entries_[bounce_id].next_try = 0;
  if (deferred.empty()) {
    entries_.erase(id);
    spdlog::info("{}: removed", id);
  } else {
    entries_[id].next_try = next;
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

void QueueManager::prepare(const std::string& id, Attempt& a) {
  std::string why;
  a.message = spool_.load(id, &why);
  if (!a.message) {
    if (why == std::strerror(ENOENT)) {
      spdlog::info("{}: removed from the queue by the operator", id);
    } else {
      spool_.quarantine(id);
      spdlog::error("{}: queue file damaged ({}), moved to corrupt/", id, why);
    }
    return;
  }
  a.content = spool_.read_content(*a.message, &why);
  if (!a.content) {
    spdlog::error("{}: cannot read queue file: {}", id, why);
    return;
  }
  if (!rewriter_) return;
  // Parse once per attempt; each recipient's copy is then spliced from the plan.
  a.plan = rewriter_->plan(*a.content, id);
  const auto& plan = *a.plan;
  for (const auto& note : plan.notes()) spdlog::warn("{}: MIME: {}", id, note);
  if (!plan.campaign()) return;
  if (!store_->record_launch(plan.launch_list_id(), plan.email_id(), now_seconds(), plan.launch_kind())) {
    spdlog::warn("{}: store: cannot record launch {}: {}", id, plan.launch_list_id(), store_->last_error());
  }
  spdlog::info("{}: campaign email_id={}, launch_list_id={}, {}", id, printable(plan.email_id(), 64),
               printable(plan.launch_list_id(), 64),
               !plan.rewritten()           ? "forwarded unchanged"
               : plan.placeholder_found() ? "placeholders replaced"
               : plan.footer_added()      ? "unsubscribe footer added"
                                          : "no placeholder (body_link: warn)");
  if (!plan.rewritten()) return;
  // Every pending recipient's uid in one store transaction, shared with the
  // other deliveries in flight (group commit), not one per recipient.
  std::vector<std::string> pending;
  const auto& env = a.message->envelope;
  for (std::size_t i = 0; i < env.recipients.size(); ++i) {
    if (a.message->state.recipients[i] == spool::RecipientStatus::pending) pending.push_back(env.recipients[i]);
  }
  const auto found = recorder_->uids_for(pending);
  if (!found) {
    a.store_error = store_->last_error();
    return;
  }
  for (std::size_t i = 0; i < pending.size(); ++i) a.uids[pending[i]] = (*found)[i];
  if (suppression_ == config::Suppression::off) return;
  const auto campaign = suppression_ == config::Suppression::campaign ? plan.email_id() : std::string();
  for (const auto& [address, uid] : a.uids) {
    a.opted_out[uid] = store_->unsubscribed(uid, campaign);
    if (!a.opted_out[uid]) a.store_error = store_->last_error();
  }
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
