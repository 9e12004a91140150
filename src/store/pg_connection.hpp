// pg_connection.hpp: the PostgreSQL store's connection and its run layer.
//
// One connection behind a mutex. run(f) executes f in one transaction and
// commits. What happens when the database fails (docs/operations.md):
// - the connection broke (server stopped, failover, network): it is dropped
//   and the call is tried once more on a new connection. With a multi-host
//   store.url (`postgresql://h1:p1,h2:p2/db?target_session_attrs=read-write`)
//   libpq then finds whichever host is now the primary;
// - the server is read-only (a standby, or a demoted primary): the same, so
//   the next connection goes to the read-write host;
// - the commit's outcome is unknown (connection lost during COMMIT): the call
//   fails (the caller defers or answers 503) and is not repeated here;
// - anything else (a constraint, a bug): the call fails, the connection stays.
// Only unnamed statements (exec_params) are used, never pqxx prepare(): a
// named server-side statement does not survive PgBouncer's transaction
// pooling before 1.21, an unnamed one is parsed and run in one round trip.
#pragma once

#include <pqxx/pqxx>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace unsubrelay::store {

class PgConnection {
 public:
  /// schema: a tenant's own schema (SPEC Part 3), "" = the database's default
  /// search_path. It is set on each new connection and again, SET LOCAL, in
  /// each transaction, so it holds through PgBouncer's transaction pooling.
  explicit PgConnection(std::string url, std::string schema = "") : url_(std::move(url)), schema_(std::move(schema)) {}

  /// Connects now; throws what libpq reported (the caller strips the URL).
  void open();

  /// Runs f in a transaction and commits; nullopt (reason in last_error()) on failure.
  template <typename T, typename F>
  std::optional<T> run(F&& f) {
    std::lock_guard lock(mutex_);
    for (int attempt = 0; attempt < max_attempts; ++attempt) {
      std::optional<T> value;
      const auto outcome = attempt_once([&](pqxx::work& w) { value.emplace(f(w)); });
      if (outcome == Outcome::done) return value;
      if (outcome == Outcome::failed) return std::nullopt;
    }
    return std::nullopt;
  }

  /// Runs each statement on its own, outside a transaction (VACUUM, CHECKPOINT),
  /// going on after a failure; the failures, one line each ("" when none).
  std::string run_outside(const std::vector<std::string>& statements);

  /// The open connection, for start-up work such as migrations (no retry).
  pqxx::connection& connection();

  std::string last_error() const;

 private:
  enum class Outcome { done, failed, retry };
  // The first attempt plus one on a fresh connection.
  static constexpr int max_attempts = 2;

  template <typename F>
  Outcome attempt_once(F&& body) {
    try {
      if (!conn_ || !conn_->is_open()) connect();
      pqxx::work w(*conn_);
      if (!schema_.empty()) w.exec("SET LOCAL search_path TO " + conn_->quote_name(schema_));
      body(w);
      w.commit();
      return Outcome::done;
    } catch (const std::exception& e) {
      return classify(e);
    }
  }

  /// Records the failure and decides: drop the connection and retry, or fail.
  Outcome classify(const std::exception& e);

  /// A new connection, its search_path set to the schema.
  void connect();

  std::string url_;
  std::string schema_;
  std::unique_ptr<pqxx::connection> conn_;
  mutable std::mutex mutex_;
  std::string last_error_;
};

}  // namespace unsubrelay::store
