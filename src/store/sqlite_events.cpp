// sqlite_events.cpp: the events table on SQLite beyond subscription changes
// (issue 26, docs/events.md): a copy's outcome written with its send record or
// its feedback row, the event stream read with each contact's address, and
// the retention of outcome events.
#include "sqlite_db.hpp"
#include "sqlite_parts.hpp"

namespace unsubrelay::store::sqlite {

namespace {

// Cached (StatementCache): the delivery path runs them once per copy.
constexpr const char* insert_outcome_sql =
    "INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic, queue_id, copy_index, status, "
    "detail, kind, upstream_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
// The first deferral of a copy only: not when its send record says deferred already.
constexpr const char* insert_first_deferral_sql =
    "INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic, queue_id, copy_index, status, "
    "detail, kind, upstream_id) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13 WHERE NOT EXISTS "
    "(SELECT 1 FROM sends WHERE launch_list_id = ?3 AND uid = ?1 AND status = 'deferred')";

}  // namespace

bool insert_outcome_locked(SqliteDb& db, const Event& e) {
  Statement s(*db.statements_, e.action == Action::deferred ? insert_first_deferral_sql : insert_outcome_sql);
  s.bind(1, e.uid).bind(2, e.email_id).bind(3, e.launch_list_id).bind(4, std::string(name(e.action)));
  s.bind(5, e.source).bind(6, e.time).bind(7, e.topic).bind(8, e.queue_id).bind(9, e.copy);
  s.bind(10, e.status.substr(0, 64)).bind(11, e.detail.substr(0, 500)).bind(12, e.kind).bind(13, e.upstream_id);
  return s.step() == SQLITE_DONE || db.failed();
}

bool insert_feedback_event_locked(SqliteDb& db, const Feedback& f) {
  // The report's contact: by its uid (the token's), else by the address it named. None (never
  // seen, or erased since: its events must not carry its words again): no event, the row stands.
  std::string uid;
  {
    Statement s(db.db_, "SELECT uid FROM contacts WHERE (?1 != '' AND uid = ?1) OR (?1 = '' AND address = ?2)");
    s.bind(1, f.uid).bind(2, f.address);
    const int rc = s.step();
    if (rc == SQLITE_ROW) uid = s.text(0);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db.failed();
  }
  if (uid.empty()) return true;
  auto e = feedback_event(f, uid);
  if (!f.launch_list_id.empty()) {  // the copy's queue id, from its send record (the index is not kept there)
    Statement s(db.db_, "SELECT queue_id FROM sends WHERE launch_list_id = ? AND uid = ?");
    s.bind(1, f.launch_list_id).bind(2, uid);
    const int rc = s.step();
    if (rc == SQLITE_ROW) e.queue_id = s.text(0);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db.failed();
  }
  return insert_outcome_locked(db, e);
}

std::optional<std::vector<StoredEvent>> events_since(SqliteDb& db, long long since, long long after_id,
                                                     std::size_t limit) {
  std::lock_guard lock(db.mutex_);
  Statement s(db.db_,
              "SELECT e.id, e.uid, e.email_id, e.launch_list_id, e.action, e.source, e.time, e.ip, e.user_agent, "
              "e.topic, e.queue_id, e.copy_index, e.status, e.detail, e.kind, e.upstream_id, "
              "COALESCE(c.address, '') FROM events e LEFT JOIN contacts c ON c.uid = e.uid "
              "WHERE e.time >= ? AND e.id > ? ORDER BY e.id LIMIT ?");
  s.bind(1, since).bind(2, after_id).bind(3, static_cast<long long>(limit));
  std::vector<StoredEvent> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    StoredEvent x;
    x.id = s.integer(0);
    x.event = {s.text(1), s.text(2), s.text(3), parse_action(s.text(4)), s.text(5), s.integer(6), s.text(7), s.text(8),
               "", s.text(9), s.text(10), s.integer(11), s.text(12), s.text(13), s.text(14), s.text(15)};
    x.address = s.text(16);
    out.push_back(std::move(x));
  }
  if (rc != SQLITE_DONE) return db.fail();
  return out;
}

std::optional<std::size_t> purge_events(SqliteDb& db, long long cutoff, std::size_t batch) {
  std::lock_guard lock(db.mutex_);
  Statement s(db.db_, "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < ? AND action NOT IN "
                      "('unsubscribe', 'resubscribe', 'erase') ORDER BY time LIMIT ?)");
  s.bind(1, cutoff).bind(2, static_cast<long long>(batch));
  if (s.step() != SQLITE_DONE) return db.fail();
  return static_cast<std::size_t>(sqlite3_changes(db.db_));
}

}  // namespace unsubrelay::store::sqlite
