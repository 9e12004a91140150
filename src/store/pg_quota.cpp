// pg_quota.cpp: tenant quota counts (issue 24) on PostgreSQL. The add is an
// upsert, atomic under concurrent relays (ON CONFLICT DO UPDATE locks the
// row), so a fleet on one database sums every relay's messages; rows are
// taken in (name, window) order, so two relays' transactions never deadlock.
#include <algorithm>
#include <tuple>

#include "pg_parts.hpp"

namespace unsubrelay::store::pg {

void add_quota_counts(pqxx::work& w, const std::vector<QuotaCount>& adds, long long expire_before) {
  auto sorted = adds;
  std::sort(sorted.begin(), sorted.end(),
            [](const QuotaCount& a, const QuotaCount& b) { return std::tie(a.name, a.window) < std::tie(b.name, b.window); });
  for (const auto& a : sorted) {
    w.exec_params("INSERT INTO quota_counts (name, window_start, value) VALUES ($1, $2, $3) "
                  "ON CONFLICT (name, window_start) DO UPDATE SET value = quota_counts.value + excluded.value",
                  a.name, a.window, a.value);
  }
  w.exec_params("DELETE FROM quota_counts WHERE window_start < $1", expire_before);
}

std::vector<long long> quota_counts(pqxx::work& w, const std::vector<QuotaCount>& keys) {
  std::vector<long long> out;
  out.reserve(keys.size());
  for (const auto& k : keys) {
    const auto r = w.exec_params("SELECT value FROM quota_counts WHERE name = $1 AND window_start = $2", k.name,
                                 k.window);
    out.push_back(r.empty() ? 0 : r[0][0].as<long long>());
  }
  return out;
}

}  // namespace unsubrelay::store::pg
