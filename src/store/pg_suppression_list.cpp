// pg_suppression_list.cpp: managing the suppression list on PostgreSQL
// (suppression_list.hpp), as sqlite_suppression_list.cpp does on SQLite.
// Adding entries (an import batch) is in pg_suppression_import.cpp.
#include <fmt/format.h>

#include "pg_parts.hpp"
#include "unsubrelay/store/suppression_list.hpp"

namespace unsubrelay::store::pg {

namespace {

constexpr const char* columns = "address, scope, scope_value, reason, source, created, expires";

Suppression entry_of(const pqxx::row& row) {
  return {row[0].as<std::string>(), parse_scope(row[1].as<std::string>()).value_or(Scope::campaigns),
          row[2].as<std::string>(), row[3].as<std::string>(), row[4].as<std::string>(), row[5].as<long long>(),
          row[6].as<long long>()};
}

}  // namespace

void insert_event(pqxx::work& w, const std::string& uid, const Suppression& e, Action action,
                  const std::string& source, long long now) {
  w.exec_params("INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic) "
                "VALUES ($1, $2, '', $3, $4, $5, $6)",
                uid, e.scope == Scope::campaign ? e.scope_value : std::string(), std::string(name(action)), source,
                now, e.scope == Scope::topic ? e.scope_value : std::string());
}

SuppressionPage list_suppressions(pqxx::work& w, const SuppressionQuery& q, long long now) {
  SuppressionPage page;
  if (!q.address.empty()) {
    for (const auto& row : w.exec_params(fmt::format("SELECT {} FROM suppressions WHERE address = $1 AND "
                                                     "(expires = 0 OR expires > $2) ORDER BY created, scope, scope_value",
                                                     columns),
                                         normalise_address(q.address), now)) {
      page.entries.push_back(entry_of(row));
    }
    return page;
  }
  CursorKey after{q.since - 1, "", "", ""};
  if (!q.cursor.empty()) after = *decode_cursor(q.cursor);  // the caller checked it
  // COLLATE "C": the same byte order as SQLite, so a cursor means the same on both.
  const auto rows = w.exec_params(
      fmt::format("SELECT {} FROM suppressions WHERE (expires = 0 OR expires > $1) AND created >= $2 AND "
                  "(created, address COLLATE \"C\", scope COLLATE \"C\", scope_value COLLATE \"C\") > "
                  "($3, $4 COLLATE \"C\", $5 COLLATE \"C\", $6 COLLATE \"C\") ORDER BY created, address COLLATE \"C\", "
                  "scope COLLATE \"C\", scope_value COLLATE \"C\" LIMIT $7",
                  columns),
      now, q.since, after.created, after.address, after.scope, after.scope_value, static_cast<long long>(q.limit));
  for (const auto& row : rows) page.entries.push_back(entry_of(row));
  if (page.entries.size() == q.limit) page.next_cursor = encode_cursor(page.entries.back());
  return page;
}

std::size_t lift_suppressions(pqxx::work& w, const std::string& address, const std::string& topic,
                              const std::string& source, long long now) {
  const auto key = normalise_address(address);
  const auto rows = w.exec_params(fmt::format("UPDATE suppressions SET expires = $2 WHERE address = $1 AND "
                                              "(expires = 0 OR expires > $2) AND ($3 = '' OR (scope = 'topic' AND "
                                              "scope_value = $3)) RETURNING {}",
                                              columns),
                                  key, now, topic);
  if (rows.empty()) return 0;
  const auto uid = uid_in(w, key);
  for (const auto& row : rows) insert_event(w, uid, entry_of(row), Action::resubscribe, source, now);
  return rows.size();
}

}  // namespace unsubrelay::store::pg
