// sqlite_store.cpp: the embedded store: SQLite in WAL mode, one connection
// behind a mutex, prepared statements, versioned schema migrations.
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>

#include "sqlite_db.hpp"
#include "sqlite_parts.hpp"
#include "unsubrelay/spool/durable_file.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::store {

const char* name(Action a) {
  switch (a) {
    case Action::unsubscribe: return "unsubscribe";
    case Action::resubscribe: return "resubscribe";
    case Action::erase: return "erase";
    case Action::delivered: return "delivered";
    case Action::deferred: return "deferred";
    case Action::bounced: return "bounced";
    case Action::blocked: return "blocked";
    case Action::complaint: return "complaint";
    case Action::suppressed: return "suppressed";
  }
  return "?";
}

std::optional<Action> action_named(std::string_view text) {
  for (auto a : {Action::unsubscribe, Action::resubscribe, Action::erase, Action::delivered, Action::deferred,
                 Action::bounced, Action::blocked, Action::complaint, Action::suppressed}) {
    if (text == name(a)) return a;
  }
  return std::nullopt;
}

Action parse_action(std::string_view text) { return action_named(text).value_or(Action::resubscribe); }

const char* name(SendStatus s) {
  switch (s) {
    case SendStatus::queued: return "queued";
    case SendStatus::delivered: return "delivered";
    case SendStatus::deferred: return "deferred";
    case SendStatus::bounced: return "bounced";
    case SendStatus::suppressed: return "suppressed";
  }
  return "?";
}

