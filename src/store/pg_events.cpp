// pg_events.cpp: the events table on PostgreSQL beyond subscription changes
// (issue 26, docs/events.md); the same rules as sqlite_events.cpp.
#include "pg_parts.hpp"

namespace unsubrelay::store::pg {

namespace {

constexpr const char* outcome_columns =
    "INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic, queue_id, copy_index, status, "
    "detail, kind, upstream_id) ";

}  // namespace

void insert_outcome(pqxx::work& w, const Event& e) {
  // The first deferral of a copy only: not when its send record says deferred already.
  const std::string sql = std::string(outcome_columns) +
                          (e.action == Action::deferred
                               ? "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 WHERE NOT EXISTS "
                                 "(SELECT 1 FROM sends WHERE launch_list_id = $3 AND uid = $1 AND status = 'deferred')"
                               : "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)");
  w.exec_params(sql, e.uid, e.email_id, e.launch_list_id, std::string(name(e.action)), e.source, e.time, e.topic,
                e.queue_id, e.copy, e.status.substr(0, 64), e.detail.substr(0, 500), e.kind, e.upstream_id);
}

void insert_feedback_event(pqxx::work& w, const Feedback& f) {
  std::string uid = f.uid;
  if (uid.empty() && !f.address.empty()) {  // a report that named the address only: its contact, if there is one
    const auto r = w.exec_params("SELECT uid FROM contacts WHERE address = $1", f.address);
    if (!r.empty()) uid = r[0][0].as<std::string>();
  }
  if (uid.empty()) return;  // nobody we know: no event (the feedback row stands)
  Event e;
  e.uid = uid;
  e.email_id = f.email_id;
  e.launch_list_id = f.launch_list_id;
  e.source = f.source;
  e.time = f.time;
  e.status = f.status;
  e.detail = f.diagnostic;
  switch (f.kind) {
    case FeedbackKind::hard_bounce: e.action = Action::bounced, e.kind = "hard"; break;
    case FeedbackKind::soft_bounce: e.action = Action::bounced, e.kind = "soft"; break;
    case FeedbackKind::blocked: e.action = Action::blocked; break;
    case FeedbackKind::complaint: e.action = Action::complaint; break;
  }
  if (!f.launch_list_id.empty()) {  // the copy's queue id, from its send record (the index is not kept there)
    const auto r = w.exec_params("SELECT queue_id FROM sends WHERE launch_list_id = $1 AND uid = $2",
                                 f.launch_list_id, uid);
    if (!r.empty()) e.queue_id = r[0][0].as<std::string>();
  }
  insert_outcome(w, e);
}

std::vector<StoredEvent> events_since(pqxx::work& w, long long since, long long after_id, std::size_t limit) {
  std::vector<StoredEvent> out;
  const auto r = w.exec_params(
      "SELECT e.id, e.uid, e.email_id, e.launch_list_id, e.action, e.source, e.time, e.ip, e.user_agent, e.topic, "
      "e.queue_id, e.copy_index, e.status, e.detail, e.kind, e.upstream_id, COALESCE(c.address, '') "
      "FROM events e LEFT JOIN contacts c ON c.uid = e.uid WHERE e.time >= $1 AND e.id > $2 ORDER BY e.id LIMIT $3",
      since, after_id, static_cast<long long>(limit));
  for (const auto& row : r) {
    StoredEvent x;
    x.id = row[0].as<long long>();
    x.event = {row[1].as<std::string>(),  row[2].as<std::string>(),  row[3].as<std::string>(),
               parse_action(row[4].as<std::string>()),
               row[5].as<std::string>(),  row[6].as<long long>(),   row[7].as<std::string>(),
               row[8].as<std::string>(),  "",                       row[9].as<std::string>(),
               row[10].as<std::string>(), row[11].as<long long>(),  row[12].as<std::string>(),
               row[13].as<std::string>(), row[14].as<std::string>(), row[15].as<std::string>()};
    x.address = row[16].as<std::string>();
    out.push_back(std::move(x));
  }
  return out;
}

std::size_t purge_events(pqxx::work& w, long long cutoff, std::size_t batch) {
  return static_cast<std::size_t>(
      w.exec_params("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < $1 AND action NOT IN "
                    "('unsubscribe', 'resubscribe', 'erase') ORDER BY time LIMIT $2)",
                    cutoff, static_cast<long long>(batch))
          .affected_rows());
}

}  // namespace unsubrelay::store::pg
