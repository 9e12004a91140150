// io_threads.hpp: the threads that run SMTP and HTTP sessions, one io_context each.
//
// One io_context run by several threads hands most completions from the thread
// in epoll_wait to another (a futex wake, a context switch), and every socket
// needs a strand on top. Measured at 10 KB x 1 on 2 cores (docs/performance.md,
// issue 25; 4 interleaved runs each): two threads on one io_context cost 0.78 ms
// of relay CPU per message, one thread or one io_context per thread 0.71.
// So each io thread runs an io_context of its own, and a new session (SMTP or
// HTTP) is placed on the next one, round robin, for its whole life: its reads,
// writes, timers and the disk pool's answers run on that one thread. The
// listeners, signals and the main context's other work stay on the main
// thread, which runs the first context.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace unsubrelay {

/// Where a server places a new connection's socket and coroutines.
using SessionExecutors = std::function<boost::asio::any_io_executor()>;

class IoThreads {
 public:
  /// main: run by the caller's thread (after start()); threads: all of them,
  /// main's included (at least 1).
  IoThreads(boost::asio::io_context& main, unsigned threads);
  ~IoThreads();
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;

  /// The context for a new session: the next one, round robin (any thread).
  boost::asio::any_io_executor next();
  SessionExecutors executors() {
    return [this] { return next(); };
  }
  /// Starts the other threads (io-1, io-2, ...); each runs its context until stop().
  void start();
  /// Stops the other contexts and joins their threads (after the main one returned).
  void stop();

 private:
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  boost::asio::io_context& main_;
  std::vector<std::unique_ptr<boost::asio::io_context>> others_;
  std::vector<std::optional<Guard>> guards_;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace unsubrelay
