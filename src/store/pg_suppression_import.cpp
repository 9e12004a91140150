// pg_suppression_import.cpp: adding many suppression entries at once on
// PostgreSQL (an import batch, suppression_list.hpp), as
// sqlite_suppression_list.cpp does on SQLite.
//
// A batch goes to the server as arrays, one unnamed statement per step
// (no prepare(): PgBouncer, pg_connection.hpp): the new entries, the entries
// already there, their contacts, their events. The client's share is kept
// small because the server waits for it: entries are sorted once, and the
// rows the server returns are matched by merging sorted lists, not through
// hash tables of copied strings (those were 60% of the client's CPU).
#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

#include "pg_parts.hpp"
#include "unsubrelay/store/suppression_list.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::store::pg {

namespace {

using Entries = std::vector<const Suppression*>;
using Key = std::tuple<std::string_view, Scope, std::string_view>;

Key key_of(const Suppression& e) { return {e.address, e.scope, e.scope_value}; }

std::string_view view(const pqxx::field& f) { return {f.c_str(), f.size()}; }

Key key_of(const pqxx::row& row) {
  return {view(row[0]), parse_scope(view(row[1])).value_or(Scope::campaigns), view(row[2])};
}

void append_quoted(std::string& out, std::string_view item) {
  out += '"';
  for (auto stop = item.find_first_of("\"\\"); stop != std::string_view::npos; stop = item.find_first_of("\"\\")) {
    out.append(item.substr(0, stop));
    out += '\\';
    out += item[stop];
    item.remove_prefix(stop + 1);
  }
  out.append(item);
  out += '"';
}

/// A PostgreSQL array literal of get(item) for each item, for unnest($n::text[]):
/// a whole batch in one parameter.
template <typename Items, typename Get>
std::string text_array(const Items& items, Get get) {
  std::string out = "{";
  out.reserve(items.size() * 32);
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    append_quoted(out, get(item));
  }
  return out + '}';
}

template <typename Get>
std::string bigint_array(const Entries& items, Get get) {
  std::string out = "{";
  for (const auto* e : items) {
    if (out.size() > 1) out += ',';
    out += std::to_string(get(*e));
  }
  return out + '}';
}

std::string address_array(const Entries& entries) {
  return text_array(entries, [](const Suppression* e) -> std::string_view { return e->address; });
}
std::string scope_array(const Entries& entries) {
  return text_array(entries, [](const Suppression* e) -> std::string_view { return name(e->scope); });
}
std::string value_array(const Entries& entries) {
  return text_array(entries, [](const Suppression* e) -> std::string_view { return e->scope_value; });
}

/// The first row of each key, sorted by key (the suppressions and contacts
/// indexes are then walked forwards), and the later rows of a key in their
/// order: a multi-row upsert cannot touch a row twice, so those are applied
/// one by one after the others.
std::pair<std::vector<Suppression>, std::vector<Suppression>> split_repeats(const std::vector<Suppression>& entries) {
  std::vector<Suppression> all = entries;
  for (auto& e : all) e.address = normalise_address(e.address);
  std::vector<std::size_t> order(all.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return key_of(all[a]) < key_of(all[b]); });
  std::vector<Suppression> batch;
  std::vector<std::size_t> later;
  batch.reserve(all.size());
  for (const auto i : order) {
    if (!batch.empty() && key_of(batch.back()) == key_of(all[i])) {
      later.push_back(i);
    } else {
      batch.push_back(std::move(all[i]));
    }
  }
  std::sort(later.begin(), later.end());
  std::vector<Suppression> repeats;
  for (const auto i : later) repeats.push_back(std::move(all[i]));
  return {std::move(batch), std::move(repeats)};
}

/// Which of the key-sorted entries the server returned. The rows come back
/// in the order they were inserted, so a merge finds them; PostgreSQL does
/// not promise that order, so a hash set takes over when it is not kept.
std::vector<bool> returned(const Entries& sorted, const pqxx::result& rows) {
  std::vector<bool> out(sorted.size(), false);
  std::size_t i = 0;
  for (const auto& row : rows) {
    const auto key = key_of(row);
    while (i < sorted.size() && key_of(*sorted[i]) < key) ++i;
    if (i == sorted.size() || key_of(*sorted[i]) != key) break;
    out[i++] = true;
  }
  if (static_cast<std::size_t>(std::count(out.begin(), out.end(), true)) == rows.size()) return out;
  std::unordered_set<std::string> keys;
  for (const auto& row : rows) keys.insert(fmt::format("{}\n{}\n{}", view(row[0]), view(row[1]), view(row[2])));
  for (std::size_t k = 0; k < sorted.size(); ++k) {
    const auto& e = *sorted[k];
    out[k] = keys.count(fmt::format("{}\n{}\n{}", e.address, name(e.scope), e.scope_value)) > 0;
  }
  return out;
}

constexpr const char* insert_entries =
    "INSERT INTO suppressions (address, scope, scope_value, reason, source, created, expires) SELECT * FROM "
    "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) "
    "ON CONFLICT (address, scope, scope_value) DO ";

/// Runs insert_entries + tail with the entries' seven columns.
pqxx::result insert_all(pqxx::work& w, const Entries& entries, const std::string& tail) {
  return w.exec_params(
      insert_entries + tail, address_array(entries), scope_array(entries), value_array(entries),
      text_array(entries, [](const Suppression* e) -> std::string_view { return e->reason; }),
      text_array(entries, [](const Suppression* e) -> std::string_view { return e->source; }),
      bigint_array(entries, [](const Suppression& e) { return e.created; }),
      bigint_array(entries, [](const Suppression& e) { return e.expires; }));
}

