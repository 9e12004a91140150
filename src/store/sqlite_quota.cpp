// sqlite_quota.cpp: tenant quota counts (issue 24) on SQLite: one row per
// (name, window_start), added to with an upsert, read in one statement each.
#include "sqlite_db.hpp"
#include "sqlite_parts.hpp"

namespace unsubrelay::store::sqlite {

namespace {

bool add_locked(SqliteDb& db, const std::vector<QuotaCount>& adds, long long expire_before) {
  for (const auto& a : adds) {
    Statement s(db.db_, "INSERT INTO quota_counts (name, window_start, value) VALUES (?, ?, ?) "
                                 "ON CONFLICT (name, window_start) DO UPDATE SET value = value + excluded.value");
    s.bind(1, a.name).bind(2, a.window).bind(3, a.value);
    if (s.step() != SQLITE_DONE) return db.failed();
  }
  Statement d(db.db_, "DELETE FROM quota_counts WHERE window_start < ?");
  d.bind(1, expire_before);
  return d.step() == SQLITE_DONE || db.failed();
}

}  // namespace

bool add_quota_counts(SqliteDb& db, const std::vector<QuotaCount>& adds, long long expire_before) {
  std::lock_guard lock(db.mutex_);
  if (!db.exec("BEGIN IMMEDIATE")) return false;
  if (!add_locked(db, adds, expire_before) || !db.exec("COMMIT")) {
    db.rollback();
    return false;
  }
  return true;
}

std::optional<std::vector<long long>> quota_counts(SqliteDb& db, const std::vector<QuotaCount>& keys) {
  std::lock_guard lock(db.mutex_);
  std::vector<long long> out;
  out.reserve(keys.size());
  for (const auto& k : keys) {
    Statement s(db.db_, "SELECT value FROM quota_counts WHERE name = ? AND window_start = ?");
    s.bind(1, k.name).bind(2, k.window);
    const int rc = s.step();
    if (rc == SQLITE_ROW) {
      out.push_back(s.integer(0));
    } else if (rc == SQLITE_DONE) {
      out.push_back(0);
    } else {
      return db.fail();
    }
  }
  return out;
}

}  // namespace unsubrelay::store::sqlite
