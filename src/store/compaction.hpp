// compaction.hpp: the compaction after an erasure (private to src/store), one
// pass at a time, shared by the erasures that wait for it.
//
// An erasure commits under the store's lock, quickly; what makes its bytes
// physically gone (docs/suppression.md, "Are the bytes really gone?") can
// take seconds or wait for another reader of the database, so it runs after
// the commit, outside that lock, on a connection of its own: the relay's
// deliveries and one-clicks go on meanwhile. The erasing thread (an API
// handler, the CLI) waits for a pass that began after its commit, and so
// answers truthfully whether its bytes are gone. Erasures that arrive while a
// pass runs are collected and served by one next pass, whichever of their
// threads runs it: never more than one pass at a time, however many erase.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace unsubrelay::store {

class Compactions {
 public:
  /// What one pass compacts: the tables the erasures touched, and the newest
  /// erasure's transaction id (PostgreSQL; 0 on SQLite).
  struct Batch {
    std::set<std::string> tables;
    long long horizon = 0;
  };
  /// The pass: "" when the bytes are gone, else why not (one line).
  using Pass = std::function<std::string(const Batch&)>;

  /// Queues this erasure's tables, then returns the outcome of a pass that
  /// began after this call, running it in this thread when none runs.
  std::string after(const std::vector<std::string>& tables, long long horizon, const Pass& pass) {
    std::unique_lock lock(mutex_);
    pending_.tables.insert(tables.begin(), tables.end());
    pending_.horizon = std::max(pending_.horizon, horizon);
    const auto ticket = ++requested_;
    while (finished_ < ticket) {
      if (running_) {
        changed_.wait(lock);
        continue;
      }
      running_ = true;
      Batch batch;
      std::swap(batch, pending_);
      const auto covers = requested_;
      lock.unlock();
      std::string note;
      try {
        note = pass(batch);
      } catch (const std::exception& e) {
        note = e.what();
      }
      lock.lock();
      running_ = false;
      finished_ = covers;
      note_ = note;
      changed_.notify_all();
    }
    return note_;
  }

  /// Erasures waiting for a pass (the running one's included).
  unsigned long long waiting() const {
    std::lock_guard lock(mutex_);
    return requested_ - finished_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  Batch pending_;
  unsigned long long requested_ = 0;  // erasures queued so far
  unsigned long long finished_ = 0;   // erasures a finished pass covered
  bool running_ = false;
  std::string note_;                  // the last finished pass's outcome
};

}  // namespace unsubrelay::store
