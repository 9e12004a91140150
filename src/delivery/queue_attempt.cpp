// queue_attempt.cpp: one delivery attempt of one message, in named steps.
//
//   prepare        (disk pool) read the queue file and its state log (unless
//                  the SMTP session handed the message over in memory), plan the
//                  campaign rendering, record the launch, and look up every
//                  pending recipient's uid and suppression verdict: one batched
//                  store call each for the whole message.
//   send_copies    (strand) one copy per pending recipient, in parallel up to
//                  the upstream's connections; each copy:
//     copy_outcome   decide: local transport, store unavailable, suppressed,
//                    refused, or render_copy and send_copy to the upstream;
//     record_outcome the log line, counters, the send record, the recipient's
//                    mark in the queue file (in place, synced once per attempt).
//   finish         expire what waited too long, then (disk pool) settle: record
//                  the sends, bounce the failed, remove or defer the message.
//
// The two store writes (prepare's uids, settle's sends) join the delivery
// path's group commit without a thread waiting for it (look_up_uids, settle:
// offload_until resumes the attempt from the commit's callback).
//
// Where the feedback loop (issue 12) plugs in: the envelope sender of a copy
// (VERP) in render_copy; the upstream's reply, to classify 5xx refusals, in
// record_outcome; soft bounces of expired recipients in expire_deferred;
// feedback mail to the local transport in copy_outcome (set_local_transport);
// what suppresses whom in store::Store::check_suppression, with the scope
// plan_campaign builds.
//
// Where tenants (SPEC Part 3) plug in: prepare takes the message's tenant from
// its queue file (TenantDelivery: rewriter, store, recorder, feedback hooks),
// and every later step uses that tenant's; a tenant not configured here
// defers every copy (copy_outcome); the fields a tenant adds when absent
// (X-SES-CONFIGURATION-SET, X-SES-TENANT) are prepended in render_copy.
#include <ctime>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/clock.hpp"
#include "unsubrelay/common/offload.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/delivery/bounce.hpp"
#include "unsubrelay/delivery/feedback_hooks.hpp"
#include "unsubrelay/delivery/outcome_event.hpp"
#include "unsubrelay/feedback/locate.hpp"
#include "unsubrelay/mime/scanner.hpp"
#include "unsubrelay/delivery/queue_manager.hpp"

namespace unsubrelay::delivery {

namespace asio = boost::asio;

namespace {

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

/// A result the relay decided itself, without the upstream.
RecipientResult own_result(DeliveryStatus status, std::string reply) { return {status, std::move(reply), "none", {}}; }
RecipientResult deferred_result(std::string reply) { return own_result(DeliveryStatus::deferred, std::move(reply)); }

}  // namespace

struct QueueManager::Attempt {
  std::string id;
  const TenantDelivery* t = nullptr;            // the message's tenant; nullptr: not configured here
  std::string added_fields;                     // the tenant's fields this message lacks (tenants[].ses)
  std::shared_ptr<spool::OpenMessage> open;     // nullptr: gone, quarantined, or unreadable now
  bool gone = false;                            // removed or quarantined: forget it
  std::optional<mime::RenderPlan> plan;         // views into the content
  store::SendScope scope;
  std::vector<std::size_t> pending;             // the recipients (indexes) this attempt tries
  std::vector<std::string> uids;                // per recipient index; "" when not looked up
  std::vector<std::optional<store::SendVerdict>> verdicts;  // per recipient index; nullopt: unknown
  std::string store_error;                      // why a uid or a verdict is missing
  std::vector<std::string> uid_addresses;       // whose uids look_up_uids fetches
  std::vector<std::size_t> uid_recipients;      // their recipient indexes
  // Filled as the copies finish.
  std::vector<FailedRecipient> failed;
  std::vector<std::size_t> deferred;
  std::string defer_reason;
  std::vector<store::Send> sends;  // recorded in one (group) transaction by settle()
  std::vector<std::string> send_addresses;  // the recipient of each send (sent_after_optout)
  std::vector<store::Feedback> reports;     // bounces of this attempt (issue 12), recorded by settle()
  std::string bounce_id;                    // the DSN settle queued, or ""

