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

/// The two writes of the delivery path, group-committed together: the uids an
/// attempt starting needs and the sends an attempt ending records share one
/// transaction (Store::sends_and_uids), so one sync serves both kinds.
class DeliveryRecorder {
 public:
  explicit DeliveryRecorder(Store& store)
      : store_(store), commits_([this](const std::vector<Item>& items, std::vector<std::string>& out) {
          return commit(items, out);
        }) {}

  std::optional<std::vector<std::string>> uids_for(const std::vector<std::string>& addresses) {
    if (addresses.empty()) return std::vector<std::string>{};
    std::vector<Item> items;
    for (const auto& a : addresses) items.push_back({&a, nullptr});
    return commits_.run(items);
  }
  bool record_sends(const std::vector<Send>& sends) {
    if (sends.empty()) return true;
    std::vector<Item> items;
    for (const auto& x : sends) items.push_back({nullptr, &x});
    return commits_.run(items).has_value();
  }
  std::size_t transactions() const { return commits_.batches(); }

 private:
  struct Item {  // one of the two, the caller's own (it waits until committed)
    const std::string* address;
    const Send* send;
  };
  bool commit(const std::vector<Item>& items, std::vector<std::string>& out) {
    std::vector<std::string> addresses;
    std::vector<Send> sends;
    for (const auto& i : items) {
      if (i.address) addresses.push_back(*i.address);
      if (i.send) sends.push_back(*i.send);
    }
    const auto uids = store_.sends_and_uids(sends, addresses);
    if (!uids || uids->size() != addresses.size()) return false;
    std::size_t next = 0;
    out.clear();
    for (const auto& i : items) out.push_back(i.address ? (*uids)[next++] : std::string());
    return true;
  }

  Store& store_;
  GroupCommit<Item, std::string> commits_;
};

}  // namespace unsubrelay::store
