// accept_pause.cpp: back-off and rate-limited logging for failed accepts.
#include "unsubrelay/common/accept_pause.hpp"

#include <algorithm>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace unsubrelay {

AcceptBackoff::Step AcceptBackoff::failed(Clock::time_point now) {
  delay_ = delay_.count() == 0 ? first_delay : std::min(delay_ * 2, max_delay);
  Step step{delay_, std::nullopt};
  if (!last_log_ || now - *last_log_ >= log_interval) {
    step.log = unlogged_;
    unlogged_ = 0;
    last_log_ = now;
  } else {
    ++unlogged_;
  }
  return step;
}

boost::asio::awaitable<void> AcceptPause::after_error(const boost::system::error_code& ec) {
  const auto step = backoff_.failed(AcceptBackoff::Clock::now());
  if (step.log) {
    spdlog::warn("{}: accept failed: {}{}; pausing accepts for {} ms", what_, ec.message(),
                 *step.log ? fmt::format(" ({} more since the last report)", *step.log) : std::string(),
                 step.delay.count());
  }
  boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor, step.delay);
  boost::system::error_code wait_ec;
  co_await pause.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, wait_ec));
}

}  // namespace unsubrelay