namespace {

// Each entry moves the schema one version up; never edit one that shipped.
constexpr const char* sqlite_migrations[] = {
    R"(CREATE TABLE contacts (uid TEXT PRIMARY KEY, address TEXT NOT NULL UNIQUE, created BIGINT NOT NULL);
       CREATE TABLE launches (launch_list_id TEXT PRIMARY KEY, email_id TEXT NOT NULL, created BIGINT NOT NULL,
                              kind TEXT NOT NULL DEFAULT 'batch');
       CREATE INDEX launches_by_email ON launches (email_id);
       CREATE TABLE sends (launch_list_id TEXT NOT NULL, uid TEXT NOT NULL, queue_id TEXT NOT NULL,
                           upstream_id TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, updated BIGINT NOT NULL,
                           last_reply TEXT NOT NULL DEFAULT '', PRIMARY KEY (launch_list_id, uid));
       CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL, email_id TEXT NOT NULL,
                            launch_list_id TEXT NOT NULL, action TEXT NOT NULL, source TEXT NOT NULL,
                            time BIGINT NOT NULL, ip TEXT NOT NULL DEFAULT '', user_agent TEXT NOT NULL DEFAULT '');
       CREATE INDEX events_by_uid ON events (uid, id);)",
    R"(CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires BIGINT NOT NULL);
       CREATE TABLE cursors (name TEXT PRIMARY KEY, value BIGINT NOT NULL);)",
    // Part 2: the suppression list (filled from each contact's latest event per
    // campaign), bounces and complaints, the launch's sender, sent_after_optout.
    R"(CREATE TABLE suppressions (address TEXT NOT NULL, scope TEXT NOT NULL, scope_value TEXT NOT NULL DEFAULT '',
                                 reason TEXT NOT NULL, source TEXT NOT NULL, created BIGINT NOT NULL,
                                 expires BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (address, scope, scope_value));
       INSERT INTO suppressions (address, scope, scope_value, reason, source, created, expires)
         SELECT c.address, 'campaign', e.email_id, 'unsubscribe', e.source, e.time, 0
         FROM events e JOIN contacts c ON c.uid = e.uid
         WHERE e.action = 'unsubscribe' AND e.id = (SELECT MAX(x.id) FROM events x WHERE x.uid = e.uid
                                                    AND x.email_id = e.email_id);
       CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, address TEXT NOT NULL, uid TEXT NOT NULL DEFAULT '',
                              launch_list_id TEXT NOT NULL DEFAULT '', email_id TEXT NOT NULL DEFAULT '',
                              kind TEXT NOT NULL, status TEXT NOT NULL DEFAULT '', diagnostic TEXT NOT NULL DEFAULT '',
                              source TEXT NOT NULL, time BIGINT NOT NULL, dedup_key TEXT NOT NULL UNIQUE);
       CREATE INDEX feedback_by_address ON feedback (address, kind, time);
       CREATE INDEX feedback_by_campaign ON feedback (email_id, launch_list_id);
       CREATE INDEX feedback_by_contact ON feedback (uid, launch_list_id);
       CREATE INDEX feedback_by_time ON feedback (time);
       ALTER TABLE launches ADD COLUMN sender TEXT NOT NULL DEFAULT '';
       ALTER TABLE sends ADD COLUMN after_optout BIGINT NOT NULL DEFAULT 0;
       CREATE INDEX sends_by_upstream_id ON sends (upstream_id) WHERE upstream_id != '';
       CREATE INDEX sends_by_uid ON sends (uid, updated);
       CREATE INDEX sends_delivered_by_time ON sends (updated) WHERE status = 'delivered';)",
    // Issue 13: an event's topic; the suppression list paged by created (suppression_list.hpp).
    R"(ALTER TABLE events ADD COLUMN topic TEXT NOT NULL DEFAULT '';
       CREATE INDEX suppressions_by_created ON suppressions (created, address, scope, scope_value);)",
    // Issue 22: complaints no token proves, in a capped table (store/feedback.hpp
    // UnverifiedBounds) and a counter; each report's forward claimed on its row.
    R"(CREATE TABLE unverified_reports (id INTEGER PRIMARY KEY AUTOINCREMENT, time BIGINT NOT NULL,
                                       client TEXT NOT NULL, queue_id TEXT NOT NULL, source TEXT NOT NULL,
                                       reason TEXT NOT NULL, detail TEXT NOT NULL);
       CREATE INDEX unverified_reports_by_time ON unverified_reports (time);
       CREATE TABLE feedback_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
       ALTER TABLE feedback ADD COLUMN forward_sender TEXT NOT NULL DEFAULT '';
       ALTER TABLE feedback ADD COLUMN forward_owner TEXT NOT NULL DEFAULT '';
       ALTER TABLE feedback ADD COLUMN forwarded_at BIGINT NOT NULL DEFAULT 0;
       CREATE INDEX feedback_forwards ON feedback (forward_sender, forwarded_at) WHERE forwarded_at != 0;)",
    // Issue 24: tenant quotas, counted per window for the fleet (sqlite_quota.cpp).
    R"(CREATE TABLE quota_counts (name TEXT NOT NULL, window_start BIGINT NOT NULL, value BIGINT NOT NULL,
                                 PRIMARY KEY (name, window_start));)",
    // Issue 26: a copy's outcomes as events (sqlite_events.cpp); by time for retention.
    R"(ALTER TABLE events ADD COLUMN queue_id TEXT NOT NULL DEFAULT '';
       ALTER TABLE events ADD COLUMN copy_index BIGINT NOT NULL DEFAULT -1;
       ALTER TABLE events ADD COLUMN status TEXT NOT NULL DEFAULT '';
       ALTER TABLE events ADD COLUMN detail TEXT NOT NULL DEFAULT '';
       ALTER TABLE events ADD COLUMN kind TEXT NOT NULL DEFAULT '';
       ALTER TABLE events ADD COLUMN upstream_id TEXT NOT NULL DEFAULT '';
       CREATE INDEX events_by_time ON events (time);)",
};

class SqliteStore final : public Store, private SqliteDb {
 public:
  explicit SqliteStore(sqlite3* db) : SqliteDb(db) {}

