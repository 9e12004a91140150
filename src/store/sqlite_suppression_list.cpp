// sqlite_suppression_list.cpp: managing the suppression list on SQLite
// (suppression_list.hpp): list, add (API, CLI, import) and lift, each change
// with its event in the same transaction.
#include <fmt/format.h>

#include "sqlite_db.hpp"
#include "sqlite_parts.hpp"
#include "unsubrelay/store/suppression_list.hpp"

namespace unsubrelay::store::sqlite {

namespace {

constexpr const char* columns = "address, scope, scope_value, reason, source, created, expires";

Suppression entry_of(const Statement& s) {
  return {s.text(0), parse_scope(s.text(1)).value_or(Scope::campaigns), s.text(2), s.text(3), s.text(4),
          s.integer(5), s.integer(6)};
}

/// The event that records a change: an unsubscribe for an added entry, a
/// resubscribe for a lifted one; email_id or topic from the entry's scope.
bool insert_event_locked(SqliteDb& db, const std::string& uid, const Suppression& e, Action action,
                         const std::string& source, long long now) {
  Statement s(db.db_, "INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic) "
                      "VALUES (?, ?, '', ?, ?, ?, ?)");
  s.bind(1, uid).bind(2, e.scope == Scope::campaign ? e.scope_value : std::string());
  s.bind(3, std::string(name(action))).bind(4, source).bind(5, now);
  s.bind(6, e.scope == Scope::topic ? e.scope_value : std::string());
  return s.step() == SQLITE_DONE || db.failed();
}

/// 1 when the entry (address, scope, value) is active, 0 when not, -1 on error.
int active_locked(SqliteDb& db, const Suppression& e, long long now) {
  Statement s(db.db_, "SELECT 1 FROM suppressions WHERE address = ? AND scope = ? AND scope_value = ? AND "
                      "(expires = 0 OR expires > ?)");
  s.bind(1, e.address).bind(2, std::string(name(e.scope))).bind(3, e.scope_value).bind(4, now);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return 1;
  if (rc == SQLITE_DONE) return 0;
  db.failed();
  return -1;
}

std::optional<SuppressionPage> page_of(SqliteDb& db, Statement& s, std::size_t limit) {
  SuppressionPage page;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) page.entries.push_back(entry_of(s));
  if (rc != SQLITE_DONE) return db.fail();
  if (limit && page.entries.size() == limit) page.next_cursor = encode_cursor(page.entries.back());
  return page;
}

}  // namespace

std::optional<SuppressionPage> list_suppressions(SqliteDb& db, const SuppressionQuery& q, long long now) {
  std::lock_guard lock(db.mutex_);
  if (!q.address.empty()) {
    Statement s(db.db_, fmt::format("SELECT {} FROM suppressions WHERE address = ? AND (expires = 0 OR expires > ?) "
                                    "ORDER BY created, scope, scope_value",
                                    columns)
                            .c_str());
    s.bind(1, normalise_address(q.address)).bind(2, now);
    return page_of(db, s, 0);
  }
  CursorKey after{q.since - 1, "", "", ""};
  if (!q.cursor.empty()) after = *decode_cursor(q.cursor);  // the caller checked it
  Statement s(db.db_, fmt::format("SELECT {} FROM suppressions WHERE (expires = 0 OR expires > ?1) AND created >= ?2 "
                                  "AND (created, address, scope, scope_value) > (?3, ?4, ?5, ?6) "
                                  "ORDER BY created, address, scope, scope_value LIMIT ?7",
                                  columns)
                          .c_str());
  s.bind(1, now).bind(2, q.since).bind(3, after.created).bind(4, after.address).bind(5, after.scope);
  s.bind(6, after.scope_value).bind(7, static_cast<long long>(q.limit));
  return page_of(db, s, q.limit);
}

std::optional<std::size_t> add_suppressions(SqliteDb& db, const std::vector<Suppression>& entries, long long now) {
  std::lock_guard lock(db.mutex_);
  if (!db.exec("BEGIN IMMEDIATE")) return std::nullopt;
  std::size_t added = 0;
  auto rollback = [&]() -> std::optional<std::size_t> {
    const auto error = db.last_error_;
    db.exec("ROLLBACK");
    db.last_error_ = error;
    return std::nullopt;
  };
  for (auto e : entries) {
    e.address = normalise_address(e.address);
    const int active = active_locked(db, e, now);
    if (active < 0 || !upsert_locked(db, e)) return rollback();
    if (active) continue;  // renewed: nothing new to record
    const auto uid = uid_locked(db, e.address);
    if (!uid || !insert_event_locked(db, *uid, e, Action::unsubscribe, e.source, now)) return rollback();
    ++added;
  }
  if (!db.exec("COMMIT")) return rollback();
  return added;
}

std::optional<std::size_t> lift_suppressions(SqliteDb& db, const std::string& address, const std::string& topic,
                                             const std::string& source, long long now) {
  std::lock_guard lock(db.mutex_);
  const auto key = normalise_address(address);
  if (!db.exec("BEGIN IMMEDIATE")) return std::nullopt;
  auto rollback = [&]() -> std::optional<std::size_t> {
    const auto error = db.last_error_;
    db.exec("ROLLBACK");
    db.last_error_ = error;
    return std::nullopt;
  };
  std::vector<Suppression> lifted;
  {
    Statement s(db.db_, fmt::format("SELECT {} FROM suppressions WHERE address = ?1 AND (expires = 0 OR expires > ?2) "
                                    "AND (?3 = '' OR (scope = 'topic' AND scope_value = ?3))",
                                    columns)
                            .c_str());
    s.bind(1, key).bind(2, now).bind(3, topic);
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) lifted.push_back(entry_of(s));
    if (rc != SQLITE_DONE) {
      db.failed();
      return rollback();
    }
  }
  for (const auto& e : lifted) {
    Statement s(db.db_, "UPDATE suppressions SET expires = ? WHERE address = ? AND scope = ? AND scope_value = ?");
    s.bind(1, now).bind(2, key).bind(3, std::string(name(e.scope))).bind(4, e.scope_value);
    if (s.step() != SQLITE_DONE) {
      db.failed();
      return rollback();
    }
    const auto uid = uid_locked(db, key);
    if (!uid || !insert_event_locked(db, *uid, e, Action::resubscribe, source, now)) return rollback();
  }
  if (!db.exec("COMMIT")) return rollback();
  return lifted.size();
}

}  // namespace unsubrelay::store::sqlite
