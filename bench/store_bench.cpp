// store_bench.cpp: what recording launch metadata costs per message, against
// what the relay pays anyway to accept it (one fsynced spool file).
//
// Per message of B recipients (all new contacts, the worst case): one
// uids_for() transaction, one record_launch(), one record_sends()
// transaction, as the queue manager does; SQLite in WAL mode with
// synchronous=FULL. The peer, measured in the same run on the same disk:
// committing one 10 KB message to the spool (write, fsync, rename, directory
// fsync), which every accepted message costs before its 250.
//
//   ./build/release/bench/store_bench            (docs/performance.md)
#include <chrono>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "unsubrelay/spool/spool.hpp"
#include "unsubrelay/store/store.hpp"

using namespace unsubrelay;
using Clock = std::chrono::steady_clock;

int main() {
  char tmpl[] = "/tmp/unsubrelay-store-bench-XXXXXX";
  const std::filesystem::path dir = ::mkdtemp(tmpl);
  std::string error;
  auto store = store::open_sqlite((dir / "store.db").string(), error);
  if (!store) {
    std::cerr << error << "\n";
    return 1;
  }
  const spool::Spool spool((dir / "spool").string());
  spool.init();
  const std::string message(10 * 1024, 'x');

  // Peer: spool commits.
  const int spool_messages = 200;
  auto start = Clock::now();
  for (int i = 0; i < spool_messages; ++i) {
    auto w = spool.create({0, "127.0.0.1", "bench", "", false, "a@b.c", {"d@e.f"}}, &error);
    w->append(message);
    if (!w->commit().empty()) return 1;
    spool.remove(w->id());
  }
  const double spool_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count() / spool_messages;

  std::cout << fmt::format("spool commit of a 10 KB message (peer): {:.2f} ms\n\n", spool_ms);
  std::cout << "| recipients per message | store ms per message | store / spool commit | recorded sends per second |\n";
  std::cout << "| --- | --- | --- | --- |\n";
  int contact = 0;
  for (int batch : {1, 10, 100, 1000}) {
    const int messages = std::max(3, 2000 / batch);
    start = Clock::now();
    for (int m = 0; m < messages; ++m) {
      std::vector<std::string> rcpts;
      for (int i = 0; i < batch; ++i) rcpts.push_back(fmt::format("user{}@example.org", contact++));
      const auto launch = fmt::format("L{}-{}", batch, m);
      const auto uids = store->uids_for(rcpts);
      if (!uids || !store->record_launch(launch, "222222222", 1)) return 1;
      std::vector<store::Send> sends;
      for (const auto& uid : *uids) sends.push_back({launch, uid, "QUEUEID", "", store::SendStatus::delivered, 1, "250 Ok"});
      if (!store->record_sends(sends)) return 1;
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count() / messages;
    std::cout << fmt::format("| {} | {:.2f} | {:.2f} | {:.0f} |\n", batch, ms, ms / spool_ms, batch * 1000.0 / ms);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
