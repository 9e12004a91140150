// sqlite_store.cpp: the embedded store: SQLite in WAL mode, one connection
// behind a mutex, prepared statements, versioned schema migrations.
#include <sqlite3.h>

#include <cstring>
#include <filesystem>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>
#include <openssl/rand.h>

#include "unsubrelay/spool/durable_file.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::store {

const char* name(Action a) { return a == Action::unsubscribe ? "unsubscribe" : "resubscribe"; }

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
constexpr const char* migrations[] = {
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
};

/// Statements of the mail path, compiled once per connection and reused:
/// compiling each row's statement again was a third of the relay's
/// instructions per copy (bench/relay_profile.py --tool callgrind).
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;
  ~StatementCache() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  }
  /// The compiled statement for sql, or nullptr. Keyed by the text's address
  /// (string literals), checked against the text itself.
  sqlite3_stmt* get(const char* sql) {
    auto& stmt = cache_[sql];
    if (stmt && std::strcmp(sqlite3_sql(stmt), sql) != 0) {
      sqlite3_finalize(stmt);
      stmt = nullptr;
    }
    if (!stmt) sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    return stmt;
  }

 private:
  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  /// A cached statement: reset, not finalized, when done. One Statement per
  /// cached text at a time (the store's mutex serialises callers).
  Statement(StatementCache& cache, const char* sql) : stmt_(cache.get(sql)), cached_(true) {}
  ~Statement() {
    if (cached_) {
      reset();
    } else {
      sqlite3_finalize(stmt_);
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, long long v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  int step() { return stmt_ ? sqlite3_step(stmt_) : SQLITE_ERROR; }
  /// Ready to run again with new bindings (a statement prepared once, run per row).
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col)) : std::string();
  }
  long long integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  explicit operator bool() const { return stmt_ != nullptr; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  bool cached_ = false;
};

