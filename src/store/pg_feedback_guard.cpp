// pg_feedback_guard.cpp: what keeps reports from outside cheap (issue 22), on
// PostgreSQL: the same rules as sqlite_feedback_guard.cpp. The forward claim
// is one conditional UPDATE, so two relays of a fleet racing for one report
// forward it once; forward_per_hour is counted across the fleet (two relays
// claiming at the same instant may each take the last slot).
#include "pg_parts.hpp"

namespace unsubrelay::store::pg {

bool record_unverified(pqxx::work& w, const UnverifiedReport& r, const UnverifiedBounds& bounds) {
  const auto id = w.exec_params("INSERT INTO unverified_reports (time, client, queue_id, source, reason, detail) "
                                "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                                r.time, r.client.substr(0, 64), r.queue_id.substr(0, 64), r.source, r.reason,
                                r.detail.substr(0, 500))[0][0]
                      .as<long long>();
  // Ids only grow: the newest max_rows stay (fewer across a sequence's gaps), and nothing older than max_age.
  w.exec_params("DELETE FROM unverified_reports WHERE id <= $1 OR time < $2",
                id - static_cast<long long>(bounds.max_rows), r.time - bounds.max_age_seconds);
  w.exec("INSERT INTO feedback_counters (name, value) VALUES ('unverified', 1) "
         "ON CONFLICT (name) DO UPDATE SET value = feedback_counters.value + 1");
  return true;
}

UnverifiedTally unverified_tally(pqxx::work& w) {
  const auto r = w.exec("SELECT (SELECT COALESCE(MAX(value), 0) FROM feedback_counters WHERE name = 'unverified'), "
                        "(SELECT COUNT(*) FROM unverified_reports)");
  return {r[0][0].as<std::uint64_t>(), r[0][1].as<std::uint64_t>()};
}

ForwardClaim claim_forward(pqxx::work& w, const std::string& dedup_key, const std::string& sender,
                           const std::string& owner, long long now, unsigned per_hour) {
  const auto key = dedup_key.substr(0, 300);  // the row's key as record_feedback stored it
  const auto row = w.exec_params("SELECT forward_owner FROM feedback WHERE dedup_key = $1", key);
  if (row.empty()) return ForwardClaim::duplicate;  // not recorded: nothing to forward
  const auto holder = row[0][0].as<std::string>();
  if (!holder.empty()) return holder == owner ? ForwardClaim::forward : ForwardClaim::duplicate;
  // "forwarded_at != 0" matches the partial index's predicate, so the planner can use it.
  const auto sent = w.exec_params("SELECT COUNT(*) FROM feedback WHERE forward_sender = $1 AND forwarded_at > $2 "
                                  "AND forwarded_at != 0",
                                  sender, now - 3600)[0][0]
                        .as<long long>();
  if (sent >= static_cast<long long>(per_hour)) return ForwardClaim::limited;
  const auto claimed = w.exec_params("UPDATE feedback SET forward_sender = $1, forward_owner = $2, forwarded_at = $3 "
                                     "WHERE dedup_key = $4 AND forward_owner = '' RETURNING id",
                                     sender, owner, now, key);
  return claimed.empty() ? ForwardClaim::duplicate : ForwardClaim::forward;
}

}  // namespace unsubrelay::store::pg
