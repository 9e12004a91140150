// counters.hpp: the /metrics counters kept per tenant (SPEC Part 3: they
// carry a tenant label). The table is made whole at start-up, one entry per
// tenant and "" for what belongs to none (a refusal before MAIL FROM chose a
// tenant); after that it is only read and its atomics incremented, from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <iterator>
#include <map>
#include <string>
#include <string_view>

namespace unsubrelay::tenant {

struct Counters {
  std::atomic<std::uint64_t> messages_received{0};
  std::atomic<std::uint64_t> messages_refused{0};
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> deferred{0};
  std::atomic<std::uint64_t> bounced{0};
  std::atomic<std::uint64_t> suppressed{0};
};

class CounterTable {
 public:
  CounterTable() = default;
  /// ids: every tenant; "" is added. No ids (no tenants): an empty table, no labels.
  template <typename Ids>
  explicit CounterTable(const Ids& ids) {
    if (std::empty(ids)) return;
    table_[""];
    for (const auto& id : ids) table_[id];
  }
  bool empty() const { return table_.empty(); }
  /// The tenant's counters ("" and unknown ids: the "" entry); nullptr when the table is empty.
  Counters* of(std::string_view tenant) {
    if (table_.empty()) return nullptr;
    const auto it = table_.find(tenant.empty() ? std::string_view("default") : tenant);
    return it == table_.end() ? &table_.find("")->second : &it->second;
  }
  const std::map<std::string, Counters, std::less<>>& all() const { return table_; }

 private:
  std::map<std::string, Counters, std::less<>> table_;
};

}  // namespace unsubrelay::tenant
