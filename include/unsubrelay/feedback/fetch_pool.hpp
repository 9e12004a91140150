// fetch_pool.hpp: the threads SNS fetches run on, and how many callers may wait.
//
// Every HTTP request is handled on one of the HTTP service's handler threads
// (http/server.cpp, 16 of them). A certificate URL that hangs must not take
// them all: a POST /feedback/ses that needs a fetch first asks admit() for a
// place; when max_waiting callers already wait for a fetch (running or
// queued), it gets none and answers 503 at once. The fetches themselves run
// on the pool's own few threads, each bounded by its deadline, so at most
// max_waiting handler threads ever wait behind them and one-click
// unsubscribes and /healthz always find a free handler.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "unsubrelay/feedback/https_fetch.hpp"

namespace unsubrelay::feedback {

class FetchPool {
 public:
  /// threads: fetches at once; max_waiting: callers that may wait for a fetch at once.
  FetchPool(std::size_t threads, std::size_t max_waiting);
  ~FetchPool();  // finishes the queued fetches (each bounded by its deadline), then joins
  FetchPool(const FetchPool&) = delete;
  FetchPool& operator=(const FetchPool&) = delete;

  /// A caller's place among the max_waiting; given back when destroyed.
  class Admission {
   public:
    Admission(Admission&& other) noexcept : pool_(std::exchange(other.pool_, nullptr)) {}
    Admission& operator=(Admission&& other) noexcept {
      if (this != &other) {
        leave();
        pool_ = std::exchange(other.pool_, nullptr);
      }
      return *this;
    }
    ~Admission() { leave(); }

   private:
    friend class FetchPool;
    explicit Admission(FetchPool* pool) : pool_(pool) {}
    void leave();
    FetchPool* pool_;
  };

  /// A place to wait, or nullopt when max_waiting callers already wait.
  std::optional<Admission> admit();
  /// Queues job for the pool's threads. Callers hold an Admission while they
  /// wait for it, so the queue never holds more than max_waiting jobs. A job
  /// that throws gives a FetchError::protocol result.
  std::shared_future<FetchResult> post(std::function<FetchResult()> job);
  /// admit(), post() and wait: nullopt when no place was free.
  std::optional<FetchResult> run(std::function<FetchResult()> job);

  std::size_t waiting() const;

 private:
  void work();

  const std::size_t max_waiting_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::size_t waiting_ = 0;
  bool stopping_ = false;
  std::deque<std::packaged_task<FetchResult()>> queue_;
  std::vector<std::thread> threads_;  // last: started once the rest is ready
};

}  // namespace unsubrelay::feedback
