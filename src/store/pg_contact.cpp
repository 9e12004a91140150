// pg_contact.cpp: personal data on PostgreSQL (contact.hpp): show everything
// held about an address, erase it. A DELETE or UPDATE leaves the old tuple's
// bytes in the table and index files, and a plain VACUUM only marks that
// space free (it is not zeroed): the tables an erasure touched are rewritten
// with VACUUM FULL afterwards (compact(), after the commit, on a connection of
// its own: compaction.hpp).
#include <chrono>
#include <thread>

#include "pg_connection.hpp"
#include "pg_parts.hpp"

namespace unsubrelay::store::pg {

namespace {

constexpr const char* feedback_of = "address = $1 OR ($2 != '' AND uid = $2)";

}  // namespace

ContactRecord contact(pqxx::work& w, const std::string& address) {
  return contact_page(w, address, every_row()).record;
}

EraseOutcome erase_contact(pqxx::work& w, const std::string& address, const std::string& hashed,
                           const std::string& source, long long now, std::vector<std::string>& touched) {
  // Locks the address's contact row first, so two relays erasing it at once take turns.
  w.exec_params("SELECT 1 FROM contacts WHERE address = $1 FOR UPDATE", normalise_address(address));
  const auto held = contact(w, address);
  EraseOutcome out;
  out.hashed = hashed;
  out.uid = held.uid;
  out.found = !held.empty();
  if (!out.found) return out;
  for (auto e : held.suppressions) {
    if (!e.active(now)) continue;
    e.address = hashed;
    upsert(w, e);
    ++out.kept;
  }
  const auto& a = held.address;
  const auto& uid = held.uid;
  out.feedback = w.exec_params(std::string("UPDATE feedback SET address = '', diagnostic = '', "
                                           "dedup_key = 'erased:' || id WHERE ") + feedback_of,
                               a, uid).affected_rows();
  if (!uid.empty()) {
    out.events = w.exec_params("UPDATE events SET ip = '', user_agent = '', detail = '' WHERE uid = $1 AND "
                               "(ip != '' OR user_agent != '' OR detail != '')", uid).affected_rows();
  }
  const auto sends = w.exec_params("UPDATE sends SET last_reply = '' WHERE uid = $1 AND "
                                   "strpos(lower(last_reply), $2) > 0", uid, a).affected_rows();
  w.exec_params("DELETE FROM suppressions WHERE address = $1", a);
  w.exec_params("DELETE FROM contacts WHERE address = $1", a);
  w.exec_params("INSERT INTO events (uid, email_id, launch_list_id, action, source, time) "
                "VALUES ($1, '', '', 'erase', $2, $3)", erase_subject(out), source, now);
  touched = {"suppressions"};
  if (!uid.empty()) touched.push_back("contacts");
  if (out.events) touched.push_back("events");
  if (out.feedback) touched.push_back("feedback");
  if (sends) touched.push_back("sends");
  return out;
}

std::size_t lift_erased(pqxx::work& w, const std::vector<std::string>& hashed, const std::string& topic,
                        const std::string& source, long long now) {
  std::size_t lifted = 0;
  for (const auto& h : hashed) {
    const auto rows = w.exec_params("UPDATE suppressions SET expires = $2 WHERE address = $1 AND "
                                    "(expires = 0 OR expires > $2) AND ($3 = '' OR (scope = 'topic' AND "
                                    "scope_value = $3)) RETURNING scope, scope_value",
                                    h, now, topic);
    for (const auto& row : rows) {
      const auto scope = row[0].as<std::string>(), value = row[1].as<std::string>();
      w.exec_params("INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic) "
                    "VALUES ($1, $2, '', 'resubscribe', $3, $4, $5)",
                    h, scope == "campaign" ? value : std::string(), source, now,
                    scope == "topic" ? value : std::string());
    }
    lifted += rows.size();
  }
  return lifted;
}

namespace {

using Clock = std::chrono::steady_clock;
// How long a pass waits for old snapshots to end and for each table's lock to be free, and how often it looks.
constexpr auto patience = std::chrono::seconds(60);
constexpr auto retry = std::chrono::milliseconds(100);

/// Whether anything on the server can still see the rows the newest erasure
/// deleted: while it can, VACUUM FULL keeps (copies) them. That is a
/// transaction or snapshot older than the erasure in any database (a snapshot
/// taken in this one inherits its xmin from transactions running anywhere on
/// the server: seen keeping erased rows while another database was busy), a
/// prepared transaction, or a replication slot (a standby's feedback).
/// Autovacuum's plain VACUUMs do not count (VACUUM ignores them too); its
/// ANALYZEs hold a snapshot and do. A role without pg_read_all_stats sees
/// other roles' xids and xmins but not their backend_type or query: those
/// sessions count.
bool older_transactions(PgConnection& db, long long horizon) {
  return db.run<bool>([&](pqxx::work& w) {
             return w.exec_params(
                        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                        "NOT coalesce(backend_type = 'autovacuum worker' AND query LIKE 'autovacuum: VACUUM %' AND "
                        "query NOT LIKE 'autovacuum: VACUUM ANALYZE %', false) AND "
                        "(age(backend_xmin) >= age($1::text::xid) OR age(backend_xid) >= age($1::text::xid))) + "
                        "(SELECT count(*) FROM pg_prepared_xacts WHERE age(transaction) >= age($1::text::xid)) + "
                        "(SELECT count(*) FROM pg_replication_slots WHERE age(xmin) >= age($1::text::xid))",
                        std::to_string(horizon % 4294967296LL))[0][0]
                        .as<long long>() > 0;
           })
      .value_or(false);
}

std::optional<long long> filenode(PgConnection& db, const std::string& table) {
  return db.run<long long>([&](pqxx::work& w) {
    return w.exec_params("SELECT pg_relation_filenode($1::text::regclass)", table)[0][0].as<long long>();
  });
}

/// Rewrites one table into new files without the old rows. SKIP_LOCKED: it
/// runs only when the table's lock is free at once, never queueing (a queued
/// ACCESS EXCLUSIVE request holds up every later statement on the table, the
/// whole fleet's, for as long as it waits); a new file number says it ran.
std::string rewrite(PgConnection& db, const std::string& table, const std::string& options,
                    Clock::time_point deadline) {
  for (;;) {
    const auto before = filenode(db, table);
    if (const auto failed = db.run_outside({"VACUUM (" + options + "SKIP_LOCKED) " + table}); !failed.empty()) {
      return failed;
    }
    const auto after = filenode(db, table);
    if (!before || !after) return table + ": " + db.last_error();
    if (*after != *before) return "";
    if (Clock::now() > deadline) return table + " not compacted: its lock was not free once in 60 s";
    std::this_thread::sleep_for(retry);
  }
}

/// Waits (until the deadline) for nothing on the server to see what was
/// deleted up to transaction `horizon`; "" or what kept it waiting.
std::string wait_unseen(PgConnection& db, long long horizon, Clock::time_point deadline, const char* what) {
  while (older_transactions(db, horizon)) {
    if (Clock::now() > deadline) {
      return std::string("a transaction older than ") + what + " stayed open for 60 s: the rewrite may have kept "
             "the rows it could see";
    }
    std::this_thread::sleep_for(retry);
  }
  return "";
}

}  // namespace

std::string compact(PgConnection& db, const Compactions::Batch& batch) {
  const auto deadline = Clock::now() + patience;
  std::string notes;
  const auto note = [&](const std::string& n) {
    if (!n.empty()) notes += (notes.empty() ? "" : "; ") + n;
  };
  note(wait_unseen(db, batch.horizon, deadline, "the erasure"));
  for (const auto& table : batch.tables) note(rewrite(db, table, "FULL, ANALYZE, ", deadline));
  // ANALYZE replaced the tables' statistics, whose samples may have held the
  // address: their old rows go too (a superuser's or the catalog owner's right).
  // They were replaced after the erasure, so a snapshot taken since (a
  // one-click, a delivery) may still see them: wait for those as well (seen:
  // pg_statistic kept the address under a loaded test run).
  const auto superuser = db.run<bool>([](pqxx::work& w) {
    return w.exec("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0].as<bool>();
  });
  if (superuser.value_or(false)) {
    const auto analyzed =
        db.run<long long>([](pqxx::work& w) { return w.exec("SELECT txid_current()")[0][0].as<long long>(); });
    note(analyzed ? wait_unseen(db, *analyzed, deadline, "the new statistics") : db.last_error());
    note(rewrite(db, "pg_catalog.pg_statistic", "FULL, ", deadline));
  } else {
    note("pg_statistic not compacted: the store's role is not a superuser");
  }
  note(db.run_outside({"CHECKPOINT"}));
  return notes;
}

}  // namespace unsubrelay::store::pg