  spool::QueuedMessage& message() { return open->message; }
  const spool::QueueEnvelope& envelope() const { return open->message.envelope; }
  std::string_view content() const { return open->content(); }
  bool campaign() const { return plan && plan->rewritten(); }
  /// Transactional mail without smtp.tenant_header, when it carried one (the plan removed it).
  const std::string* stripped() const { return plan && plan->stripped() ? &*plan->stripped() : nullptr; }
  FeedbackHooks* feedback() const { return t ? t->feedback : nullptr; }
  /// Recipient i's campaign copy, for the feedback hooks.
  CampaignCopy copy_of(std::size_t i) const {
    return {id, i, envelope().recipients[i], uids[i], plan->launch_list_id(), plan->email_id()};
  }
};

struct QueueManager::CopyOutcome {
  RecipientResult result;
  std::string suppressed;  // the store's reason when it said not to send (nothing was sent)
};

asio::awaitable<void> QueueManager::attempt(std::string id) {
  struct Done {  // whatever happens, the message leaves the in-flight set
    QueueManager* self;
    std::string id;
    ~Done() {
      if (const auto it = self->entries_.find(id); it != self->entries_.end()) it->second.in_flight = false;
      --self->in_flight_;
      self->wake_.cancel();
    }
  } done{this, id};

  // Reading the queue file and the store's lookups run on the disk pool; this
  // coroutine (on the strand) only schedules, renders and talks to the upstream.
  Attempt a;
  a.id = id;
  if (const auto it = entries_.find(id); it != entries_.end()) a.open = std::move(it->second.opened);
  co_await offload_until(disk_, [&](Resume resume) {
    prepare(a);
    look_up_uids(a, std::move(resume));
  });
  if (a.gone) {
    entries_.erase(id);
    co_return;
  }
  if (!a.open) {
    schedule_at(id, retry_at(now_seconds(), 1));
    co_return;
  }
  // The file's word on the tenant, for the retries (a message read at start-up
  // when its file could not be read was scheduled as "default").
  if (const auto it = entries_.find(id); it != entries_.end()) it->second.tenant = a.envelope().tenant;
  co_await send_copies(a);
  co_await finish(a);
}

void QueueManager::prepare(Attempt& a) {
  if (!a.open && !load(a)) return;
  const auto& state = a.message().state.recipients;
  for (std::size_t i = 0; i < state.size(); ++i) {
    if (state[i] == spool::RecipientStatus::pending) a.pending.push_back(i);
  }
  a.uids.assign(state.size(), {});
  a.verdicts.assign(state.size(), store::SendVerdict{});  // without a store nothing is suppressed
  a.t = tenant_of(a.envelope().tenant);
  if (!a.t) {
    spdlog::error("{}: tenant {} is not configured here: the message waits in the queue", a.id,
                  printable(a.envelope().tenant, 64));
    return;
  }
  for (const auto& [name, value] : a.t->added_fields) {
    if (!mime::has_header_field(a.content(), name)) a.added_fields += name + ": " + value + "\r\n";
  }
  if (!a.t->rewriter) return;
  plan_campaign(a);
  look_up_recipients(a);
}

bool QueueManager::load(Attempt& a) {
  std::string why;
  bool damaged = false;
  a.open = spool_.open(a.id, &why, &damaged);
  if (a.open) return true;
  if (damaged) {
    spool_.quarantine(a.id);
    spdlog::error("{}: queue file damaged ({}), moved to corrupt/", a.id, why);
    a.gone = true;
  } else if (why == std::strerror(ENOENT)) {
    spdlog::info("{}: removed from the queue by the operator", a.id);
    a.gone = true;
  } else {
    spdlog::error("{}: cannot read queue file: {}", a.id, why);
  }
  return false;
}

void QueueManager::plan_campaign(Attempt& a) {
  // Parsed once per attempt; each recipient's copy is then spliced from the plan.
  a.plan = a.t->rewriter->plan(a.content(), a.id);
  const auto& plan = *a.plan;
  for (const auto& note : plan.notes()) spdlog::warn("{}: MIME: {}", a.id, note);
  a.scope = {a.campaign(), plan.email_id(), plan.launch_list_id(), plan.topic(), a.t->suppression};
  if (!plan.campaign()) return;
  if (!a.t->store->record_launch(plan.launch_list_id(), plan.email_id(), now_seconds(), plan.launch_kind(),
                            a.envelope().sender)) {
    spdlog::warn("{}: store: cannot record launch {}: {}", a.id, plan.launch_list_id(), a.t->store->last_error());
  }
  spdlog::info("{}: campaign email_id={}, launch_list_id={}, {}", a.id, printable(plan.email_id(), 64),
               printable(plan.launch_list_id(), 64),
               !plan.rewritten()           ? "forwarded unchanged"
               : plan.placeholder_found() ? "placeholders replaced"
               : plan.footer_added()      ? "unsubscribe footer added"
                                          : "no placeholder (body_link: warn)");
}

void QueueManager::look_up_recipients(Attempt& a) {
  const auto& env = a.envelope();
  std::vector<store::SendRecipient> recipients;
  for (auto i : a.pending) recipients.push_back({env.recipients[i], {}});
  // Whom not to send to: one call for the whole message (COORD.md design decision 2).
  const auto verdicts = a.t->store->check_suppression(a.scope, recipients);
  if (!verdicts) {
    a.store_error = a.t->store->last_error();
    a.verdicts.assign(a.verdicts.size(), std::nullopt);
    return;
  }
  for (std::size_t k = 0; k < a.pending.size(); ++k) a.verdicts[a.pending[k]] = (*verdicts)[k];
  if (a.t->shared && !honour_shared_list(a, recipients)) return;
  if (!a.campaign()) return;
  // An erased address gets no uid: no contact is made for it again, no send recorded.
  for (std::size_t k = 0; k < a.pending.size(); ++k) {
    if ((*verdicts)[k].erased) continue;
    a.uid_addresses.push_back(recipients[k].address);
    a.uid_recipients.push_back(a.pending[k]);
  }
}

void QueueManager::look_up_uids(Attempt& a, Resume resume) {
  if (a.uid_addresses.empty()) return resume(nullptr);
  // Every pending recipient's uid in one store transaction, shared with the
  // other deliveries in flight (group commit), not one per recipient. Nothing
  // waits for it: the attempt resumes from the commit's callback.
  auto done = [&a, resume](std::optional<std::vector<std::string>> found) {
    resume_after(resume, [&] {
      if (!found) {
        a.store_error = a.t->store->last_error();
        a.verdicts.assign(a.verdicts.size(), std::nullopt);
      } else {
        for (std::size_t k = 0; k < a.uid_recipients.size(); ++k) a.uids[a.uid_recipients[k]] = (*found)[k];
      }
    });
  };
  a.t->recorder->uids_for(std::move(a.uid_addresses), std::move(done));
}

/// suppression: shared (SPEC Part 3): the installation-wide list stops a copy
/// too. False when that store failed (every verdict is then unknown: the copies wait).
bool QueueManager::honour_shared_list(Attempt& a, const std::vector<store::SendRecipient>& recipients) {
  const auto shared = a.t->shared->check_suppression(a.scope, recipients);
  if (!shared) {
    a.store_error = "the shared suppression list: " + a.t->shared->last_error();
    a.verdicts.assign(a.verdicts.size(), std::nullopt);
    return false;
  }
  for (std::size_t k = 0; k < a.pending.size(); ++k) {
    auto& verdict = a.verdicts[a.pending[k]];
    if ((*shared)[k].suppressed && !verdict->suppressed) {
      verdict->suppressed = true;
      verdict->reason = (*shared)[k].reason + " (shared list)";
    }
  }
  return true;
}

asio::awaitable<void> QueueManager::send_copies(Attempt& a) {
  // Copies of one message go out in parallel over the upstream's connections,
  // at most upstream.concurrency() over all messages; all of it on the strand.
  std::size_t running = 0;
  asio::steady_timer all_done(strand_);  // cancelled when the last copy finishes
  for (auto i : a.pending) {
    co_await acquire_copy_slot(a.envelope().tenant);
    ++running;
    asio::co_spawn(strand_, deliver_copy(a, i), asio::bind_executor(strand_, [&, i](std::exception_ptr e) {
                     if (e) {  // no outcome recorded: the recipient waits, never counts as done
                       a.deferred.push_back(i);
                       a.defer_reason = "451 4.3.0 internal error";
                     }
                     release_copy_slot();
                     if (--running == 0) all_done.cancel();
                   }));
  }
  while (running > 0) {  // every copy of this attempt has its outcome (checked and awaited on the strand)
    all_done.expires_at(asio::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> QueueManager::deliver_copy(Attempt& a, std::size_t i) {
  CopyOutcome outcome;
  try {
    outcome = co_await copy_outcome(a, i);
  } catch (const std::exception& e) {
    outcome.result = deferred_result(std::string("451 4.3.0 internal error: ") + e.what());
  }
  record_outcome(a, i, outcome);
}

asio::awaitable<QueueManager::CopyOutcome> QueueManager::copy_outcome(Attempt& a, std::size_t i) {
  const auto& rcpt = a.envelope().recipients[i];
  CopyOutcome out;
  if (!a.t) {
    out.result = deferred_result(fmt::format("451 4.3.0 tenant {} is not configured here",
                                             printable(a.envelope().tenant, 64)));
  } else if (local_.transport && local_.accepts && local_.accepts(rcpt)) {
    // Braced lists inside a co_await expression trip g++ 12 ("array used as initializer").
    OutboundCopy unchanged{a.id, i, a.envelope().sender, std::vector<std::string>(1, rcpt), a.content(),
                           a.envelope().client_address};
    out.result = co_await send_copy(*local_.transport, std::move(unchanged));
  } else if (a.campaign() && a.uids[i].empty() && !(a.verdicts[i] && a.verdicts[i]->erased)) {
    // A campaign copy is never sent without the contact's uid: it waits for the store.
    // (An erased address has none on purpose: its hashed entry suppresses it below.)
    out.result = deferred_result("451 4.3.0 internal error: store unavailable: " + a.store_error);
  } else if (!a.verdicts[i]) {
    out.result = deferred_result("451 4.3.0 internal error: store unavailable: " + a.store_error);
  } else if (a.verdicts[i]->suppressed) {
    out.suppressed = a.verdicts[i]->reason;
    out.result = own_result(DeliveryStatus::sent, "250 2.0.0 suppressed: " + out.suppressed);
  } else if (a.plan && a.plan->refused()) {
    // body_link: reject (the SMTP server refuses these before 250; this covers spooled leftovers).
    out.result = own_result(DeliveryStatus::bounced,
                            "550 5.7.0 campaign message without an unsubscribe link (body_link: reject)");
  } else {
    std::string rendered;
    auto& via = a.t->upstreams.empty() ? upstream_ : *a.t->upstreams.at(shard_.index);
    out.result = co_await send_copy(via, render_copy(a, i, rendered));
  }
  co_return out;
}

OutboundCopy QueueManager::render_copy(const Attempt& a, std::size_t i, std::string& rendered) {
  const auto& env = a.envelope();
  if (a.campaign()) {
    rendered = a.added_fields + a.t->rewriter->copy(*a.plan, a.uids[i], now_seconds());
    ++counters_->copies_rendered;
  } else if (!a.added_fields.empty() || a.stripped()) {
    rendered = a.added_fields;
    rendered += a.stripped() ? std::string_view(*a.stripped()) : a.content();
  }
  // The envelope sender is the message's, or b+TOKEN@return_path_domain (VERP) for a campaign copy.
  std::string sender = env.sender;
  if (a.campaign() && a.feedback() && a.feedback()->verp()) {
    const auto& plan = *a.plan;
    // The copy's own signed token, the one its unsubscribe URL carries.
    const auto url =
        a.t->rewriter->url_for(a.uids[i], plan.email_id(), plan.launch_list_id(), now_seconds(), a.scope.topic);
    sender = a.feedback()->envelope_sender(env.sender, feedback::url_token(url));
  }
  const bool own_text = a.campaign() || !a.added_fields.empty() || a.stripped();
  return {a.id, i, std::move(sender), {env.recipients[i]}, own_text ? std::string_view(rendered) : a.content(),
          env.client_address};
}

asio::awaitable<RecipientResult> QueueManager::send_copy(Upstream& via, OutboundCopy copy) {
  const auto started = std::chrono::steady_clock::now();
  auto results = co_await via.deliver(std::move(copy));
  counters_->upstream_latency.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (results.empty()) co_return deferred_result("451 4.3.0 no result");
  co_return std::move(results.front());
}

void QueueManager::record_outcome(Attempt& a, std::size_t i, const CopyOutcome& outcome) {
  const auto& env = a.envelope();
  const auto& r = outcome.result;
  const auto now = now_seconds();
  const bool suppressed = !outcome.suppressed.empty();
  if (suppressed) {
    spdlog::info("{}: to=<{}>, delay={}, status=suppressed ({}, suppression: {})", a.id, env.recipients[i],
                 now - env.arrival, outcome.suppressed,
                 a.t->suppression == config::Suppression::campaign ? "campaign" : "global");
    ++counters_->suppressed;
    if (a.t && a.t->counters) ++a.t->counters->suppressed;
  } else {
    // Postfix's log line: QUEUEID: to=<rcpt>, relay=..., delay=..., status=... (reply)
    spdlog::info("{}: to=<{}>, relay={}, delay={}, status={} ({}){}", a.id, env.recipients[i], r.relay,
                 now - env.arrival, status_name(r.status), printable(r.reply, 300),
                 r.upstream_id.empty() ? "" : ", upstream_id=" + r.upstream_id);
  }
  if (!a.uids[i].empty()) {
    const auto st = suppressed                             ? store::SendStatus::suppressed
                    : r.status == DeliveryStatus::sent    ? store::SendStatus::delivered
                    : r.status == DeliveryStatus::bounced ? store::SendStatus::bounced
                                                          : store::SendStatus::deferred;
    a.sends.push_back({a.plan->launch_list_id(), a.uids[i], a.id, r.upstream_id, st, now, r.reply});
    a.sends.back().event = copy_event(a.copy_of(i), a.scope.topic, r, outcome.suppressed,  // issue 26
                                      a.t->suppression == config::Suppression::campaign ? "campaign" : "global", now);
    a.send_addresses.push_back(env.recipients[i]);
    if (a.feedback() && !suppressed) {
      if (auto report = a.feedback()->refusal(a.copy_of(i), r, now)) a.reports.push_back(std::move(*report));
    }
  }
  switch (r.status) {
    case DeliveryStatus::sent:
      // One byte in the queue file, not synced here: once per attempt, in settle().
      if (auto err = a.open->mark(i, spool::RecipientStatus::delivered); !err.empty()) {
        spdlog::error("{}: cannot record delivery to <{}>: {}", a.id, env.recipients[i], err);
      }
      if (!suppressed) ++counters_->delivered;
      if (!suppressed && a.t && a.t->counters) ++a.t->counters->delivered;
      break;
    case DeliveryStatus::bounced:
      a.failed.push_back({env.recipients[i], enhanced_of(r.reply, "5.0.0"), r.reply});
      break;
    case DeliveryStatus::deferred:
      a.deferred.push_back(i);
      a.defer_reason = r.reply;
      ++counters_->deferred;
      if (a.t && a.t->counters) ++a.t->counters->deferred;
      break;
  }
}

asio::awaitable<void> QueueManager::finish(Attempt& a) {
  const auto now = now_seconds();
  expire_deferred(a, now);
  const auto attempts = a.message().state.attempts + 1;
  const auto next = retry_at(now, attempts);
  co_await offload_until(disk_, [&](Resume resume) { settle(a, now, attempts, next, std::move(resume)); });
  counters_->bounced += a.failed.size();
  if (a.t && a.t->counters) a.t->counters->bounced += a.failed.size();
  if (!a.bounce_id.empty()) {
    if (owns(a.bounce_id)) {
      make_due(a.bounce_id, entries_[a.bounce_id]);
    } else {
      shard_.route(a.bounce_id);
    }
  }
  if (a.deferred.empty()) {
    entries_.erase(a.id);
    spdlog::info("{}: removed", a.id);
  } else {
    schedule_at(a.id, next);
  }
}

void QueueManager::expire_deferred(Attempt& a, long long now) {
  if (a.deferred.empty() || !expired(retry_, a.envelope().arrival, now)) return;
  for (auto i : a.deferred) {
    a.failed.push_back({a.envelope().recipients[i], "4.4.7",
                        fmt::format("message expired after {} hours in the queue; last error: {}",
                                    retry_.max_age_hours, a.defer_reason)});
    spdlog::info("{}: to=<{}>, status=expired, returned to sender", a.id, a.envelope().recipients[i]);
    if (a.campaign() && !a.uids[i].empty()) {  // its event rides on the send record (issue 26)
      for (auto& send : a.sends) {
        if (send.uid == a.uids[i]) send.event = expired_event(a.copy_of(i), a.scope.topic, a.defer_reason, now);
      }
    }
    if (a.feedback() && a.campaign() && !a.uids[i].empty()) {
      if (auto report = a.feedback()->expiry(a.copy_of(i), a.defer_reason, now)) {
        a.reports.push_back(std::move(*report));
      }
    }
  }
  a.deferred.clear();
}

void QueueManager::settle(Attempt& a, long long now, unsigned attempts, long long next, Resume resume) {
  if (a.feedback() && !a.sends.empty()) {
    a.feedback()->mark_after_optout(a.sends, a.send_addresses, {true, a.plan->email_id(), a.scope.topic}, now);
  }
  if (a.sends.empty()) return resume_after(resume, [&] { settle_spool(a, now, attempts, next); });
  // The sends join the delivery path's group commit; the rest follows on the
  // thread that committed them, and no thread waits meanwhile.
  const auto count = a.sends.size();
  a.t->recorder->record_sends(std::move(a.sends), [this, &a, now, attempts, next, count, resume](bool recorded) {
    resume_after(resume, [&] {
      if (!recorded) {
        spdlog::warn("{}: store: cannot record {} send(s): {}", a.id, count, a.t->store->last_error());
      }
      settle_spool(a, now, attempts, next);
    });
  });
}

/// The feedback reports, the DSN of the failed, and the message's own fate in
/// the spool: removed, or deferred with the marks of this attempt synced.
void QueueManager::settle_spool(Attempt& a, long long now, unsigned attempts, long long next) {
  if (a.feedback()) a.feedback()->record(a.reports, a.id);
  if (!a.failed.empty()) {
    a.bounce_id = queue_bounce(a.message(), a.failed, a.content(), now);
    const auto& state = a.message().state.recipients;
    for (const auto& f : a.failed) {
      for (std::size_t i = 0; i < state.size(); ++i) {
        if (f.address == a.envelope().recipients[i] && state[i] == spool::RecipientStatus::pending) {
          if (auto err = a.open->mark(i, spool::RecipientStatus::bounced); !err.empty()) {
            spdlog::error("{}: cannot record the bounce of <{}>: {}", a.id, f.address, err);
          }
        }
      }
    }
  }
  if (a.deferred.empty()) {
    spool_.remove(a.message());
  } else {
    // Recipients delivered or bounced in this attempt stay so after a crash.
    if (auto err = a.open->sync(); !err.empty()) spdlog::error("{}: {}", a.id, err);
    spool_.mark_deferred(a.message(), attempts, next, a.defer_reason);
  }
}

}  // namespace unsubrelay::delivery
