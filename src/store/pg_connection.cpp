// pg_connection.cpp: the PostgreSQL store's connection: open, failure
// classification, reconnect (pg_connection.hpp says what each failure does).
#include "pg_connection.hpp"

namespace unsubrelay::store {

namespace {

// SQLSTATEs after which this connection is no use but another one may be:
// read_only_sql_transaction (a standby or a demoted primary),
// admin_shutdown, crash_shutdown, cannot_connect_now (a server going away or
// still starting), and class 08 (connection exceptions).
bool connection_unusable(const std::string& state) {
  return state == "25006" || state == "57P01" || state == "57P02" || state == "57P03" ||
         state.rfind("08", 0) == 0;
}

/// libpq's messages run over several lines (one per host tried): one log line.
std::string one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n' || c == '\t' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

void PgConnection::connect() {
  auto fresh = std::make_unique<pqxx::connection>(url_);
  if (!schema_.empty()) {
    pqxx::nontransaction n(*fresh);
    n.exec("CREATE SCHEMA IF NOT EXISTS " + fresh->quote_name(schema_));
    n.exec("SET search_path TO " + fresh->quote_name(schema_));
  }
  conn_ = std::move(fresh);
}

void PgConnection::open() {
  std::lock_guard lock(mutex_);
  connect();
}

pqxx::connection& PgConnection::connection() {
  if (!conn_ || !conn_->is_open()) connect();
  return *conn_;
}

std::string PgConnection::run_outside(const std::vector<std::string>& statements) {
  std::lock_guard lock(mutex_);
  std::string failures;
  for (const auto& sql : statements) {
    try {
      pqxx::nontransaction n(connection());
      n.exec(sql);
    } catch (const std::exception& e) {
      if (!failures.empty()) failures += "; ";
      failures += sql + ": " + one_line(e.what());
      if (conn_ && !conn_->is_open()) conn_.reset();
    }
  }
  return failures;
}

std::string PgConnection::last_error() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

PgConnection::Outcome PgConnection::classify(const std::exception& e) {
  last_error_ = one_line(e.what());
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e)) {
    // The COMMIT may or may not have happened: never repeat it blindly.
    conn_.reset();
    return Outcome::failed;
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e)) {
    conn_.reset();
    return Outcome::retry;
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e); sql && connection_unusable(sql->sqlstate())) {
    conn_.reset();
    return Outcome::retry;
  }
  if (conn_ && !conn_->is_open()) {
    conn_.reset();
    return Outcome::retry;
  }
  return Outcome::failed;
}

}  // namespace unsubrelay::store
