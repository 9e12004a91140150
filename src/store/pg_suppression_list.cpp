// pg_suppression_list.cpp: managing the suppression list on PostgreSQL
// (suppression_list.hpp), as sqlite_suppression_list.cpp does on SQLite.
#include <algorithm>
#include <array>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "pg_parts.hpp"
#include "unsubrelay/store/suppression_list.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::store::pg {

namespace {

constexpr const char* columns = "address, scope, scope_value, reason, source, created, expires";

Suppression entry_of(const pqxx::row& row) {
  return {row[0].as<std::string>(), parse_scope(row[1].as<std::string>()).value_or(Scope::campaigns),
          row[2].as<std::string>(), row[3].as<std::string>(), row[4].as<std::string>(), row[5].as<long long>(),
          row[6].as<long long>()};
}

void insert_event(pqxx::work& w, const std::string& uid, const Suppression& e, Action action,
                  const std::string& source, long long now) {
  w.exec_params("INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic) "
                "VALUES ($1, $2, '', $3, $4, $5, $6)",
                uid, e.scope == Scope::campaign ? e.scope_value : std::string(), std::string(name(action)), source,
                now, e.scope == Scope::topic ? e.scope_value : std::string());
}

/// PostgreSQL array literals, for unnest($n::text[]): a whole batch in one
/// parameter of one unnamed statement (no prepare(): PgBouncer, pg_connection.hpp).
std::string array_literal(const std::vector<std::string>& items) {
  std::string out = "{";
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : item) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string array_literal(const std::vector<long long>& items) {
  std::string out = "{";
  for (const auto item : items) {
    if (out.size() > 1) out += ',';
    out += std::to_string(item);
  }
  return out + "}";
}

std::string key_of(const Suppression& e) {
  return e.address + '\n' + std::string(name(e.scope)) + '\n' + e.scope_value;
}

/// What an add does to one entry, as on SQLite: add (new, or expired or
/// lifted: starts over, recorded), renew (active: rewritten, not recorded),
/// none (active and identical: a re-import writes nothing).
enum class Change { add, renew, none };

std::vector<Change> changes_of(pqxx::work& w, const std::vector<const Suppression*>& batch, long long now) {
  std::vector<Change> out(batch.size(), Change::add);
  if (batch.empty()) return out;
  std::vector<std::string> address, scope, value;
  for (const auto* e : batch) {
    address.push_back(e->address);
    scope.emplace_back(name(e->scope));
    value.push_back(e->scope_value);
  }
  const auto rows = w.exec_params(
      // LATERAL ... LIMIT 1: one index lookup per row; a join would hash or scan the whole table per batch.
      "SELECT i.n, s.expires, s.reason, s.source FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY "
      "AS i(address, scope, scope_value, n), LATERAL (SELECT expires, reason, source FROM suppressions x WHERE "
      "x.address = i.address AND x.scope = i.scope AND x.scope_value = i.scope_value LIMIT 1) s",
      array_literal(address), array_literal(scope), array_literal(value));
  for (const auto& row : rows) {
    const auto i = row[0].as<std::size_t>() - 1;
    const auto expires = row[1].as<long long>();
    const auto& e = *batch.at(i);
    const bool same = expires == 0 && e.expires == 0 && row[2].as<std::string>() == e.reason &&
                      row[3].as<std::string>() == e.source;
    if (expires == 0 || expires > now) out[i] = same ? Change::none : Change::renew;
  }
  return out;
}

/// The seven columns of entries, as array literals for unnest_entries.
std::array<std::string, 7> columns_of(const std::vector<const Suppression*>& entries) {
  std::vector<std::string> address, scope, value, reason, source;
  std::vector<long long> created, expires;
  for (const auto* e : entries) {
    address.push_back(e->address);
    scope.emplace_back(name(e->scope));
    value.push_back(e->scope_value);
    reason.push_back(e->reason);
    source.push_back(e->source);
    created.push_back(e->created);
    expires.push_back(e->expires);
  }
  return {array_literal(address), array_literal(scope),   array_literal(value),  array_literal(reason),
          array_literal(source),  array_literal(created), array_literal(expires)};
}

constexpr const char* insert_entries =
    "INSERT INTO suppressions (address, scope, scope_value, reason, source, created, expires) SELECT * FROM "
    "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) "
    "ON CONFLICT (address, scope, scope_value) DO ";

/// Inserts the entries that are not there yet (distinct keys, one
/// statement); the keys of those inserted.
std::unordered_set<std::string> insert_new(pqxx::work& w, const std::vector<const Suppression*>& entries) {
  const auto c = columns_of(entries);
  std::unordered_set<std::string> out;
  for (const auto& row : w.exec_params(std::string(insert_entries) + "NOTHING RETURNING address, scope, scope_value",
                                       c[0], c[1], c[2], c[3], c[4], c[5], c[6])) {
    out.insert(row[0].as<std::string>() + '\n' + row[1].as<std::string>() + '\n' + row[2].as<std::string>());
  }
  return out;
}

/// The upsert of pg_suppression.cpp for many entries (distinct keys) in one statement.
void upsert_all(pqxx::work& w, const std::vector<const Suppression*>& entries) {
  if (entries.empty()) return;
  const auto c = columns_of(entries);
  w.exec_params(std::string(insert_entries) + "UPDATE SET " + upsert_update_sql, c[0], c[1], c[2], c[3], c[4], c[5],
                c[6]);
}

/// The uid of each address's contact, made (in uid order: the uid index is
/// random) for those without one. Two relays may meet the same new address
/// at once: the first insert wins, the other reads its uid.
std::unordered_map<std::string, std::string> contacts_of(pqxx::work& w, const std::vector<std::string>& addresses,
                                                         long long now) {
  std::vector<std::string> uids;
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    auto uid = token::random_uid_text();
    if (!uid) throw std::runtime_error("RAND_bytes failed");
    uids.push_back(std::move(*uid));
  }
  std::unordered_map<std::string, std::string> out;
  for (const auto& row : w.exec_params("INSERT INTO contacts (uid, address, created) SELECT u, a, $3 FROM "
                                       "unnest($1::text[], $2::text[]) AS i(u, a) ORDER BY u "
                                       "ON CONFLICT (address) DO NOTHING RETURNING address, uid",
                                       array_literal(uids), array_literal(addresses), now)) {
    out.emplace(row[0].as<std::string>(), row[1].as<std::string>());
  }
  std::vector<std::string> known;
  for (const auto& a : addresses) {
    if (!out.count(a)) known.push_back(a);
  }
  if (known.empty()) return out;
  for (const auto& row : w.exec_params("SELECT i.a, c.uid FROM unnest($1::text[]) AS i(a), LATERAL (SELECT uid FROM "
                                       "contacts x WHERE x.address = i.a LIMIT 1) c",
                                       array_literal(known))) {
    out.emplace(row[0].as<std::string>(), row[1].as<std::string>());
  }
  return out;
}

