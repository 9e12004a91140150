// sqlite_suppression_list.cpp: managing the suppression list on SQLite
// (suppression_list.hpp): list, add (API, CLI, import) and lift, each change
// with its event in the same transaction.
#include <algorithm>

#include <fmt/format.h>

#include "sqlite_db.hpp"
#include "sqlite_parts.hpp"
#include "unsubrelay/store/suppression_list.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::store::sqlite {

namespace {

constexpr const char* columns = "address, scope, scope_value, reason, source, created, expires";

// Cached (StatementCache): an import runs them once per row.
constexpr const char* insert_event_sql =
    "INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic) VALUES (?, ?, '', ?, ?, ?, ?)";
constexpr const char* state_sql =
    "SELECT expires, reason, source FROM suppressions WHERE address = ? AND scope = ? AND scope_value = ?";
constexpr const char* uid_of_sql = "SELECT uid FROM contacts WHERE address = ?";
constexpr const char* insert_contact_sql =
    "INSERT INTO contacts (uid, address, created) VALUES (?, ?, ?) ON CONFLICT (address) DO NOTHING";
constexpr const char* insert_new_sql =
    "INSERT INTO suppressions (address, scope, scope_value, reason, source, created, expires) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (address, scope, scope_value) DO NOTHING";

Suppression entry_of(const Statement& s) {
  return {s.text(0), parse_scope(s.text(1)).value_or(Scope::campaigns), s.text(2), s.text(3), s.text(4),
          s.integer(5), s.integer(6)};
}

/// The event that records a change: an unsubscribe for an added entry, a
/// resubscribe for a lifted one; email_id or topic from the entry's scope.
bool insert_event_locked(SqliteDb& db, const std::string& uid, const Suppression& e, Action action,
                         const std::string& source, long long now) {
  Statement s(*db.statements_, insert_event_sql);
  s.bind(1, uid).bind(2, e.scope == Scope::campaign ? e.scope_value : std::string());
  s.bind(3, std::string(name(action))).bind(4, source).bind(5, now);
  s.bind(6, e.scope == Scope::topic ? e.scope_value : std::string());
  return s.step() == SQLITE_DONE || db.failed();
}

/// What an add did to one entry. A new entry is inserted at once (one
/// statement for the common case of an import); an entry already there is
/// renewed only when that changes something, so a re-import writes nothing.
enum class Change { add, renew, none };

std::optional<Change> add_one_locked(SqliteDb& db, const Suppression& e, long long now) {
  {
    Statement s(*db.statements_, insert_new_sql);
    s.bind(1, e.address).bind(2, std::string(name(e.scope))).bind(3, e.scope_value);
    s.bind(4, e.reason).bind(5, e.source).bind(6, e.created).bind(7, e.expires);
    if (s.step() != SQLITE_DONE) return db.fail();
    if (sqlite3_changes(db.db_) == 1) return Change::add;
  }
  Change change;
  {
    Statement s(*db.statements_, state_sql);
    s.bind(1, e.address).bind(2, std::string(name(e.scope))).bind(3, e.scope_value);
    if (s.step() != SQLITE_ROW) return db.fail();
    const auto expires = s.integer(0);
    const bool active = expires == 0 || expires > now;
    const bool same = expires == 0 && e.expires == 0 && s.text(1) == e.reason && s.text(2) == e.source;
    change = !active ? Change::add : same ? Change::none : Change::renew;  // an expired or lifted one starts over
  }
  if (change != Change::none && !upsert_locked(db, e)) return std::nullopt;
  return change;
}

/// An entry the batch made active, and the uid of its contact.
struct Fresh {
  std::string uid;
  const Suppression* entry;
};

/// The contact's uid: `uid` for a new contact, else the stored one.
std::optional<std::string> contact_locked(SqliteDb& db, const std::string& uid, const std::string& address,
                                          long long now) {
  {
    Statement s(*db.statements_, insert_contact_sql);
    s.bind(1, uid).bind(2, address).bind(3, now);
    if (s.step() != SQLITE_DONE) return db.fail();
    if (sqlite3_changes(db.db_) == 1) return uid;
  }
  Statement s(*db.statements_, uid_of_sql);
  s.bind(1, address);
  if (s.step() == SQLITE_ROW) return s.text(0);
  return db.fail();
}

/// The contacts (new ones made) and one unsubscribe event per fresh entry,
/// written in the order of a uid drawn for each address: the uid indexes
/// (contacts, events_by_uid) are random, and walking them forwards keeps a
/// large import from touching each page many times. fresh is address-ordered.
bool record_fresh_locked(SqliteDb& db, std::vector<Fresh>& fresh, long long now) {
  for (std::size_t i = 0; i < fresh.size(); ++i) {
    if (i && fresh[i - 1].entry->address == fresh[i].entry->address) {
      fresh[i].uid = fresh[i - 1].uid;  // same contact
      continue;
    }
    auto uid = token::random_uid_text();
    if (!uid) {
      db.last_error_ = "RAND_bytes failed";
      return false;
    }
    fresh[i].uid = std::move(*uid);
  }
  std::stable_sort(fresh.begin(), fresh.end(), [](const auto& a, const auto& b) { return a.uid < b.uid; });
  std::string drawn, stored;  // the previous entry's drawn uid, and its contact's
  for (auto& f : fresh) {
    if (f.uid != drawn) {
      drawn = f.uid;
      const auto uid = contact_locked(db, f.uid, f.entry->address, now);
      if (!uid) return false;
      stored = *uid;
    }
    if (!insert_event_locked(db, stored, *f.entry, Action::unsubscribe, f.entry->source, now)) return false;
  }
  return true;
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
  std::vector<Suppression> batch(entries);
  for (auto& e : batch) e.address = normalise_address(e.address);
  // Address order: the suppressions and contacts indexes are walked forwards.
  std::sort(batch.begin(), batch.end(), [](const auto& a, const auto& b) { return a.address < b.address; });
  std::vector<Fresh> fresh;
  for (const auto& e : batch) {
    const auto change = add_one_locked(db, e, now);
    if (!change) return db.rollback();
    if (*change == Change::add) fresh.push_back({"", &e});  // renewed ones record nothing new
  }
  if (!record_fresh_locked(db, fresh, now) || !db.exec("COMMIT")) return db.rollback();
  return fresh.size();
}

std::optional<std::size_t> lift_suppressions(SqliteDb& db, const std::string& address, const std::string& topic,
                                             const std::string& source, long long now) {
  std::lock_guard lock(db.mutex_);
  const auto key = normalise_address(address);
  if (!db.exec("BEGIN IMMEDIATE")) return std::nullopt;
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
      return db.rollback();
    }
  }
  for (const auto& e : lifted) {
    Statement s(db.db_, "UPDATE suppressions SET expires = ? WHERE address = ? AND scope = ? AND scope_value = ?");
    s.bind(1, now).bind(2, key).bind(3, std::string(name(e.scope))).bind(4, e.scope_value);
    if (s.step() != SQLITE_DONE) {
      db.failed();
      return db.rollback();
    }
    const auto uid = uid_locked(db, key);
    if (!uid || !insert_event_locked(db, *uid, e, Action::resubscribe, source, now)) return db.rollback();
  }
  if (!db.exec("COMMIT")) return db.rollback();
  return lifted.size();
}

}  // namespace unsubrelay::store::sqlite
