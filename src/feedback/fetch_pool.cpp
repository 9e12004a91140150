// fetch_pool.cpp: a few threads and a bounded number of waiting callers (fetch_pool.hpp).
#include "unsubrelay/feedback/fetch_pool.hpp"

#include <algorithm>

namespace unsubrelay::feedback {

FetchPool::FetchPool(std::size_t threads, std::size_t max_waiting) : max_waiting_(std::max<std::size_t>(1, max_waiting)) {
  for (std::size_t i = 0; i < std::max<std::size_t>(1, threads); ++i) threads_.emplace_back([this] { work(); });
}

FetchPool::~FetchPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void FetchPool::Admission::leave() {
  if (!pool_) return;
  std::lock_guard lock(pool_->mutex_);
  --pool_->waiting_;
  pool_ = nullptr;
}

std::optional<FetchPool::Admission> FetchPool::admit() {
  std::lock_guard lock(mutex_);
  if (waiting_ >= max_waiting_) return std::nullopt;
  ++waiting_;
  return Admission(this);
}

std::shared_future<FetchResult> FetchPool::post(std::function<FetchResult()> job) {
  std::packaged_task<FetchResult()> task([job = std::move(job)] {
    try {
      return job();
    } catch (const std::exception& e) {
      FetchResult r;
      r.error = FetchError::protocol;
      r.detail = e.what();
      return r;
    }
  });
  auto result = task.get_future().share();
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
  return result;
}

std::optional<FetchResult> FetchPool::run(std::function<FetchResult()> job) {
  auto admission = admit();
  if (!admission) return std::nullopt;
  return post(std::move(job)).get();
}

std::size_t FetchPool::waiting() const {
  std::lock_guard lock(mutex_);
  return waiting_;
}

void FetchPool::work() {
  for (;;) {
    std::packaged_task<FetchResult()> task;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to do
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace unsubrelay::feedback
