// group_commit.hpp: one store transaction for the requests of many deliveries.
//
// Each delivery attempt looks up its recipients' uids and records its sends:
// one transaction, so one fsync, each. With twenty deliveries in flight those
// fsyncs queued one behind another on the store's lock. Group commit (as in
// database write-ahead logs): the first caller becomes the leader and commits
// everything queued so far in one transaction; callers arriving meanwhile wait
// and are committed together in the next one. Nobody returns before their own
// items are durable, so crash safety is unchanged.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "unsubrelay/store/store.hpp"

namespace unsubrelay::store {

template <class In, class Out>
class GroupCommit {
 public:
  /// commit: all queued items in one transaction; fills one Out per In, or returns false.
  using Commit = std::function<bool(const std::vector<In>&, std::vector<Out>&)>;
  explicit GroupCommit(Commit commit) : commit_(std::move(commit)) {}

  /// This caller's results, in order, once committed; nullopt if the transaction failed.
  std::optional<std::vector<Out>> run(const std::vector<In>& items) {
    Request request{&items, {}, false};
    std::unique_lock lock(mutex_);
    queue_.push_back(&request);
    while (!request.done) {
      if (leader_) {
        done_.wait(lock);
        continue;
      }
      leader_ = true;
      auto batch = std::move(queue_);
      queue_.clear();
      lock.unlock();
      commit_batch(batch);
      lock.lock();
      for (auto* r : batch) r->done = true;
      leader_ = false;
      ++batches_;
      done_.notify_all();
    }
    return std::move(request.result);
  }

  /// Transactions committed so far (tests and metrics).
  std::size_t batches() const {
    std::lock_guard lock(mutex_);
    return batches_;
  }

 private:
  struct Request {
    const std::vector<In>* items;
    std::optional<std::vector<Out>> result;
    bool done;
  };

  void commit_batch(const std::vector<Request*>& batch) {
    std::vector<In> all;
    for (const auto* r : batch) all.insert(all.end(), r->items->begin(), r->items->end());
    std::vector<Out> out;
    bool ok = false;
    try {
      ok = commit_(all, out) && out.size() == all.size();
    } catch (const std::exception&) {
      ok = false;  // a throwing backend must not leave the followers waiting forever
    }
    std::size_t at = 0;
    for (auto* r : batch) {
      if (ok) r->result.emplace(out.begin() + static_cast<std::ptrdiff_t>(at),
                                out.begin() + static_cast<std::ptrdiff_t>(at + r->items->size()));
      at += r->items->size();
    }
  }

  Commit commit_;
  mutable std::mutex mutex_;
  std::condition_variable done_;
  std::vector<Request*> queue_;
  bool leader_ = false;
  std::size_t batches_ = 0;
};

/// The two writes of the delivery path, group-committed.
class DeliveryRecorder {
 public:
  explicit DeliveryRecorder(Store& store)
      : store_(store),
        uids_([this](const std::vector<std::string>& addresses, std::vector<std::string>& out) {
          auto found = store_.uids_for(addresses);
          if (found) out = std::move(*found);
          return found.has_value();
        }),
        sends_([this](const std::vector<Send>& sends, std::vector<char>& out) {
          const bool ok = store_.record_sends(sends);
          out.assign(sends.size(), 1);
          return ok;
        }) {}

  std::optional<std::vector<std::string>> uids_for(const std::vector<std::string>& addresses) {
    if (addresses.empty()) return std::vector<std::string>{};
    return uids_.run(addresses);
  }
  bool record_sends(const std::vector<Send>& sends) { return sends.empty() || sends_.run(sends).has_value(); }
  std::size_t transactions() const { return uids_.batches() + sends_.batches(); }

 private:
  Store& store_;
  GroupCommit<std::string, std::string> uids_;
  GroupCommit<Send, char> sends_;
};

}  // namespace unsubrelay::store
