// accept_pause.hpp: what an accept loop does when accept() fails.
//
// Out of descriptors (EMFILE, ENFILE) or memory, accept() fails at once for
// as long as the condition lasts, and the listening socket stays readable:
// retrying at once spins a core and floods the log. Every accept loop (SMTP,
// HTTP) waits instead, 10 ms doubling to 1 s while the failures last, and
// logs at most one line a second, counting the failures it did not log.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include <utility>  // before Asio, see delivery/upstream.hpp
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

namespace unsubrelay {

/// The pure part: how long to wait, and whether this failure gets a log line.
class AcceptBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds first_delay{10};
  static constexpr std::chrono::milliseconds max_delay{1000};
  static constexpr std::chrono::milliseconds log_interval{1000};

  struct Step {
    std::chrono::milliseconds delay;
    std::optional<std::size_t> log;  // set: log now; the failures not logged since the last line
  };

  Step failed(Clock::time_point now);
  void succeeded() { delay_ = std::chrono::milliseconds(0); }

 private:
  std::chrono::milliseconds delay_{0};
  std::optional<Clock::time_point> last_log_;
  std::size_t unlogged_ = 0;
};

/// The I/O part: logs (as "WHAT: accept failed: ...") and waits on the current executor.
class AcceptPause {
 public:
  explicit AcceptPause(std::string what) : what_(std::move(what)) {}
  boost::asio::awaitable<void> after_error(const boost::system::error_code& ec);
  void after_success() { backoff_.succeeded(); }

 private:
  std::string what_;
  AcceptBackoff backoff_;
};

}  // namespace unsubrelay
