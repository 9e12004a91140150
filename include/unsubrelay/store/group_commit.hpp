// group_commit.hpp: one store transaction for the requests of many deliveries.
//
// Each delivery attempt looks up its recipients' uids and records its sends:
// one transaction, so one fsync, each. With twenty deliveries in flight those
// fsyncs queued one behind another on the store's lock. Group commit (as in
// database write-ahead logs): the first caller becomes the leader and commits
// everything queued so far in one transaction; callers arriving meanwhile wait
// and are committed together in the next one. Nobody returns before their own
// items are durable, so crash safety is unchanged. The delivery path does not
// wait at all (run_async): its items join the transaction under way's next one
// and a callback continues the attempt, so no disk-pool thread sleeps in a
// follower's wait (on a VM each such sleep and wake-up is a costly context switch).
#pragma once

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "unsubrelay/store/store.hpp"

namespace unsubrelay::store {

template <class In, class Out>
class GroupCommit {
 public:
  /// commit: all queued items in one transaction; fills one Out per In, or returns false.
  /// The items are the commit's to move from (copies of a waiting caller's own).
  using Commit = std::function<bool(std::vector<In>&, std::vector<Out>&)>;
  /// What an asynchronous caller is told: its results, in order, or nullopt if the transaction failed.
  using Done = std::function<void(std::optional<std::vector<Out>>)>;
  explicit GroupCommit(Commit commit) : commit_(std::move(commit)) {}

  /// This caller's results, in order, once committed; nullopt if the transaction failed.
  std::optional<std::vector<Out>> run(const std::vector<In>& items) {
    Request request{&items, {}, false, {}, {}};
    std::unique_lock lock(mutex_);
    queue_.push_back(&request);
    while (!request.done) {
      if (leader_) {
        done_.wait(lock);
      } else {
        lead(lock);
      }
    }
    return std::move(request.result);
  }

  /// The same without waiting: done is called once the items are committed (or
  /// their transaction failed), on the thread that committed them. With no
  /// commit under way the caller commits here, before returning: call it from
  /// a thread that may block (the disk pool), never from a network thread. A
  /// caller arriving while another commits returns at once; the committing
  /// thread takes its items into its next transaction (no thread waits for it).
  void run_async(std::vector<In> items, Done done) {
    auto* request = new Request{nullptr, {}, false, std::move(items), std::move(done)};
    request->items = &request->own;
    std::unique_lock lock(mutex_);
    queue_.push_back(request);
    if (!leader_) lead(lock);
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
    std::vector<In> own;  // an asynchronous caller's items, kept here
    Done callback;        // set: asynchronous (this object is the leader's to delete)
  };

  /// Called with the lock held and no leader: commits until nothing is queued.
  /// Waiting callers are woken after each transaction; asynchronous callers'
  /// callbacks run here, outside the lock.
  void lead(std::unique_lock<std::mutex>& lock) {
    leader_ = true;
    while (!queue_.empty()) {
      auto batch = std::move(queue_);
      queue_.clear();
      lock.unlock();
      commit_batch(batch);
      std::vector<std::unique_ptr<Request>> answered;  // taken before a waiting caller may return
      for (auto* r : batch) {
        if (r->callback) answered.emplace_back(r);
      }
      lock.lock();
      for (auto* r : batch) r->done = true;
      ++batches_;
      done_.notify_all();
      lock.unlock();
      for (auto& r : answered) {
        try {
          r->callback(std::move(r->result));
        } catch (...) {
          // the callback's own failure; the next requests must still be committed
        }
      }
      lock.lock();
    }
    leader_ = false;
  }

  void commit_batch(const std::vector<Request*>& batch) {
    std::vector<In> all;
    for (auto* r : batch) {
      if (r->callback) {  // an asynchronous caller's own items: taken, not copied
        std::move(r->own.begin(), r->own.end(), std::back_inserter(all));
      } else {
        all.insert(all.end(), r->items->begin(), r->items->end());
      }
    }
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
  using Uids = std::function<void(std::optional<std::vector<std::string>>)>;
  using Recorded = std::function<void(bool)>;

  explicit DeliveryRecorder(Store& store)
      : store_(store), commits_([this](std::vector<Item>& items, std::vector<std::string>& out) {
          return commit(items, out);
        }) {}

  /// The uids of these addresses (made for new contacts), once committed.
  std::optional<std::vector<std::string>> uids_for(std::vector<std::string> addresses) {
    if (addresses.empty()) return std::vector<std::string>{};
    return commits_.run(address_items(std::move(addresses)));
  }
  bool record_sends(std::vector<Send> sends) {
    if (sends.empty()) return true;
    return commits_.run(send_items(std::move(sends))).has_value();
  }
  /// The same without waiting (GroupCommit::run_async: call from the disk pool;
  /// done runs on the thread that committed).
  void uids_for(std::vector<std::string> addresses, Uids done) {
    if (addresses.empty()) return done(std::vector<std::string>{});
    commits_.run_async(address_items(std::move(addresses)), std::move(done));
  }
  void record_sends(std::vector<Send> sends, Recorded done) {
    if (sends.empty()) return done(true);
    commits_.run_async(send_items(std::move(sends)),
                       [done = std::move(done)](std::optional<std::vector<std::string>> r) { done(r.has_value()); });
  }
  std::size_t transactions() const { return commits_.batches(); }

 private:
  struct Item {  // one of the two
    std::string address;
    std::optional<Send> send;
  };
  static std::vector<Item> address_items(std::vector<std::string> addresses) {
    std::vector<Item> items;
    for (auto& a : addresses) items.push_back({std::move(a), std::nullopt});
    return items;
  }
  static std::vector<Item> send_items(std::vector<Send> sends) {
    std::vector<Item> items;
    for (auto& x : sends) items.push_back({{}, std::move(x)});
    return items;
  }
  bool commit(std::vector<Item>& items, std::vector<std::string>& out) {
    std::vector<std::string> addresses;
    std::vector<Send> sends;
    for (auto& i : items) {
      if (i.send) {
        sends.push_back(std::move(*i.send));
      } else {
        addresses.push_back(std::move(i.address));
      }
    }
    const auto uids = store_.sends_and_uids(sends, addresses);
    if (!uids || uids->size() != addresses.size()) return false;
    std::size_t next = 0;
    out.clear();
    for (const auto& i : items) out.push_back(i.send ? std::string() : (*uids)[next++]);
    return true;
  }

  Store& store_;
  GroupCommit<Item, std::string> commits_;
};

}  // namespace unsubrelay::store
