// io_threads.cpp: see io_threads.hpp.
#include "unsubrelay/common/io_threads.hpp"

#include <pthread.h>

#include <fmt/format.h>

namespace unsubrelay {

IoThreads::IoThreads(boost::asio::io_context& main, unsigned threads) : main_(main) {
  for (unsigned i = 1; i < threads; ++i) {
    others_.push_back(std::make_unique<boost::asio::io_context>(1));  // run by one thread; others only post to it
    guards_.emplace_back(boost::asio::make_work_guard(*others_.back()));
  }
}

IoThreads::~IoThreads() { stop(); }

boost::asio::any_io_executor IoThreads::next() {
  const auto i = next_.fetch_add(1, std::memory_order_relaxed) % (others_.size() + 1);
  if (i == 0) return main_.get_executor();
  return others_[i - 1]->get_executor();
}

void IoThreads::start() {
  for (std::size_t i = 0; i < others_.size(); ++i) {
    threads_.emplace_back([context = others_[i].get()] { context->run(); });
    ::pthread_setname_np(threads_.back().native_handle(), fmt::format("io-{}", i + 1).c_str());
  }
}

void IoThreads::stop() {
  for (auto& guard : guards_) guard.reset();
  for (auto& context : others_) context->stop();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

}  // namespace unsubrelay