  /// A second, read-only connection for the event stream's pages (webhooks,
  /// GET /api/v1/events) and the send-time suppression check: in WAL mode it
  /// reads beside the writer instead of holding the mail path's connection
  /// while it reads and joins hundreds of rows (issue 26's cost bound), or
  /// waiting while a commit holds it through its sync (issue 25). nullptr for
  /// a database without a file.
  SqliteDb* reader() {
    std::call_once(reader_once_, [this] {
      const char* path = sqlite3_db_filename(db_, "main");
      sqlite3* r = nullptr;
      if (!path || !*path || sqlite3_open_v2(path, &r, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
        sqlite3_close_v2(r);
        return;
      }
      sqlite3_busy_timeout(r, 5000);
      reader_ = std::make_unique<SqliteDb>(r);
    });
    return reader_.get();
  }

  bool migrate(std::string& error, unsigned cache_mb) {
    // secure_delete: freed cells and pages are zeroed, so an erased address
    // leaves no bytes behind (docs/suppression.md, "Personal data").
    // cache_size (store.cache_mb, 32 MB by default, SQLite's own is 2): the
    // indexes keyed by random uids (contacts, sends, events) outgrow 2 MB, and
    // then every commit spilled and re-read pages (docs/performance.md).
    const auto cache = fmt::format("PRAGMA cache_size=-{};", std::size_t{cache_mb} * 1024);
    if (!exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;") ||
        !exec(cache.c_str()) ||
        !exec("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")) {
      error = last_error_;
      return false;
    }
    for (long long v = 0; v < static_cast<long long>(std::size(sqlite_migrations)); ++v) {
      // The version is read under the write lock (BEGIN IMMEDIATE): a relay
      // and a command opening a new file at once must not both migrate it.
      if (!exec("BEGIN IMMEDIATE")) {
        error = fmt::format("schema migration {}: {}", v + 1, last_error_);
        return false;
      }
      if (version() > v) {
        exec("COMMIT");
        continue;
      }
      if (!exec(sqlite_migrations[v]) ||
          !exec(fmt::format("INSERT INTO schema_version (version) VALUES ({})", v + 1).c_str()) || !exec("COMMIT")) {
        rollback();
        error = fmt::format("schema migration {}: {}", v + 1, last_error_);
        return false;
      }
    }
    return true;
  }

  long long version() {
    Statement s(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
    return s.step() == SQLITE_ROW ? s.integer(0) : 0;
  }

  std::optional<std::string> uid_for(const std::string& address) override {
    std::lock_guard lock(mutex_);
    return sqlite::uid_locked(*this, address);
  }

  std::optional<std::vector<std::string>> sends_and_uids(const std::vector<Send>& sends,
                                                         const std::vector<std::string>& addresses) override {
    std::lock_guard lock(mutex_);
    if (!exec("BEGIN")) return std::nullopt;
    std::vector<std::string> out;
    out.reserve(addresses.size());
    if (!record_sends_locked(sends)) return rollback();
    for (const auto& a : addresses) {
      auto uid = sqlite::uid_locked(*this, a);
      if (!uid) return rollback();
      out.push_back(std::move(*uid));
    }
    if (!exec("COMMIT")) return rollback();
    return out;
  }

 public:
  std::optional<std::string> address_of(const std::string& uid) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "SELECT address FROM contacts WHERE uid = ?");
    s.bind(1, uid);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return s.text(0);
    if (rc != SQLITE_DONE) fail();
    return std::nullopt;
  }

  bool record_launch(const std::string& launch, const std::string& email_id, long long now, const std::string& kind,
                     const std::string& sender) override {
    // Every message of a launch records it: after the first, a read beside the
    // writer finds it, instead of a write that waits for the writer's sync.
    if (auto* r = reader(); r && exists_on(*r, "SELECT 1 FROM launches WHERE launch_list_id = ?", {launch})) return true;
    std::lock_guard lock(mutex_);
    Statement s(*statements_, "INSERT INTO launches (launch_list_id, email_id, created, kind, sender) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT (launch_list_id) DO NOTHING");
    s.bind(1, launch).bind(2, email_id).bind(3, now).bind(4, kind).bind(5, sender);
    return s.step() == SQLITE_DONE || failed();
  }

  /// In the caller's transaction, under mutex_.
  bool record_sends_locked(const std::vector<Send>& sends) {
    for (const auto& x : sends) {
      // Before the send record: a deferral is the copy's first when the record does not say deferred yet.
      if (x.event && !sqlite::insert_outcome_locked(*this, *x.event)) return false;
      Statement s(*statements_, "INSERT INTO sends (launch_list_id, uid, queue_id, upstream_id, status, updated, last_reply, "
                       "after_optout) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (launch_list_id, uid) DO UPDATE SET "
                       "queue_id = excluded.queue_id, upstream_id = excluded.upstream_id, status = excluded.status, "
                       "updated = excluded.updated, last_reply = excluded.last_reply, "
                       "after_optout = MAX(sends.after_optout, excluded.after_optout)");
      s.bind(1, x.launch_list_id).bind(2, x.uid).bind(3, x.queue_id).bind(4, x.upstream_id);
      s.bind(5, std::string(name(x.status))).bind(6, x.time).bind(7, x.last_reply.substr(0, 500));
      s.bind(8, x.after_optout ? 1LL : 0LL);
      if (s.step() != SQLITE_DONE) return failed();
    }
    return true;
  }

