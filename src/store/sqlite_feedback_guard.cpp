// sqlite_feedback_guard.cpp: what keeps reports from outside cheap (issue 22),
// on SQLite: unverified complaints in a capped, expiring table, and the
// forward_to_sender claims (each report forwarded once, forward_per_hour).
#include "sqlite_db.hpp"
#include "sqlite_parts.hpp"

namespace unsubrelay::store::sqlite {

namespace {

bool insert_unverified_locked(SqliteDb& db, const UnverifiedReport& r, const UnverifiedBounds& bounds) {
  Statement i(db.db_, "INSERT INTO unverified_reports (time, client, queue_id, source, reason, detail) "
                      "VALUES (?, ?, ?, ?, ?, ?)");
  i.bind(1, r.time).bind(2, r.client.substr(0, 64)).bind(3, r.queue_id.substr(0, 64)).bind(4, r.source);
  i.bind(5, r.reason).bind(6, r.detail.substr(0, 500));
  if (i.step() != SQLITE_DONE) return db.failed();
  const auto id = sqlite3_last_insert_rowid(db.db_);
  // Ids only grow (AUTOINCREMENT): the newest max_rows stay, and nothing older than max_age.
  Statement p(db.db_, "DELETE FROM unverified_reports WHERE id <= ? OR time < ?");
  p.bind(1, id - static_cast<long long>(bounds.max_rows)).bind(2, r.time - bounds.max_age_seconds);
  if (p.step() != SQLITE_DONE) return db.failed();
  Statement c(db.db_, "INSERT INTO feedback_counters (name, value) VALUES ('unverified', 1) "
                      "ON CONFLICT (name) DO UPDATE SET value = value + 1");
  return c.step() == SQLITE_DONE || db.failed();
}

/// The claim of one report's row; nullopt when the store failed.
std::optional<ForwardClaim> claim_locked(SqliteDb& db, const std::string& key, const std::string& sender,
                                         const std::string& owner, long long now, unsigned per_hour) {
  Statement o(db.db_, "SELECT forward_owner FROM feedback WHERE dedup_key = ?");
  o.bind(1, key);
  const int rc = o.step();
  if (rc == SQLITE_DONE) return ForwardClaim::duplicate;  // not recorded: nothing to forward
  if (rc != SQLITE_ROW) return db.fail();
  const auto holder = o.text(0);
  if (!holder.empty()) return holder == owner ? ForwardClaim::forward : ForwardClaim::duplicate;
  // "forwarded_at != 0" repeats the partial index's WHERE word for word: without it SQLite scans the table.
  Statement n(db.db_, "SELECT COUNT(*) FROM feedback WHERE forward_sender = ? AND forwarded_at > ? "
                      "AND forwarded_at != 0");
  n.bind(1, sender).bind(2, now - 3600);
  if (n.step() != SQLITE_ROW) return db.fail();
  if (n.integer(0) >= static_cast<long long>(per_hour)) return ForwardClaim::limited;
  Statement u(db.db_, "UPDATE feedback SET forward_sender = ?, forward_owner = ?, forwarded_at = ? "
                      "WHERE dedup_key = ? AND forward_owner = ''");
  u.bind(1, sender).bind(2, owner).bind(3, now).bind(4, key);
  if (u.step() != SQLITE_DONE) return db.fail();
  return sqlite3_changes(db.db_) > 0 ? ForwardClaim::forward : ForwardClaim::duplicate;
}

}  // namespace

bool record_unverified(SqliteDb& db, const UnverifiedReport& report, const UnverifiedBounds& bounds) {
  std::lock_guard lock(db.mutex_);
  if (!db.exec("BEGIN IMMEDIATE")) return false;
  if (!insert_unverified_locked(db, report, bounds) || !db.exec("COMMIT")) {
    db.rollback();
    return false;
  }
  return true;
}

std::optional<UnverifiedTally> unverified_tally(SqliteDb& db) {
  std::lock_guard lock(db.mutex_);
  Statement s(db.db_, "SELECT (SELECT COALESCE(MAX(value), 0) FROM feedback_counters WHERE name = 'unverified'), "
                      "(SELECT COUNT(*) FROM unverified_reports)");
  if (s.step() != SQLITE_ROW) return db.fail();
  return UnverifiedTally{static_cast<std::uint64_t>(s.integer(0)), static_cast<std::uint64_t>(s.integer(1))};
}

std::optional<ForwardClaim> claim_forward(SqliteDb& db, const std::string& dedup_key, const std::string& sender,
                                          const std::string& owner, long long now, unsigned per_hour) {
  std::lock_guard lock(db.mutex_);
  if (!db.exec("BEGIN IMMEDIATE")) return std::nullopt;
  // The row's key as record_feedback stored it.
  const auto claimed = claim_locked(db, dedup_key.substr(0, 300), sender, owner, now, per_hour);
  if (!claimed || !db.exec("COMMIT")) return db.rollback();
  return claimed;
}

}  // namespace unsubrelay::store::sqlite
