// sqlite_suppression.cpp: the suppression list on SQLite (suppression.hpp).
#include <array>
#include <string>

#include <fmt/format.h>

#include "sqlite_db.hpp"
#include "sqlite_parts.hpp"

namespace unsubrelay::store::sqlite {

namespace {

// Renewing an active entry keeps its first `created` (the evidence of when the
// opt-out was taken) and never shortens it; an expired or lifted one starts over.
constexpr const char* upsert_sql =
    "INSERT INTO suppressions (address, scope, scope_value, reason, source, created, expires) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (address, scope, scope_value) DO UPDATE SET "
    "reason = excluded.reason, source = excluded.source, "
    "created = CASE WHEN suppressions.expires = 0 OR suppressions.expires > excluded.created "
    "THEN suppressions.created ELSE excluded.created END, "
    "expires = CASE WHEN NOT (suppressions.expires = 0 OR suppressions.expires > excluded.created) "
    "THEN excluded.expires WHEN suppressions.expires = 0 OR excluded.expires = 0 THEN 0 "
    "ELSE MAX(suppressions.expires, excluded.expires) END";

constexpr std::size_t addresses_per_query = 400;  // below SQLite's 999 bound parameters

/// The lookup of up to `width` addresses. Widths are powers of two up to
/// addresses_per_query, so a few cached statements serve every list (the
/// delivery path asks for one address per message, twice: parsing the query
/// each time was a tenth of the relay's CPU). The places a list does not fill
/// repeat its last address: IN ignores the repeats.
constexpr std::array<std::size_t, 10> lookup_widths{1, 2, 4, 8, 16, 32, 64, 128, 256, addresses_per_query};

const char* lookup_sql(std::size_t width_index) {
  static const auto texts = [] {
    std::array<std::string, lookup_widths.size()> out;
    for (std::size_t w = 0; w < lookup_widths.size(); ++w) {
      out[w] = "SELECT address, scope, scope_value, reason, source, created, expires FROM suppressions "
               "WHERE (expires = 0 OR expires > ?1) AND address IN (";
      for (std::size_t i = 0; i < lookup_widths[w]; ++i) out[w] += i ? ",?" : "?";
      out[w] += ")";
    }
    return out;
  }();
  return texts[width_index].c_str();
}

Suppression row(const Statement& s) {
  return {s.text(0), parse_scope(s.text(1)).value_or(Scope::campaigns), s.text(2), s.text(3), s.text(4),
          s.integer(5), s.integer(6)};
}

}  // namespace

bool upsert_locked(SqliteDb& db, const Suppression& e) {
  Statement s(*db.statements_, upsert_sql);  // cached: an import runs it once per row
  s.bind(1, normalise_address(e.address)).bind(2, std::string(name(e.scope))).bind(3, e.scope_value);
  s.bind(4, e.reason).bind(5, e.source).bind(6, e.created).bind(7, e.expires);
  return s.step() == SQLITE_DONE || db.failed();
}

std::optional<std::vector<Suppression>> suppressions_for(SqliteDb& db, const std::vector<std::string>& addresses,
                                                        long long now) {
  std::lock_guard lock(db.mutex_);
  std::vector<Suppression> out;
  for (std::size_t at = 0; at < addresses.size(); at += addresses_per_query) {
    const auto n = std::min(addresses_per_query, addresses.size() - at);
    std::size_t w = 0;
    while (lookup_widths[w] < n) ++w;
    Statement s(*db.statements_, lookup_sql(w));
    s.bind(1, now);
    for (std::size_t i = 0; i < n; ++i) s.bind(static_cast<int>(i + 2), normalise_address(addresses[at + i]));
    const auto last = normalise_address(addresses[at + n - 1]);
    for (std::size_t i = n; i < lookup_widths[w]; ++i) s.bind(static_cast<int>(i + 2), last);
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(row(s));
    if (rc != SQLITE_DONE) return db.fail();
  }
  return out;
}

bool suppress(SqliteDb& db, const Suppression& entry) {
  std::lock_guard lock(db.mutex_);
  return upsert_locked(db, entry);
}

bool apply_event_locked(SqliteDb& db, const Event& e) {
  std::string address;
  {
    Statement s(db.db_, "SELECT address FROM contacts WHERE uid = ?");
    s.bind(1, e.uid);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return true;  // no contact (erased): the event stands alone
    if (rc != SQLITE_ROW) return db.failed();
    address = s.text(0);
  }
  if (!e.topic.empty()) {  // a topic's switch (issue 13): that topic's entry only
    if (e.action == Action::unsubscribe) {
      return upsert_locked(db, {address, Scope::topic, e.topic, "unsubscribe", e.source, e.time, 0});
    }
    Statement s(db.db_, "UPDATE suppressions SET expires = ?1 WHERE address = ?2 AND (expires = 0 OR expires > ?1) "
                        "AND scope = 'topic' AND scope_value = ?3");
    s.bind(1, e.time).bind(2, address).bind(3, e.topic);
    return s.step() == SQLITE_DONE || db.failed();
  }
  if (e.action == Action::unsubscribe) {
    return upsert_locked(db, {address, Scope::campaign, e.email_id, "unsubscribe", e.source, e.time, 0});
  }
  // A resubscribe lifts what made unsubscribed(uid, resubscribe_scope) true.
  Statement s(db.db_,
              "UPDATE suppressions SET expires = ?1 WHERE address = ?2 AND (expires = 0 OR expires > ?1) AND "
              "(scope = 'campaigns' OR (scope = 'campaign' AND (?3 = '' OR scope_value = ?3)))");
  s.bind(1, e.time).bind(2, address).bind(3, e.resubscribe_scope);
  return s.step() == SQLITE_DONE || db.failed();
}

std::optional<bool> unsubscribed(SqliteDb& db, const std::string& uid, const std::string& email_id, long long now) {
  std::lock_guard lock(db.mutex_);
  Statement s(db.db_,
              "SELECT 1 FROM suppressions s JOIN contacts c ON c.address = s.address WHERE c.uid = ?1 AND "
              "(s.expires = 0 OR s.expires > ?2) AND (s.scope = 'campaigns' OR (s.scope = 'campaign' AND "
              "(?3 = '' OR s.scope_value = ?3))) LIMIT 1");
  s.bind(1, uid).bind(2, now).bind(3, email_id);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db.fail();
}

}  // namespace unsubrelay::store::sqlite
