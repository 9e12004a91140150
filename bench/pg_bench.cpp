// pg_bench.cpp: what the PostgreSQL store's statements cost directly and
// through PgBouncer's transaction pooling (docs/operations.md).
//
// 1. The store's own calls per campaign message of 10 new recipients (one
//    uids_for() transaction, record_launch(), record_sends()), as the queue
//    manager makes them, on each URL given.
// 2. One lookup statement run 2,000 times in its own transaction, as an
//    unnamed statement (exec_params: what the store does; Parse, Bind and
//    Execute travel together) and as a named server-side prepared statement
//    (pqxx prepare(): parsed once per server connection). Through PgBouncer
//    in transaction mode the named one breaks as soon as a transaction lands
//    on a server connection that has not seen the PREPARE.
//
//   ./build/release/bench/pg_bench postgresql://u@127.0.0.1:5432/db [postgresql://u@127.0.0.1:6432/db ...]
#include <pqxx/pqxx>

#include <chrono>
#include <iostream>

#include <fmt/format.h>

#include "unsubrelay/store/store.hpp"

using namespace unsubrelay;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string store_calls(const std::string& url, int run) {
  std::string error;
  auto store = store::open_postgresql(url, error);
  if (!store) return error;
  const int messages = 200;
  const auto start = Clock::now();
  for (int m = 0; m < messages; ++m) {
    std::vector<std::string> rcpts;
    for (int i = 0; i < 10; ++i) rcpts.push_back(fmt::format("bench{}-{}-{}@example.org", run, m, i));
    const auto launch = fmt::format("bench-{}-{}", run, m);
    const auto uids = store->uids_for(rcpts);
    if (!uids || !store->record_launch(launch, "bench", 1)) return store->last_error();
    std::vector<store::Send> sends;
    for (const auto& uid : *uids) sends.push_back({launch, uid, "Q", "", store::SendStatus::delivered, 1, "250"});
    if (!store->record_sends(sends)) return store->last_error();
  }
  return fmt::format("{:.2f} ms per message", ms_since(start) / messages);
}

std::string lookups(const std::string& url, bool named) {
  const int n = 2000;
  int failures = 0;
  std::string first_error;
  pqxx::connection conn(url);
  if (named) conn.prepare("lookup", "SELECT uid FROM contacts WHERE address = $1");
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    try {
      pqxx::work w(conn);
      const auto address = fmt::format("bench0-{}-0@example.org", i % 200);
      auto r = named ? w.exec_prepared("lookup", address) : w.exec_params("SELECT uid FROM contacts WHERE address = $1",
                                                                          address);
      w.commit();
    } catch (const std::exception& e) {
      if (first_error.empty()) first_error = e.what();
      ++failures;
    }
  }
  auto out = fmt::format("{:.3f} ms per statement, {} of {} failed", ms_since(start) / n, failures, n);
  if (!first_error.empty()) out += " (" + first_error.substr(0, first_error.find('\n')) + ")";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: pg_bench URL [URL...]\n";
    return 2;
  }
  for (int i = 1; i < argc; ++i) {
    const std::string url = argv[i];
    std::cout << "== " << url << "\n";
    std::cout << "store calls, 10 new recipients: " << store_calls(url, i) << "\n";
    std::cout << "unnamed statements (exec_params): " << lookups(url, false) << "\n";
    std::cout << "named prepared statements:        " << lookups(url, true) << "\n";
  }
  return 0;
}
