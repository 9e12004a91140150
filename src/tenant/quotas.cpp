// quotas.cpp: tenants' quotas (quotas.hpp says what is counted where).
#include "unsubrelay/tenant/quotas.hpp"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/clock.hpp"

namespace unsubrelay::tenant {

namespace {

constexpr Quota all_quotas[] = {Quota::messages_per_hour, Quota::recipients_per_day};
constexpr long long keep_seconds = 2 * 86400;  // windows older than this leave the store at the next add

std::uint64_t limit_of(const config::TenantLimits& limits, Quota q) {
  return q == Quota::messages_per_hour ? limits.messages_per_hour : limits.recipients_per_day;
}

/// The count's name in the tenant's store (its own database or schema: no tenant in it).
std::string stored_name(Quota q) { return q == Quota::messages_per_hour ? "messages" : "recipients"; }

}  // namespace

const char* name(Quota q) { return q == Quota::messages_per_hour ? "messages_per_hour" : "recipients_per_day"; }

Quotas::Quotas(const std::vector<QuotaTenant>& tenants, std::function<long long()> clock)
    : clock_(clock ? std::move(clock) : std::function<long long()>(now_seconds)) {
  for (const auto& t : tenants) {
    if (t.store && (t.limits.messages_per_hour || t.limits.recipients_per_day)) states_[t.id].tenant = t;
  }
}

Quotas::~Quotas() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

long long Quotas::window_of(Quota q, long long now) {
  const long long length = q == Quota::messages_per_hour ? 3600 : 86400;  // the clock hour, the UTC day
  return now - ((now % length) + length) % length;
}

void Quotas::roll(Counter& c, Quota q, long long now) {
  const auto window = window_of(q, now);
  if (c.window == window) return;
  c.window = window;
  c.fleet = c.pending = c.writing = 0;  // what a past window held no longer counts
}

std::string Quotas::refusal(const std::string& tenant, std::size_t recipients) {
  const auto it = states_.find(tenant);
  if (it == states_.end()) return "";
  auto& s = it->second;
  const auto now = clock_();
  std::lock_guard lock(mutex_);
  if (const auto limit = s.tenant.limits.messages_per_hour; limit && recipients == 0) {
    auto& c = s.counters[0];
    roll(c, Quota::messages_per_hour, now);
    if (c.known() >= limit) return refuse(s, Quota::messages_per_hour, c.known(), limit);
  }
  if (const auto limit = s.tenant.limits.recipients_per_day) {
    auto& c = s.counters[1];
    roll(c, Quota::recipients_per_day, now);
    // At MAIL FROM: nothing left today; at RCPT TO: this recipient would pass the limit.
    if (recipients == 0 ? c.known() >= limit : c.known() + recipients > limit) {
      return refuse(s, Quota::recipients_per_day, c.known() + recipients, limit);
    }
  }
  return "";
}

std::string Quotas::refuse(State& s, Quota q, std::uint64_t count, std::uint64_t limit) {
  ++s.counters[static_cast<int>(q)].refusals;
  // count: for recipients_per_day at RCPT TO, the day's with this transaction's so far.
  spdlog::warn("quota: tenant {} refused: {} count {}, limit {}", s.tenant.id, name(q), count, limit);
  return fmt::format("Error: tenant {} has reached its {} quota ({}); try again later", s.tenant.id, name(q), limit);
}

void Quotas::accepted(const std::string& tenant, std::size_t recipients) {
  const auto it = states_.find(tenant);
  if (it == states_.end()) return;
  auto& s = it->second;
  const auto now = clock_();
  std::lock_guard lock(mutex_);
  for (const auto q : all_quotas) {
    if (!limit_of(s.tenant.limits, q)) continue;
    auto& c = s.counters[static_cast<int>(q)];
    roll(c, q, now);
    c.pending += q == Quota::messages_per_hour ? 1 : recipients;
  }
}

void Quotas::sync() {
  std::lock_guard one_at_a_time(sync_mutex_);
  for (auto& [id, s] : states_) sync_one(s);
}

void Quotas::sync_one(State& s) {
  const auto now = clock_();
  std::vector<store::QuotaCount> adds, keys;
  std::vector<Quota> asked;
  {
    std::lock_guard lock(mutex_);
    for (const auto q : all_quotas) {
      if (!limit_of(s.tenant.limits, q)) continue;
      auto& c = s.counters[static_cast<int>(q)];
      roll(c, q, now);
      c.writing = std::exchange(c.pending, 0);
      if (c.writing) adds.push_back({stored_name(q), c.window, static_cast<long long>(c.writing)});
      keys.push_back({stored_name(q), c.window, 0});
      asked.push_back(q);
    }
  }
  // Written first, then read: the count read includes this relay's adds.
  const bool written = adds.empty() || s.tenant.store->add_quota_counts(adds, now - keep_seconds);
  const auto counts = s.tenant.store->quota_counts(keys);
  {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < asked.size(); ++i) {
      auto& c = s.counters[static_cast<int>(asked[i])];
      if (c.window != keys[i].window) continue;  // the window turned meanwhile: its numbers are moot
      if (!written) c.pending += c.writing;        // tried again at the next sync
      if (counts) {
        c.fleet = static_cast<std::uint64_t>(std::max(0LL, (*counts)[i]));
      } else if (written) {
        c.fleet += c.writing;  // in the store, though not read back
      }
      c.writing = 0;
    }
  }
  if (!written || !counts) warn(s, s.tenant.store->last_error());
}

void Quotas::warn(State& s, const std::string& what) {
  const auto now = clock_();
  if (s.last_warning && now - s.last_warning < 60) return;
  s.last_warning = now;
  spdlog::warn("quota: tenant {}: the store failed ({}); mail goes on, counted with what this relay knows "
               "(the last count read and what it accepted since)", s.tenant.id, what);
}

void Quotas::start(std::chrono::milliseconds period) {
  if (states_.empty() || worker_.joinable()) return;
  worker_ = std::thread([this, period] {
    ::pthread_setname_np(::pthread_self(), "quota");  // blocks on the stores: never a mail path thread
    std::unique_lock lock(stop_mutex_);
    while (!stopping_) {
      lock.unlock();
      sync();
      lock.lock();
      stop_cv_.wait_for(lock, period, [this] { return stopping_; });
    }
  });
}

std::string Quotas::prometheus() const {
  std::string out =
      "# HELP unsubrelay_quota_refusals_total MAIL FROM and RCPT TO refused (451 4.7.1) because a tenant's quota was "
      "reached.\n# TYPE unsubrelay_quota_refusals_total counter\n";
  std::lock_guard lock(mutex_);
  for (const auto& [id, s] : states_) {
    for (const auto q : all_quotas) {
      if (!limit_of(s.tenant.limits, q)) continue;
      out += fmt::format("unsubrelay_quota_refusals_total{{tenant=\"{}\",quota=\"{}\"}} {}\n", id, name(q),
                         s.counters[static_cast<int>(q)].refusals);
    }
  }
  return out;
}

}  // namespace unsubrelay::tenant