/// What an add does to one entry, as on SQLite: add (new, or expired or
/// lifted: starts over, recorded), renew (active: rewritten, not recorded),
/// none (active and identical: a re-import writes nothing).
enum class Change { add, renew, none };

std::vector<Change> changes_of(pqxx::work& w, const Entries& batch, long long now) {
  std::vector<Change> out(batch.size(), Change::add);
  if (batch.empty()) return out;
  const auto rows = w.exec_params(
      // LATERAL ... LIMIT 1: one index lookup per row; a join would hash or scan the whole table per batch.
      "SELECT i.n, s.expires, s.reason, s.source FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY "
      "AS i(address, scope, scope_value, n), LATERAL (SELECT expires, reason, source FROM suppressions x WHERE "
      "x.address = i.address AND x.scope = i.scope AND x.scope_value = i.scope_value LIMIT 1) s",
      address_array(batch), scope_array(batch), value_array(batch));
  for (const auto& row : rows) {
    const auto i = row[0].as<std::size_t>() - 1;
    const auto expires = row[1].as<long long>();
    const auto& e = *batch.at(i);
    const bool same = expires == 0 && e.expires == 0 && view(row[2]) == e.reason && view(row[3]) == e.source;
    if (expires == 0 || expires > now) out[i] = same ? Change::none : Change::renew;
  }
  return out;
}

/// Contacts' uids by address, sorted by address.
using Uids = std::vector<std::pair<std::string, std::string>>;

std::string_view uid_of(const Uids& uids, std::string_view address) {
  const auto it = std::lower_bound(uids.begin(), uids.end(), address,
                                   [](const auto& pair, std::string_view a) { return pair.first < a; });
  if (it == uids.end() || it->first != address) throw std::runtime_error("no contact for an imported address");
  return it->second;
}

/// The uid of each address's contact (addresses sorted, distinct), made (in
/// uid order: the uid index is random) for those without one. Two relays may
/// meet the same new address at once: the first insert wins, the other reads its uid.
Uids contacts_of(pqxx::work& w, const std::vector<std::string_view>& addresses, long long now) {
  std::vector<std::string> fresh(addresses.size());
  for (auto& uid : fresh) {
    auto text = token::random_uid_text();
    if (!text) throw std::runtime_error("RAND_bytes failed");
    uid = std::move(*text);
  }
  const auto same = [](std::string_view s) { return s; };
  Uids out;
  for (const auto& row : w.exec_params("INSERT INTO contacts (uid, address, created) SELECT u, a, $3 FROM "
                                       "unnest($1::text[], $2::text[]) AS i(u, a) ORDER BY u "
                                       "ON CONFLICT (address) DO NOTHING RETURNING address, uid",
                                       text_array(fresh, same), text_array(addresses, same), now)) {
    out.emplace_back(row[0].as<std::string>(), row[1].as<std::string>());
  }
  std::sort(out.begin(), out.end());
  std::vector<std::string_view> known;  // the addresses that had a contact already
  auto made = out.begin();
  for (const auto address : addresses) {
    while (made != out.end() && made->first < address) ++made;
    if (made == out.end() || made->first != address) known.push_back(address);
  }
  if (known.empty()) return out;
  for (const auto& row : w.exec_params("SELECT i.a, c.uid FROM unnest($1::text[]) AS i(a), LATERAL (SELECT uid FROM "
                                       "contacts x WHERE x.address = i.a LIMIT 1) c",
                                       text_array(known, same))) {
    out.emplace_back(row[0].as<std::string>(), row[1].as<std::string>());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// One unsubscribe event per added entry (and its contact), in two statements.
void record_added(pqxx::work& w, const Entries& added, long long now) {
  if (added.empty()) return;
  std::vector<std::string_view> addresses;
  addresses.reserve(added.size());
  for (const auto* e : added) addresses.emplace_back(e->address);
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  const auto uids = contacts_of(w, addresses, now);
  w.exec_params(
      "INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic) "
      "SELECT u, m, '', $3, s, $4, t FROM unnest($1::text[], $2::text[], $5::text[], $6::text[]) "
      "AS i(u, m, s, t) ORDER BY u",  // the uid index is random: walk it forwards
      text_array(added, [&](const Suppression* e) { return uid_of(uids, e->address); }),
      text_array(added,
                 [](const Suppression* e) { return e->scope == Scope::campaign ? e->scope_value : std::string_view(); }),
      std::string(name(Action::unsubscribe)), now,
      text_array(added, [](const Suppression* e) -> std::string_view { return e->source; }),
      text_array(added,
                 [](const Suppression* e) { return e->scope == Scope::topic ? e->scope_value : std::string_view(); }));
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

std::size_t add_suppressions(pqxx::work& w, const std::vector<Suppression>& entries, long long now) {
  const auto [batch, repeats] = split_repeats(entries);
  Entries all, added, rest, written;
  all.reserve(batch.size());
  for (const auto& e : batch) all.push_back(&e);
  // The common case of an import, one statement: new entries.
  const auto inserted = returned(all, insert_all(w, all, "NOTHING RETURNING address, scope, scope_value"));
  for (std::size_t i = 0; i < all.size(); ++i) (inserted[i] ? added : rest).push_back(all[i]);
  const auto changes = changes_of(w, rest, now);
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (changes[i] != Change::none) written.push_back(rest[i]);
    if (changes[i] == Change::add) added.push_back(rest[i]);
  }
  if (!written.empty()) insert_all(w, written, std::string("UPDATE SET ") + upsert_update_sql);
  record_added(w, added, now);
  std::size_t count = added.size();
  for (const auto& e : repeats) count += add_one(w, e, now);
  return count;
}

}  // namespace unsubrelay::store::pg
