// pg_events.cpp: the events table on PostgreSQL beyond subscription changes
// (issue 26, docs/events.md); the same rules as sqlite_events.cpp.
#include "pg_parts.hpp"

namespace unsubrelay::store::pg {

namespace {

constexpr const char* outcome_columns =
    "INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic, queue_id, copy_index, status, "
    "detail, kind, upstream_id) ";

/// A PostgreSQL array literal of one column of the events, for unnest($n::text[]).
template <typename Get>
std::string event_column(const std::vector<const Event*>& events, Get get) {
  std::string out = "{";
  for (const auto* e : events) {
    if (out.size() > 1) out += ',';
    out += '"';
    const std::string value(get(*e));  // get may return a temporary
    for (char c : value) {
      if (c == '\0') continue;  // a text value cannot hold NUL
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + '}';
}

}  // namespace

void insert_outcomes(pqxx::work& w, const std::vector<const Event*>& events) {
  if (events.empty()) return;
  const auto text = [&](auto get) { return event_column(events, get); };
  const auto number = [&](auto get) {
    return event_column(events, [&](const Event& e) { return std::to_string(get(e)); });
  };
  // One statement for a whole group commit's events, in order; a deferral only when
  // the copy's send record does not say deferred already (its first).
  w.exec_params(std::string(outcome_columns) +
                    "SELECT v.u, v.e, v.l, v.a, v.s, v.t, v.tp, v.q, v.c, v.st, v.d, v.k, v.up FROM unnest($1::text[], "
                    "$2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], "
                    "$9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[]) WITH ORDINALITY "
                    "AS v(u, e, l, a, s, t, tp, q, c, st, d, k, up, n) WHERE v.a != 'deferred' OR NOT EXISTS "
                    "(SELECT 1 FROM sends x WHERE x.launch_list_id = v.l AND x.uid = v.u AND x.status = 'deferred') "
                    "ORDER BY v.n",
                text([](const Event& e) -> const std::string& { return e.uid; }),
                text([](const Event& e) -> const std::string& { return e.email_id; }),
                text([](const Event& e) -> const std::string& { return e.launch_list_id; }),
                text([](const Event& e) { return std::string(name(e.action)); }),
                text([](const Event& e) -> const std::string& { return e.source; }),
                number([](const Event& e) { return e.time; }),
                text([](const Event& e) -> const std::string& { return e.topic; }),
                text([](const Event& e) -> const std::string& { return e.queue_id; }),
                number([](const Event& e) { return e.copy; }),
                text([](const Event& e) { return e.status.substr(0, 64); }),
                text([](const Event& e) { return e.detail.substr(0, 500); }),
                text([](const Event& e) -> const std::string& { return e.kind; }),
                text([](const Event& e) -> const std::string& { return e.upstream_id; }));
}

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
  // The report's contact: by its uid (the token's), else by the address it named. None (never
  // seen, or erased since: its events must not carry its words again): no event, the row stands.
  const auto r = w.exec_params("SELECT uid FROM contacts WHERE ($1 != '' AND uid = $1) OR ($1 = '' AND address = $2)",
                               f.uid, f.address);
  if (r.empty()) return;
  const auto uid = r[0][0].as<std::string>();
  auto e = feedback_event(f, uid);
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
