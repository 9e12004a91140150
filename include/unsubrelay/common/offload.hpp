// offload.hpp: blocking disk and database work off the network threads.
//
// A spool commit is two fsyncs and a store transaction is one. Run on the
// io_context's two threads they queue behind each other and stall every
// session; run on a pool of their own, the fsyncs of many sessions overlap and
// the file system's journal commits them together (measured on this machine's
// ext4: 1,750 write+fsync+dir-fsync per second from one thread, 8,700 from
// eight).
#pragma once

#include <type_traits>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace unsubrelay {

namespace detail {
template <class F>
boost::asio::awaitable<std::invoke_result_t<F&>> call_on_pool(F* f) {
  if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
    (*f)();
    co_return;
  } else {
    auto result = (*f)();
    co_return result;  // not `co_return co_await`: g++ 12 miscompiles it (see smtp/client.cpp)
  }
}
}  // namespace detail

/// Runs f on pool; the caller resumes on its own executor with f's result
/// (or its exception). f must not touch state owned by the caller's strand.
template <class F>
boost::asio::awaitable<std::invoke_result_t<F&>> offload(boost::asio::thread_pool& pool, F f) {
  if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
    co_await boost::asio::co_spawn(pool, detail::call_on_pool(&f), boost::asio::use_awaitable);
  } else {
    auto result = co_await boost::asio::co_spawn(pool, detail::call_on_pool(&f), boost::asio::use_awaitable);
    co_return result;
  }
}

}  // namespace unsubrelay
