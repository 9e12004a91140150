// pg_contact_page.cpp: one page of a contact's data on PostgreSQL
// (contact_page.hpp). Each list is read with LIMIT limit + 1 after the
// cursor's key: the extra row only says that a next page exists.
#include "pg_parts.hpp"

namespace unsubrelay::store::pg {

namespace {

long long fetch_limit(const ContactPageQuery& q) { return static_cast<long long>(q.limit) + 1; }

void read_sends(pqxx::work& w, const ContactPageQuery& q, ContactRecord& out) {
  for (const auto& row : w.exec_params(
           "SELECT s.launch_list_id, COALESCE(l.email_id, ''), s.queue_id, s.upstream_id, s.status, s.updated, "
           "s.last_reply, s.after_optout FROM sends s LEFT JOIN launches l ON l.launch_list_id = s.launch_list_id "
           "WHERE s.uid = $1 AND ($2 OR s.launch_list_id > $3) ORDER BY s.launch_list_id LIMIT $4",
           out.uid, q.first, q.after_send, fetch_limit(q))) {
    out.sends.push_back({row[1].as<std::string>(), row[0].as<std::string>(), row[2].as<std::string>(),
                         row[3].as<std::string>(), row[4].as<std::string>(), row[5].as<long long>(),
                         row[6].as<std::string>(), row[7].as<long long>() != 0});
  }
}

void read_events(pqxx::work& w, const ContactPageQuery& q, ContactRecord& out) {
  for (const auto& row : w.exec_params("SELECT id, action, source, time, email_id, launch_list_id, topic, ip, "
                                       "user_agent FROM events WHERE uid = $1 AND id > $2 AND action IN "
                                       "('unsubscribe', 'resubscribe', 'erase') ORDER BY id LIMIT $3",
                                       out.uid, q.after_event, fetch_limit(q))) {
    out.events.push_back({row[0].as<long long>(), row[1].as<std::string>(), row[2].as<std::string>(),
                          row[3].as<long long>(), row[4].as<std::string>(), row[5].as<std::string>(),
                          row[6].as<std::string>(), row[7].as<std::string>(), row[8].as<std::string>()});
  }
}

void read_suppressions(pqxx::work& w, ContactRecord& out) {
  for (const auto& row : w.exec_params("SELECT address, scope, scope_value, reason, source, created, expires "
                                       "FROM suppressions WHERE address = $1 ORDER BY created, scope, scope_value",
                                       out.address)) {
    out.suppressions.push_back({row[0].as<std::string>(),
                                parse_scope(row[1].as<std::string>()).value_or(Scope::campaigns),
                                row[2].as<std::string>(), row[3].as<std::string>(), row[4].as<std::string>(),
                                row[5].as<long long>(), row[6].as<long long>()});
  }
}

void read_feedback(pqxx::work& w, const ContactPageQuery& q, ContactRecord& out, std::vector<long long>& ids) {
  for (const auto& row : w.exec_params("SELECT address, uid, launch_list_id, email_id, kind, status, diagnostic, "
                                       "source, time, dedup_key, id FROM feedback WHERE (address = $1 OR "
                                       "($2 != '' AND uid = $2)) AND id > $3 ORDER BY id LIMIT $4",
                                       out.address, out.uid, q.after_feedback, fetch_limit(q))) {
    out.feedback.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                            row[3].as<std::string>(),
                            parse_feedback_kind(row[4].as<std::string>()).value_or(FeedbackKind::soft_bounce),
                            row[5].as<std::string>(), row[6].as<std::string>(), row[7].as<std::string>(),
                            row[8].as<long long>(), row[9].as<std::string>()});
    ids.push_back(row[10].as<long long>());
  }
}

}  // namespace

ContactPage contact_page(pqxx::work& w, const std::string& address, const ContactPageQuery& query) {
  ContactRecord out;
  out.address = normalise_address(address);
  const auto r = w.exec_params("SELECT uid, created FROM contacts WHERE address = $1", out.address);
  if (!r.empty()) {
    out.uid = r[0][0].as<std::string>();
    out.created = r[0][1].as<long long>();
    read_sends(w, query, out);
    read_events(w, query, out);
  }
  if (query.first) read_suppressions(w, out);
  std::vector<long long> feedback_ids;
  read_feedback(w, query, out, feedback_ids);
  return finish_page(std::move(out), feedback_ids, query);
}

}  // namespace unsubrelay::store::pg