/// One unsubscribe event per added entry (and its contact), in two statements.
void record_added(pqxx::work& w, const std::vector<const Suppression*>& added, long long now) {
  if (added.empty()) return;
  std::vector<std::string> addresses;
  std::unordered_set<std::string> seen;
  for (const auto* e : added) {
    if (seen.insert(e->address).second) addresses.push_back(e->address);
  }
  const auto uid_of = contacts_of(w, addresses, now);
  std::vector<std::string> uid, email_id, source, topic;
  for (const auto* e : added) {
    uid.push_back(uid_of.at(e->address));
    email_id.push_back(e->scope == Scope::campaign ? e->scope_value : std::string());
    source.push_back(e->source);
    topic.push_back(e->scope == Scope::topic ? e->scope_value : std::string());
  }
  w.exec_params("INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic) "
                "SELECT u, m, '', $3, s, $4, t FROM unnest($1::text[], $2::text[], $5::text[], $6::text[]) "
                "AS i(u, m, s, t) ORDER BY u",  // the uid index is random: walk it forwards
                array_literal(uid), array_literal(email_id), std::string(name(Action::unsubscribe)), now,
                array_literal(source), array_literal(topic));
}

/// One entry on its own: 1 when it was added (recorded), 0 when renewed.
std::size_t add_one(pqxx::work& w, const Suppression& e, long long now) {
  const bool active = !w.exec_params("SELECT 1 FROM suppressions WHERE address = $1 AND scope = $2 AND "
                                     "scope_value = $3 AND (expires = 0 OR expires > $4)",
                                     e.address, std::string(name(e.scope)), e.scope_value, now)
                           .empty();
  upsert(w, e);
  if (active) return 0;  // renewed: nothing new to record
  insert_event(w, uid_in(w, e.address), e, Action::unsubscribe, e.source, now);
  return 1;
}

}  // namespace

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

std::size_t add_suppressions(pqxx::work& w, const std::vector<Suppression>& entries, long long now) {
  // One key twice in a batch: the later rows are applied one by one after
  // the others, in order (a multi-row upsert cannot touch a row twice).
  std::vector<Suppression> batch;
  std::vector<Suppression> repeats;
  std::unordered_set<std::string> keys;
  for (auto e : entries) {
    e.address = normalise_address(e.address);
    auto& into = keys.insert(key_of(e)).second ? batch : repeats;
    into.push_back(std::move(e));
  }
  // Key order: the suppressions and contacts indexes are walked forwards.
  std::sort(batch.begin(), batch.end(), [](const auto& a, const auto& b) {
    return std::tie(a.address, a.scope, a.scope_value) < std::tie(b.address, b.scope, b.scope_value);
  });
  std::vector<const Suppression*> all, added, rest, written;
  for (const auto& e : batch) all.push_back(&e);
  const auto inserted = insert_new(w, all);  // the common case of an import: one statement
  for (const auto* e : all) (inserted.count(key_of(*e)) ? added : rest).push_back(e);
  const auto changes = changes_of(w, rest, now);
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (changes[i] != Change::none) written.push_back(rest[i]);
    if (changes[i] == Change::add) added.push_back(rest[i]);
  }
  upsert_all(w, written);
  record_added(w, added, now);
  std::size_t count = added.size();
  for (const auto& e : repeats) count += add_one(w, e, now);
  return count;
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