constexpr const char* latest_event = "SELECT action FROM events WHERE uid = ? ORDER BY id DESC LIMIT 1";
constexpr const char* latest_event_in_campaign =
    "SELECT action FROM events WHERE uid = ? AND email_id = ? ORDER BY id DESC LIMIT 1";

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(sqlite3* db) : db_(db), statements_(std::make_unique<StatementCache>(db)) {}
  ~SqliteStore() override {
    statements_.reset();  // finalized before the connection closes
    sqlite3_close_v2(db_);
  }

  bool migrate(std::string& error) {
    if (!exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;") ||
        !exec("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")) {
      error = last_error_;
      return false;
    }
    long long version = 0;
    {
      Statement s(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
      if (s.step() == SQLITE_ROW) version = s.integer(0);
    }
    for (long long v = version; v < static_cast<long long>(std::size(migrations)); ++v) {
      if (!exec("BEGIN") || !exec(migrations[v]) ||
          !exec(fmt::format("INSERT INTO schema_version (version) VALUES ({})", v + 1).c_str()) || !exec("COMMIT")) {
        exec("ROLLBACK");
        error = fmt::format("schema migration {}: {}", v + 1, last_error_);
        return false;
      }
    }
    return true;
  }

  std::optional<std::string> uid_for(const std::string& address) override {
    std::lock_guard lock(mutex_);
    return uid_locked(address);
  }

  std::optional<std::vector<std::string>> uids_for(const std::vector<std::string>& addresses) override {
    std::lock_guard lock(mutex_);
    if (!exec("BEGIN")) return std::nullopt;
    std::vector<std::string> out;
    out.reserve(addresses.size());
    for (const auto& a : addresses) {
      auto uid = uid_locked(a);
      if (!uid) {
        exec("ROLLBACK");
        return std::nullopt;
      }
      out.push_back(std::move(*uid));
    }
    if (!exec("COMMIT")) return std::nullopt;
    return out;
  }

 private:
  std::optional<std::string> uid_locked(const std::string& address) {
    std::string key = address;
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    {
      Statement s(*statements_, "SELECT uid FROM contacts WHERE address = ?");
      s.bind(1, key);
      const int rc = s.step();
      if (rc == SQLITE_ROW) return s.text(0);
      if (rc != SQLITE_DONE) return fail();
    }
    token::Uid uid{};
    if (RAND_bytes(uid.data(), static_cast<int>(uid.size())) != 1) return std::nullopt;
    const auto text = token::uid_text(uid);
    Statement ins(*statements_, "INSERT INTO contacts (uid, address, created) VALUES (?, ?, strftime('%s','now')) "
                       "ON CONFLICT (address) DO NOTHING");
    ins.bind(1, text).bind(2, key);
    if (ins.step() != SQLITE_DONE) return fail();
    Statement again(*statements_, "SELECT uid FROM contacts WHERE address = ?");
    again.bind(1, key);
    if (again.step() == SQLITE_ROW) return again.text(0);
    return fail();
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

  bool record_launch(const std::string& launch, const std::string& email_id, long long now,
                     const std::string& kind) override {
    std::lock_guard lock(mutex_);
    Statement s(*statements_, "INSERT INTO launches (launch_list_id, email_id, created, kind) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (launch_list_id) DO NOTHING");
    s.bind(1, launch).bind(2, email_id).bind(3, now).bind(4, kind);
    return s.step() == SQLITE_DONE || failed();
  }

  bool record_sends(const std::vector<Send>& sends) override {
    std::lock_guard lock(mutex_);
    if (!exec("BEGIN")) return false;
    for (const auto& x : sends) {
      Statement s(*statements_, "INSERT INTO sends (launch_list_id, uid, queue_id, upstream_id, status, updated, last_reply) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (launch_list_id, uid) DO UPDATE SET "
                       "queue_id = excluded.queue_id, upstream_id = excluded.upstream_id, status = excluded.status, "
                       "updated = excluded.updated, last_reply = excluded.last_reply");
      s.bind(1, x.launch_list_id).bind(2, x.uid).bind(3, x.queue_id).bind(4, x.upstream_id);
      s.bind(5, std::string(name(x.status))).bind(6, x.time).bind(7, x.last_reply.substr(0, 500));
      if (s.step() != SQLITE_DONE) {
        failed();
        exec("ROLLBACK");
        return false;
      }
    }
    return exec("COMMIT");
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

  bool record_event(const Event& e) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "INSERT INTO events (uid, email_id, launch_list_id, action, source, time, ip, user_agent) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, e.uid).bind(2, e.email_id).bind(3, e.launch_list_id);
    s.bind(4, std::string(name(e.action)));
    s.bind(5, e.source).bind(6, e.time).bind(7, e.ip.substr(0, 64)).bind(8, e.user_agent.substr(0, 300));
    return s.step() == SQLITE_DONE || failed();  // synchronous=FULL: durable once done
  }

  std::optional<bool> unsubscribed(const std::string& uid, const std::string& email_id) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, email_id.empty()
                         ? "SELECT action FROM events WHERE uid = ? ORDER BY id DESC LIMIT 1"
                         : "SELECT action FROM events WHERE uid = ? AND email_id = ? ORDER BY id DESC LIMIT 1");
    s.bind(1, uid);
    if (!email_id.empty()) s.bind(2, email_id);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return s.text(0) == "unsubscribe";
    if (rc == SQLITE_DONE) return false;
    fail();
    return std::nullopt;
  }

  std::optional<std::vector<SendVerdict>> check_suppression(const SendScope& scope,
                                                            const std::vector<SendRecipient>& recipients) override {
    std::vector<SendVerdict> out(recipients.size());
    if (!scope.campaign || scope.mode == config::Suppression::off) return out;
    const bool per_campaign = scope.mode == config::Suppression::campaign;
    std::lock_guard lock(mutex_);
    // One read transaction and one prepared statement for the whole recipient list.
    if (!exec("BEGIN")) return std::nullopt;
    Statement s(*statements_, per_campaign ? latest_event_in_campaign : latest_event);
    for (std::size_t i = 0; i < recipients.size(); ++i) {
      s.reset();
      s.bind(1, recipients[i].uid);
      if (per_campaign) s.bind(2, scope.email_id);
      const int rc = s.step();
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        failed();
        exec("ROLLBACK");
        return std::nullopt;
      }
      if (rc == SQLITE_ROW && s.text(0) == "unsubscribe") out[i] = {true, "unsubscribed"};
    }
    exec("COMMIT");
    return out;
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
    std::lock_guard lock(mutex_);
    Statement s(db_, "SELECT id, uid, email_id, launch_list_id, action, source, time, ip, user_agent FROM events "
                     "WHERE time >= ? AND id > ? ORDER BY id LIMIT ?");
    s.bind(1, since).bind(2, after_id).bind(3, static_cast<long long>(limit));
    std::vector<StoredEvent> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      out.push_back({s.integer(0),
                     {s.text(1), s.text(2), s.text(3),
                      s.text(4) == "unsubscribe" ? Action::unsubscribe : Action::resubscribe, s.text(5), s.integer(6),
                      s.text(7), s.text(8)}});
    }
    if (rc != SQLITE_DONE) {
      last_error_ = sqlite3_errmsg(db_);
      return std::nullopt;
    }
    return out;
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
  bool exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      last_error_ = msg ? msg : sqlite3_errmsg(db_);
      sqlite3_free(msg);
      return false;
    }
    return true;
  }
  bool failed() {
    last_error_ = sqlite3_errmsg(db_);
    return false;
  }
  std::nullopt_t fail() {
    last_error_ = sqlite3_errmsg(db_);
    return std::nullopt;
  }
  std::optional<Summary> fail_summary() {
    last_error_ = sqlite3_errmsg(db_);
    return std::nullopt;
  }
  bool exists(const char* sql, std::initializer_list<std::string> args) {
    std::lock_guard lock(mutex_);
    Statement s(db_, sql);
    int i = 1;
    for (const auto& a : args) s.bind(i++, a);
    return s.step() == SQLITE_ROW;
  }

  sqlite3* db_;
  std::unique_ptr<StatementCache> statements_;
  mutable std::mutex mutex_;
  std::string last_error_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite(const std::string& path, std::string& error) {
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
  if (!store->migrate(error)) {
    error = fmt::format("store {}: {}", path, error);
    return nullptr;
  }
  return store;
}

std::unique_ptr<Store> open(const config::Store& settings, std::string& error) {
  if (settings.kind == "postgresql") return open_postgresql(settings.url, error);
  return open_sqlite(settings.path, error);
}

}  // namespace unsubrelay::store