  bool take_lease(const std::string& name, const std::string& holder, long long now, long long ttl) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "INSERT INTO leases (name, holder, expires) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO UPDATE "
                     "SET holder = excluded.holder, expires = excluded.expires "
                     "WHERE leases.holder = excluded.holder OR leases.expires < ?4 RETURNING holder");
    s.bind(1, name).bind(2, holder).bind(3, now + ttl).bind(4, now);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return s.step() == SQLITE_DONE || failed();
    if (rc != SQLITE_DONE) failed();
    return false;
  }

  std::optional<long long> cursor(const std::string& name) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "SELECT value FROM cursors WHERE name = ?");
    s.bind(1, name);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return s.integer(0);
    if (rc == SQLITE_DONE) return -1;
    failed();
    return std::nullopt;
  }

  bool set_cursor(const std::string& name, long long value) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "INSERT INTO cursors (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    s.bind(1, name).bind(2, value);
    return s.step() == SQLITE_DONE || failed();
  }

  bool launch_exists(const std::string& launch) override {
    return exists("SELECT 1 FROM launches WHERE launch_list_id = ?", {launch});
  }
  bool campaign_exists(const std::string& email_id) override {
    return exists("SELECT 1 FROM launches WHERE email_id = ? LIMIT 1", {email_id});
  }
  bool launch_matches(const std::string& launch, const std::string& email_id) override {
    return exists("SELECT 1 FROM launches WHERE launch_list_id = ? AND email_id = ?", {launch, email_id});
  }

  bool record_events(const std::vector<Event>& events) override {
    std::lock_guard lock(mutex_);
    if (!exec("BEGIN IMMEDIATE")) return false;
    for (const auto& e : events) {
      Statement s(db_, "INSERT INTO events (uid, email_id, launch_list_id, action, source, time, ip, user_agent, "
                       "topic) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
      s.bind(1, e.uid).bind(2, e.email_id).bind(3, e.launch_list_id);
      s.bind(4, std::string(name(e.action)));
      s.bind(5, e.source).bind(6, e.time).bind(7, e.ip.substr(0, 64)).bind(8, e.user_agent.substr(0, 300));
      s.bind(9, e.topic);
      if ((s.step() != SQLITE_DONE && !failed()) || !sqlite::apply_event_locked(*this, e)) {
        rollback();
        return false;
      }
    }
    // The events and their suppression list changes commit together (synchronous=FULL: durable once done).
    if (!exec("COMMIT")) {
      rollback();
      return false;
    }
    return true;
  }

  std::optional<bool> unsubscribed(const std::string& uid, const std::string& email_id) override {
    return sqlite::unsubscribed(*this, uid, email_id, static_cast<long long>(std::time(nullptr)));
  }

  std::optional<std::vector<Suppression>> suppressions_for(const std::vector<std::string>& addresses,
                                                          long long now) override {
    // The send-time check reads beside the writer: it no longer waits while a
    // group commit holds the connection through its sync. Every opt-out was
    // committed before it was acknowledged, so a new read sees it.
    if (auto* r = reader()) return sqlite::suppressions_for(*r, addresses, now);
    return sqlite::suppressions_for(*this, addresses, now);
  }
  bool suppress(const Suppression& entry) override { return sqlite::suppress(*this, entry); }
  std::optional<SuppressionPage> list_suppressions(const SuppressionQuery& q, long long now) override {
    return sqlite::list_suppressions(*this, q, now);
  }
  std::optional<std::size_t> add_suppressions(const std::vector<Suppression>& entries, long long now) override {
    return sqlite::add_suppressions(*this, entries, now);
  }
  std::optional<std::size_t> lift_suppressions(const std::string& address, const std::string& topic,
                                               const std::string& source, long long now) override {
    return sqlite::lift_suppressions(*this, address, topic, source, now);
  }
  std::optional<FeedbackOutcome> record_feedback(const Feedback& report, const FeedbackPolicy& policy) override {
    return sqlite::record_feedback(*this, report, policy);
  }
  std::optional<std::vector<SentCopy>> sent_copies(const std::string& upstream_id) override {
    return sqlite::sent_copies(*this, upstream_id);
  }
  std::optional<std::string> launch_sender(const std::string& launch) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "SELECT sender FROM launches WHERE launch_list_id = ?");
    s.bind(1, launch);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return s.text(0);
    if (rc == SQLITE_DONE) return std::string();
    return fail();
  }
  bool record_unverified(const UnverifiedReport& report, const UnverifiedBounds& bounds) override {
    return sqlite::record_unverified(*this, report, bounds);
  }
  std::optional<UnverifiedTally> unverified_tally() override { return sqlite::unverified_tally(*this); }
  std::optional<ForwardClaim> claim_forward(const std::string& dedup_key, const std::string& sender,
                                            const std::string& owner, long long now, unsigned per_hour) override {
    return sqlite::claim_forward(*this, dedup_key, sender, owner, now, per_hour);
  }
  std::optional<FeedbackWindow> feedback_window(long long since) override {
    return sqlite::feedback_window(*this, since);
  }

  std::optional<Summary> summary(const std::string& email_id, const std::string& launch) override {
    std::lock_guard lock(mutex_);
    Summary out;
    {
      Statement s(db_, "SELECT s.status, COUNT(*) FROM sends s JOIN launches l ON l.launch_list_id = s.launch_list_id "
                       "WHERE l.email_id = ? AND (? = '' OR l.launch_list_id = ?) GROUP BY s.status");
      s.bind(1, email_id).bind(2, launch).bind(3, launch);
      int rc;
      while ((rc = s.step()) == SQLITE_ROW) {
        const auto status = s.text(0);
        const auto n = static_cast<std::uint64_t>(s.integer(1));
        if (status != "suppressed") out.sent += n;
        if (status == "delivered") out.delivered += n;
        if (status == "deferred" || status == "queued") out.deferred += n;
        if (status == "bounced") out.bounced += n;
        if (status == "suppressed") out.suppressed += n;
      }
      if (rc != SQLITE_DONE) return fail_summary();
    }
    Statement u(db_, "SELECT COUNT(DISTINCT uid) FROM events WHERE email_id = ? AND (? = '' OR launch_list_id = ?) "
                     "AND action = 'unsubscribe'");
    u.bind(1, email_id).bind(2, launch).bind(3, launch);
    if (u.step() != SQLITE_ROW) return fail_summary();
    out.unsubscribed = static_cast<std::uint64_t>(u.integer(0));
    if (!sqlite::feedback_summary_locked(*this, email_id, launch, out)) return std::nullopt;
    return out;
  }

  std::optional<std::vector<LaunchSummary>> launches(const std::string& email_id,
                                                     const std::string& launch) override {
    std::vector<LaunchSummary> out;
    {
      std::lock_guard lock(mutex_);
      Statement s(db_, "SELECT email_id, launch_list_id, created, kind FROM launches WHERE (? = '' OR email_id = ?) "
                       "AND (? = '' OR launch_list_id = ?) ORDER BY created DESC, launch_list_id LIMIT 10000");
      s.bind(1, email_id).bind(2, email_id).bind(3, launch).bind(4, launch);
      int rc;
      while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.text(0), s.text(1), s.integer(2), s.text(3), {}});
      if (rc != SQLITE_DONE) {
        last_error_ = sqlite3_errmsg(db_);
        return std::nullopt;
      }
    }
    for (auto& l : out) {
      auto counts = summary(l.email_id, l.launch_list_id);
      if (!counts) return std::nullopt;
      l.counts = *counts;
    }
    return out;
  }

  std::optional<std::vector<StoredEvent>> events_since(long long since, long long after_id,
                                                       std::size_t limit) override {
    if (auto* r = reader()) return sqlite::events_since(*r, since, after_id, limit);
    return sqlite::events_since(*this, since, after_id, limit);
  }
  std::optional<std::size_t> purge_events(long long cutoff, std::size_t batch) override {
    return sqlite::purge_events(*this, cutoff, batch);
  }

  std::optional<std::size_t> purge_batch_launches(long long cutoff, std::size_t batch) override {
    std::lock_guard lock(mutex_);
    std::vector<std::string> ids;
    {
      Statement s(db_, "SELECT launch_list_id FROM launches WHERE kind = 'batch' AND created < ? LIMIT ?");
      s.bind(1, cutoff).bind(2, static_cast<long long>(batch));
      while (s.step() == SQLITE_ROW) ids.push_back(s.text(0));
    }
    if (ids.empty()) return 0;
    if (!exec("BEGIN")) return std::nullopt;
    for (const auto& id : ids) {
      Statement d1(db_, "DELETE FROM sends WHERE launch_list_id = ?");
      d1.bind(1, id);
      Statement d2(db_, "DELETE FROM launches WHERE launch_list_id = ?");
      d2.bind(1, id);
      if (d1.step() != SQLITE_DONE || d2.step() != SQLITE_DONE) {
        failed();
        exec("ROLLBACK");
        return std::nullopt;
      }
    }
    if (!exec("COMMIT")) return std::nullopt;
    return ids.size();
  }

  bool add_quota_counts(const std::vector<QuotaCount>& adds, long long expire_before) override {
    return sqlite::add_quota_counts(*this, adds, expire_before);
  }
  std::optional<std::vector<long long>> quota_counts(const std::vector<QuotaCount>& keys) override {
    return sqlite::quota_counts(*this, keys);
  }

  std::optional<ContactRecord> contact(const std::string& address) override {
    return sqlite::contact(*this, address);
  }
  std::optional<ContactPage> contact_page(const std::string& address, const ContactPageQuery& query) override {
    return sqlite::contact_page(*this, address, query);
  }
  std::optional<EraseOutcome> erase_contact(const std::string& address, const std::string& hashed,
                                            const std::string& source, long long now) override {
    return sqlite::erase_contact(*this, address, hashed, source, now);
  }
  std::optional<std::size_t> lift_erased(const std::vector<std::string>& hashed, const std::string& topic,
                                         const std::string& source, long long now) override {
    return sqlite::lift_erased(*this, hashed, topic, source, now);
  }

  bool healthy() override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "SELECT 1");
    return s.step() == SQLITE_ROW;
  }

  std::string last_error() const override {
    std::lock_guard lock(mutex_);
    return last_error_;
  }

 private:
  std::optional<Summary> fail_summary() {
    last_error_ = sqlite3_errmsg(db_);
    return std::nullopt;
  }
  bool exists(const char* sql, std::initializer_list<std::string> args) { return exists_on(*this, sql, args); }
  static bool exists_on(SqliteDb& db, const char* sql, std::initializer_list<std::string> args) {
    std::lock_guard lock(db.mutex_);
    Statement s(*db.statements_, sql);  // cached: the delivery path asks once per message
    int i = 1;
    for (const auto& a : args) s.bind(i++, a);
    return s.step() == SQLITE_ROW;
  }

  std::once_flag reader_once_;
  std::unique_ptr<SqliteDb> reader_;  // reader()
};

}  // namespace

