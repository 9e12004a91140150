// sqlite_contact.cpp: personal data on SQLite (contact.hpp): show everything
// held about an address, erase it. The connection runs with secure_delete on
// (sqlite_store.cpp), so freed cells and pages are zeroed as they are freed;
// after an erasure the WAL is checkpointed and truncated, so neither the free
// space nor old WAL frames keep the bytes. That checkpoint runs after the
// commit on a connection of its own, outside the store's lock (compaction.hpp).
#include <chrono>
#include <thread>

#include "sqlite_db.hpp"
#include "sqlite_parts.hpp"

namespace unsubrelay::store::sqlite {

bool read_suppressions_locked(SqliteDb& db, ContactRecord& out) {
  Statement s(db.db_, "SELECT address, scope, scope_value, reason, source, created, expires FROM suppressions "
                      "WHERE address = ? ORDER BY created, scope, scope_value");
  s.bind(1, out.address);
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.suppressions.push_back({s.text(0), parse_scope(s.text(1)).value_or(Scope::campaigns), s.text(2), s.text(3),
                                s.text(4), s.integer(5), s.integer(6)});
  }
  return rc == SQLITE_DONE || db.failed();
}

namespace {

// How long the checkpoint after an erasure tries for a moment without readers of old frames, and how often.
constexpr auto checkpoint_patience = std::chrono::seconds(60);
constexpr auto checkpoint_retry = std::chrono::milliseconds(20);
constexpr const char* feedback_of =
    "address = ?1 OR (?2 != '' AND uid = ?2)";  // the address's rows, and its contact's

bool read_all_locked(SqliteDb& db, ContactRecord& out) {
  std::vector<long long> feedback_ids;
  return read_page_locked(db, every_row(), out, feedback_ids);
}

/// Runs one statement with two text parameters; how many rows it changed, -1 on error.
long long change_locked(SqliteDb& db, const std::string& sql, const std::string& a, const std::string& b) {
  Statement s(db.db_, sql.c_str());
  s.bind(1, a);
  if (sql.find("?2") != std::string::npos) s.bind(2, b);
  if (s.step() != SQLITE_DONE) {
    db.failed();
    return -1;
  }
  return sqlite3_changes(db.db_);
}

/// The erasure's writes, inside the caller's transaction.
bool erase_locked(SqliteDb& db, const ContactRecord& held, const std::string& hashed, const std::string& source,
                  long long now, EraseOutcome& out) {
  for (auto e : held.suppressions) {
    if (!e.active(now)) continue;
    e.address = hashed;
    if (!upsert_locked(db, e)) return false;
    ++out.kept;
  }
  const auto& a = held.address;
  const auto& uid = held.uid;
  const long long feedback = change_locked(
      db, std::string("UPDATE feedback SET address = '', diagnostic = '', dedup_key = 'erased:' || id WHERE ") +
              feedback_of, a, uid);
  const long long events = uid.empty() ? 0
                                       : change_locked(db, "UPDATE events SET ip = '', user_agent = '', detail = '' "
                                                           "WHERE uid = ?1 AND (ip != '' OR user_agent != '' OR "
                                                           "detail != '')", uid, "");
  if (feedback < 0 || events < 0 || change_locked(db, "DELETE FROM suppressions WHERE address = ?1", a, "") < 0 ||
      change_locked(db, "UPDATE sends SET last_reply = '' WHERE uid = ?1 AND instr(lower(last_reply), ?2) > 0",
                    uid, a) < 0 ||
      change_locked(db, "DELETE FROM contacts WHERE address = ?1", a, "") < 0) {
    return false;
  }
  out.feedback = static_cast<std::size_t>(feedback);
  out.events = static_cast<std::size_t>(events);
  Statement ev(db.db_, "INSERT INTO events (uid, email_id, launch_list_id, action, source, time) "
                       "VALUES (?, '', '', 'erase', ?, ?)");
  ev.bind(1, erase_subject(out)).bind(2, source).bind(3, now);
  return ev.step() == SQLITE_DONE || db.failed();
}

/// Moves every WAL frame into the database and truncates the WAL to zero
/// bytes, on a connection of its own. It never waits on a lock: a TRUNCATE
/// checkpoint that waits for a reader holds the write lock meanwhile, and the
/// relay's writes would wait with it (up to 15 s before). So a PASSIVE one
/// copies what it can without blocking anyone, then a TRUNCATE one without a
/// busy handler finishes (milliseconds) or gives up at once, again and again
/// until the readers that still use old frames are done.
std::string checkpoint_apart(const std::string& path) {
  if (path.empty()) return "";  // an in-memory or temporary database: no file keeps anything
  sqlite3* c = nullptr;
  std::string note;
  if (sqlite3_open_v2(path.c_str(), &c, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    note = std::string("the WAL could not be truncated: ") + (c ? sqlite3_errmsg(c) : "cannot open");
    sqlite3_close_v2(c);
    return note;
  }
  sqlite3_busy_timeout(c, 0);
  // A new connection knows the file is in WAL mode only once it has read it:
  // until then a checkpoint is a no-op that reports success.
  if (sqlite3_exec(c, "PRAGMA schema_version", nullptr, nullptr, nullptr) != SQLITE_OK) {
    note = std::string("the WAL could not be truncated: ") + sqlite3_errmsg(c);
    sqlite3_close_v2(c);
    return note;
  }
  const auto deadline = std::chrono::steady_clock::now() + checkpoint_patience;
  for (;;) {
    sqlite3_wal_checkpoint_v2(c, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    if (sqlite3_wal_checkpoint_v2(c, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr) == SQLITE_OK) break;
    if (std::chrono::steady_clock::now() > deadline) {
      note = "the WAL could not be truncated (another connection kept reading for 60 s): once it is done, run "
             "sqlite3 " + path + " 'PRAGMA wal_checkpoint(TRUNCATE)'";
      break;
    }
    std::this_thread::sleep_for(checkpoint_retry);
  }
  sqlite3_close_v2(c);
  return note;
}

/// Lifts the active entries kept under one hashed form, each with its resubscribe event.
bool lift_hashed_locked(SqliteDb& db, const std::string& hashed, const std::string& topic, const std::string& source,
                        long long now, std::size_t& lifted) {
  ContactRecord held;
  held.address = hashed;
  if (!read_suppressions_locked(db, held)) return false;
  for (const auto& e : held.suppressions) {
    if (!e.active(now) || (!topic.empty() && (e.scope != Scope::topic || e.scope_value != topic))) continue;
    Statement s(db.db_, "UPDATE suppressions SET expires = ? WHERE address = ? AND scope = ? AND scope_value = ?");
    s.bind(1, now).bind(2, hashed).bind(3, std::string(name(e.scope))).bind(4, e.scope_value);
    Statement ev(db.db_, "INSERT INTO events (uid, email_id, launch_list_id, action, source, time, topic) "
                         "VALUES (?, ?, '', 'resubscribe', ?, ?, ?)");
    ev.bind(1, hashed).bind(2, e.scope == Scope::campaign ? e.scope_value : std::string());
    ev.bind(3, source).bind(4, now).bind(5, e.scope == Scope::topic ? e.scope_value : std::string());
    if (s.step() != SQLITE_DONE || ev.step() != SQLITE_DONE) return db.failed();
    ++lifted;
  }
  return true;
}

}  // namespace

std::optional<std::size_t> lift_erased(SqliteDb& db, const std::vector<std::string>& hashed, const std::string& topic,
                                       const std::string& source, long long now) {
  std::lock_guard lock(db.mutex_);
  if (hashed.empty()) return 0;
  if (!db.exec("BEGIN IMMEDIATE")) return std::nullopt;
  std::size_t lifted = 0;
  for (const auto& h : hashed) {
    if (!lift_hashed_locked(db, h, topic, source, now, lifted)) {
      return db.rollback();
    }
  }
  if (!db.exec("COMMIT")) return std::nullopt;
  return lifted;
}

std::optional<ContactRecord> contact(SqliteDb& db, const std::string& address) {
  std::lock_guard lock(db.mutex_);
  ContactRecord out;
  out.address = normalise_address(address);
  if (!db.exec("BEGIN")) return std::nullopt;
  const bool ok = read_all_locked(db, out);
  db.exec("COMMIT");
  if (!ok) return std::nullopt;
  return out;
}

namespace {

/// The erasure's transaction, under the store's lock.
std::optional<EraseOutcome> erase_committed(SqliteDb& db, const std::string& address, const std::string& hashed,
                                            const std::string& source, long long now) {
  std::lock_guard lock(db.mutex_);
  ContactRecord held;
  held.address = normalise_address(address);
  EraseOutcome out;
  out.hashed = hashed;
  if (!db.exec("BEGIN IMMEDIATE")) return std::nullopt;
  if (!read_all_locked(db, held)) {
    return db.rollback();
  }
  out.found = !held.empty();
  out.uid = held.uid;
  if (!out.found) {
    db.exec("ROLLBACK");
    return out;
  }
  if (!erase_locked(db, held, hashed, source, now, out) || !db.exec("COMMIT")) {
    return db.rollback();
  }
  return out;
}

}  // namespace

std::optional<EraseOutcome> erase_contact(SqliteDb& db, const std::string& address, const std::string& hashed,
                                          const std::string& source, long long now) {
  auto out = erase_committed(db, address, hashed, source, now);
  if (!out || !out->found) return out;
  // After the commit and outside the lock: the mail path goes on meanwhile.
  const std::string path = sqlite3_db_filename(db.db_, "main");
  out->compact_note = db.compactions_.after({}, 0, [&](const Compactions::Batch&) { return checkpoint_apart(path); });
  out->compacted = out->compact_note.empty();
  return out;
}

}  // namespace unsubrelay::store::sqlite
