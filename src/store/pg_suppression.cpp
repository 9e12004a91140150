// pg_suppression.cpp: the suppression list on PostgreSQL (suppression.hpp).
#include "pg_parts.hpp"

namespace unsubrelay::store::pg {

// As in sqlite_suppression.cpp: renewing an active entry keeps its first
// `created` and never shortens it; an expired or lifted one starts over.
const char* const upsert_update_sql =
    "reason = excluded.reason, source = excluded.source, "
    "created = CASE WHEN suppressions.expires = 0 OR suppressions.expires > excluded.created "
    "THEN suppressions.created ELSE excluded.created END, "
    "expires = CASE WHEN NOT (suppressions.expires = 0 OR suppressions.expires > excluded.created) "
    "THEN excluded.expires WHEN suppressions.expires = 0 OR excluded.expires = 0 THEN 0 "
    "ELSE GREATEST(suppressions.expires, excluded.expires) END";

namespace {

constexpr const char* upsert_insert_sql =
    "INSERT INTO suppressions (address, scope, scope_value, reason, source, created, expires) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (address, scope, scope_value) DO UPDATE SET ";

/// A text[] literal for = ANY($n): one round trip for a whole recipient list.
std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : normalise_address(item)) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace

void upsert(pqxx::work& w, const Suppression& e) {
  w.exec_params(std::string(upsert_insert_sql) + upsert_update_sql, normalise_address(e.address),
                std::string(name(e.scope)), e.scope_value, e.reason, e.source, e.created, e.expires);
}

std::vector<Suppression> suppressions_for(pqxx::work& w, const std::vector<std::string>& addresses, long long now) {
  std::vector<Suppression> out;
  if (addresses.empty()) return out;
  const auto r = w.exec_params(
      "SELECT address, scope, scope_value, reason, source, created, expires FROM suppressions "
      "WHERE address = ANY($1::text[]) AND (expires = 0 OR expires > $2)",
      text_array(addresses), now);
  for (const auto& row : r) {
    out.push_back({row[0].as<std::string>(), parse_scope(row[1].as<std::string>()).value_or(Scope::campaigns),
                   row[2].as<std::string>(), row[3].as<std::string>(), row[4].as<std::string>(),
                   row[5].as<long long>(), row[6].as<long long>()});
  }
  return out;
}

void apply_event(pqxx::work& w, const Event& e) {
  const auto r = w.exec_params("SELECT address FROM contacts WHERE uid = $1", e.uid);
  if (r.empty()) return;  // no contact (erased): the event stands alone
  const auto address = r[0][0].as<std::string>();
  if (!e.topic.empty()) {  // a topic's switch (issue 13): that topic's entry only
    if (e.action == Action::unsubscribe) {
      upsert(w, {address, Scope::topic, e.topic, "unsubscribe", e.source, e.time, 0});
    } else {
      w.exec_params("UPDATE suppressions SET expires = $1 WHERE address = $2 AND (expires = 0 OR expires > $1) AND "
                    "scope = 'topic' AND scope_value = $3",
                    e.time, address, e.topic);
    }
    return;
  }
  if (e.action == Action::unsubscribe) {
    upsert(w, {address, Scope::campaign, e.email_id, "unsubscribe", e.source, e.time, 0});
    return;
  }
  // A resubscribe lifts what made unsubscribed(uid, resubscribe_scope) true.
  w.exec_params("UPDATE suppressions SET expires = $1 WHERE address = $2 AND (expires = 0 OR expires > $1) AND "
                "(scope = 'campaigns' OR (scope = 'campaign' AND ($3 = '' OR scope_value = $3)))",
                e.time, address, e.resubscribe_scope);
}

bool unsubscribed(pqxx::work& w, const std::string& uid, const std::string& email_id, long long now) {
  return !w.exec_params("SELECT 1 FROM suppressions s JOIN contacts c ON c.address = s.address WHERE c.uid = $1 AND "
                        "(s.expires = 0 OR s.expires > $2) AND (s.scope = 'campaigns' OR (s.scope = 'campaign' AND "
                        "($3 = '' OR s.scope_value = $3))) LIMIT 1",
                        uid, now, email_id)
              .empty();
}

}  // namespace unsubrelay::store::pg