namespace sqlite {

std::optional<std::string> uid_locked(SqliteDb& db, const std::string& address) {
  const auto key = normalise_address(address);
  {
    Statement s(*db.statements_, "SELECT uid FROM contacts WHERE address = ?");
    s.bind(1, key);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return s.text(0);
    if (rc != SQLITE_DONE) return db.fail();
  }
  const auto text = token::random_uid_text();
  if (!text) return std::nullopt;
  Statement ins(*db.statements_, "INSERT INTO contacts (uid, address, created) VALUES (?, ?, strftime('%s','now')) "
                        "ON CONFLICT (address) DO NOTHING");
  ins.bind(1, *text).bind(2, key);
  if (ins.step() != SQLITE_DONE) return db.fail();
  Statement again(*db.statements_, "SELECT uid FROM contacts WHERE address = ?");
  again.bind(1, key);
  if (again.step() == SQLITE_ROW) return again.text(0);
  return db.fail();
}

}  // namespace sqlite

std::unique_ptr<Store> open_sqlite(const std::string& path, std::string& error, unsigned cache_mb) {
  const auto dir = std::filesystem::path(path).parent_path();
  // Made durably (fsynced into its parent), as the spool's: the database
  // must not vanish with its directory on a power cut.
  if (!dir.empty()) {
    if (auto err = spool::make_directories(dir.string()); !err.empty()) {
      error = "store " + path + ": " + err;
      return nullptr;
    }
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    error = fmt::format("store {}: {}", path, db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_close_v2(db);
    return nullptr;
  }
  sqlite3_busy_timeout(db, 5000);  // the CLI and the relay share the file
  auto store = std::make_unique<SqliteStore>(db);
  if (!store->migrate(error, cache_mb)) {
    error = fmt::format("store {}: {}", path, error);
    return nullptr;
  }
  return store;
}

std::string tenant_path(const std::string& path, const std::string& tenant) {
  const std::filesystem::path p(path);
  const auto name = tenant == shared_tenant ? std::string(".shared") : ".tenant-" + tenant;
  return (p.parent_path() / (p.stem().string() + name + p.extension().string())).string();
}

std::string tenant_schema(const std::string& tenant) {
  if (tenant == shared_tenant) return "unsubrelay_shared";
  std::string out = "unsubrelay_tenant_" + tenant;
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

std::unique_ptr<Store> open(const config::Store& settings, std::string& error, const std::string& tenant) {
  const bool own = !tenant.empty() && tenant != "default";
  if (settings.kind == "postgresql") return open_postgresql(settings.url, error, own ? tenant_schema(tenant) : "");
  return open_sqlite(own ? tenant_path(settings.path, tenant) : settings.path, error, settings.cache_mb);
}

}  // namespace unsubrelay::store
