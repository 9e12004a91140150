// poll.hpp: waiting, in a coroutine, for a condition nothing signals.
//
// Shutdown waits for counts to reach zero (sessions open, attempts in flight,
// shards still draining) that are kept by other code, on other threads or
// strands, without a completion to await. Rather than a hand-rolled timer
// loop in each place, they look at the condition every 20 ms here.
#pragma once

#include <chrono>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace unsubrelay {

/// Resumes once done() holds (true) or give_up has passed (false). The timer
/// runs on executor, so done() is called where executor runs its handlers.
template <class Executor, class Done>
boost::asio::awaitable<bool> poll_until(Executor executor, Done done,
                                        std::chrono::steady_clock::time_point give_up =
                                            std::chrono::steady_clock::time_point::max()) {
  constexpr auto interval = std::chrono::milliseconds(20);
  boost::asio::steady_timer poll(executor);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= give_up) co_return false;
    poll.expires_after(interval);
    boost::system::error_code ignored;
    co_await poll.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
  }
  co_return true;
}

}  // namespace unsubrelay
