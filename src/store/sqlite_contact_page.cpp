// sqlite_contact_page.cpp: one page of a contact's data on SQLite
// (contact_page.hpp). Each list is read with LIMIT limit + 1 after the
// cursor's key: the extra row only says that a next page exists.
#include "sqlite_db.hpp"
#include "sqlite_parts.hpp"

namespace unsubrelay::store::sqlite {

namespace {

long long fetch_limit(const ContactPageQuery& q) { return static_cast<long long>(q.limit) + 1; }

bool read_contact_locked(SqliteDb& db, ContactRecord& out) {
  Statement s(db.db_, "SELECT uid, created FROM contacts WHERE address = ?");
  s.bind(1, out.address);
  const int rc = s.step();
  if (rc == SQLITE_ROW) {
    out.uid = s.text(0);
    out.created = s.integer(1);
  }
  return rc == SQLITE_ROW || rc == SQLITE_DONE || db.failed();
}

bool read_sends_locked(SqliteDb& db, const ContactPageQuery& q, ContactRecord& out) {
  Statement s(db.db_, "SELECT s.launch_list_id, COALESCE(l.email_id, ''), s.queue_id, s.upstream_id, s.status, "
                      "s.updated, s.last_reply, s.after_optout FROM sends s LEFT JOIN launches l "
                      "ON l.launch_list_id = s.launch_list_id WHERE s.uid = ?1 AND (?2 OR s.launch_list_id > ?3) "
                      "ORDER BY s.launch_list_id LIMIT ?4");
  s.bind(1, out.uid).bind(2, q.first ? 1LL : 0LL).bind(3, q.after_send).bind(4, fetch_limit(q));
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.sends.push_back({s.text(1), s.text(0), s.text(2), s.text(3), s.text(4), s.integer(5), s.text(6),
                         s.integer(7) != 0});
  }
  return rc == SQLITE_DONE || db.failed();
}

bool read_events_locked(SqliteDb& db, const ContactPageQuery& q, ContactRecord& out) {
  Statement s(db.db_, "SELECT id, action, source, time, email_id, launch_list_id, topic, ip, user_agent "
                      "FROM events WHERE uid = ?1 AND id > ?2 AND action IN ('unsubscribe', 'resubscribe', 'erase') "
                      "ORDER BY id LIMIT ?3");
  s.bind(1, out.uid).bind(2, q.after_event).bind(3, fetch_limit(q));
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.events.push_back({s.integer(0), s.text(1), s.text(2), s.integer(3), s.text(4), s.text(5), s.text(6),
                          s.text(7), s.text(8)});
  }
  return rc == SQLITE_DONE || db.failed();
}

bool read_feedback_locked(SqliteDb& db, const ContactPageQuery& q, ContactRecord& out, std::vector<long long>& ids) {
  Statement s(db.db_, "SELECT address, uid, launch_list_id, email_id, kind, status, diagnostic, source, time, "
                      "dedup_key, id FROM feedback WHERE (address = ?1 OR (?2 != '' AND uid = ?2)) AND id > ?3 "
                      "ORDER BY id LIMIT ?4");
  s.bind(1, out.address).bind(2, out.uid).bind(3, q.after_feedback).bind(4, fetch_limit(q));
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.feedback.push_back({s.text(0), s.text(1), s.text(2), s.text(3),
                            parse_feedback_kind(s.text(4)).value_or(FeedbackKind::soft_bounce), s.text(5), s.text(6),
                            s.text(7), s.integer(8), s.text(9)});
    ids.push_back(s.integer(10));
  }
  return rc == SQLITE_DONE || db.failed();
}

}  // namespace

bool read_page_locked(SqliteDb& db, const ContactPageQuery& query, ContactRecord& out,
                      std::vector<long long>& feedback_ids) {
  bool ok = read_contact_locked(db, out);
  if (ok && !out.uid.empty()) ok = read_sends_locked(db, query, out) && read_events_locked(db, query, out);
  if (ok && query.first) ok = read_suppressions_locked(db, out);
  return ok && read_feedback_locked(db, query, out, feedback_ids);
}

std::optional<ContactPage> contact_page(SqliteDb& db, const std::string& address, const ContactPageQuery& query) {
  std::lock_guard lock(db.mutex_);
  ContactRecord out;
  out.address = normalise_address(address);
  if (!db.exec("BEGIN")) return std::nullopt;
  std::vector<long long> feedback_ids;
  const bool ok = read_page_locked(db, query, out, feedback_ids);
  db.exec("COMMIT");
  if (!ok) return std::nullopt;
  return finish_page(std::move(out), feedback_ids, query);
}

}  // namespace unsubrelay::store::sqlite
