// quotas.hpp: tenants[].limits.messages_per_hour and recipients_per_day
// (SPEC Part 3, "Quotas and fairness"), counted for the whole fleet.
//
// Each tenant's counts live in its own store (store.hpp QuotaCount), so every
// relay on one PostgreSQL database adds to and reads the same rows. The SMTP
// session never waits for the store: refusal() answers from what sync() last
// read, plus what this relay accepted since (so a relay alone is exact), and
// accepted() only adds to memory. sync() runs on a thread of its own, once a
// second: it writes what was accepted and reads the fleet's counts back.
//
// A store that fails is logged (once a minute per tenant) and never refuses
// mail by itself: the relay goes on enforcing what it knows (the last count
// read and what it accepted since), which can only be lower than the fleet's
// true count. Operators prefer mail flowing to a store outage stopping it
// (docs/tenant-quotas.md).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/store/store.hpp"

namespace unsubrelay::tenant {

enum class Quota { messages_per_hour, recipients_per_day };
const char* name(Quota q);  // "messages_per_hour" | "recipients_per_day": logged and the metric's label

/// One tenant's limits and the store that counts them (not owned).
struct QuotaTenant {
  std::string id;
  config::TenantLimits limits;
  store::Store* store = nullptr;
};

class Quotas {
 public:
  /// clock: Unix seconds (tests move it across windows).
  explicit Quotas(const std::vector<QuotaTenant>& tenants, std::function<long long()> clock = {});
  ~Quotas();
  Quotas(const Quotas&) = delete;
  Quotas& operator=(const Quotas&) = delete;

  /// False when no tenant has a limit (nothing to count).
  bool enabled() const { return !states_.empty(); }
  /// smtp::SessionPolicy::quota_refusal: at MAIL FROM (recipients 0) and at
  /// each RCPT TO (the transaction's recipients with this one). "" to go on,
  /// else the text of the 451 4.7.1; each refusal is logged and counted.
  std::string refusal(const std::string& tenant, std::size_t recipients);
  /// After the 250: one message with this many relayed recipients. Memory only.
  void accepted(const std::string& tenant, std::size_t recipients);
  /// Writes what was accepted since the last call and reads the fleet's
  /// counts, tenant by tenant; blocks on the stores (start() calls it).
  void sync();
  /// Calls sync() now and then every period on a thread of its own, until destruction.
  void start(std::chrono::milliseconds period = std::chrono::seconds(1));
  /// unsubrelay_quota_refusals_total{tenant,quota} for /metrics.
  std::string prometheus() const;

 private:
  /// One quota of one tenant in its current window.
  struct Counter {
    long long window = 0;        // the window's first second
    std::uint64_t fleet = 0;     // the store's count for it, as last read (this relay's written adds included)
    std::uint64_t pending = 0;   // accepted here, not yet handed to the store
    std::uint64_t writing = 0;   // handed to the store by the sync() under way
    std::uint64_t refusals = 0;  // since start, all windows
    std::uint64_t known() const { return fleet + pending + writing; }
  };
  struct State {
    QuotaTenant tenant;
    Counter counters[2];  // by Quota
    long long last_warning = 0;
  };

  static long long window_of(Quota q, long long now);
  /// Moves c to now's window; a new window starts from zero.
  static void roll(Counter& c, Quota q, long long now);
  std::string refuse(State& s, Quota q, std::uint64_t count, std::uint64_t limit);
  void sync_one(State& s);
  void warn(State& s, const std::string& what);

  std::function<long long()> clock_;
  mutable std::mutex mutex_;  // guards states_' counters
  std::map<std::string, State, std::less<>> states_;  // tenants with a limit only
  std::mutex sync_mutex_;     // one sync() at a time
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace unsubrelay::tenant
