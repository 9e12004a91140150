// sqlite_db.hpp: what the SQLite store's files share (private to src/store).
//
// SqliteStore (sqlite_store.cpp) holds one connection behind a mutex; each
// concern (contacts and sends there, the suppression list in
// sqlite_suppression.cpp, bounces and complaints in sqlite_feedback.cpp) is
// written against this SqliteDb, so no file has to hold them all.
#pragma once

#include <sqlite3.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "compaction.hpp"

namespace unsubrelay::store {

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
  void reset() {
    if (!stmt_) return;  // a cached statement that failed to compile (sqlite3_clear_bindings(NULL) crashes)
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

class SqliteDb {
 public:
  explicit SqliteDb(sqlite3* db) : db_(db), statements_(std::make_unique<StatementCache>(db)) {}
  ~SqliteDb() {
    statements_.reset();  // finalized before the connection closes
    sqlite3_close_v2(db_);
  }
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  /// Callers hold mutex_.
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
  /// Rolls the open transaction back, keeping the error that made it fail.
  std::nullopt_t rollback() {
    const auto error = last_error_;
    exec("ROLLBACK");
    last_error_ = error;
    return std::nullopt;
  }

  sqlite3* db_;
  std::unique_ptr<StatementCache> statements_;  // the mail path's statements
  mutable std::mutex mutex_;
  std::string last_error_;
  Compactions compactions_;  // the checkpoints after erasures, outside mutex_
};

}  // namespace unsubrelay::store
