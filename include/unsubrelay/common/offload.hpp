// offload.hpp: blocking disk and database work off the network threads.
//
// A spool commit is two fsyncs and a store transaction is one. Run on the
// io_context's two threads they queue behind each other and stall every
// session; run on a pool of their own, the fsyncs of many sessions overlap and
// the file system's journal commits them together (measured on this machine's
// ext4: 1,750 write+fsync+dir-fsync per second from one thread, 8,700 from
// eight).
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <type_traits>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
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

/// How work begun by offload_until says it has finished: exactly once, from
/// any thread, with nullptr or the exception that ended it.
using Resume = std::function<void(std::exception_ptr)>;

/// Runs f, then resume: with nullptr, or with the exception f threw (a
/// callback that must resume its caller exactly once, whatever happens in it).
template <class F>
void resume_after(const Resume& resume, F&& f) {
  try {
    f();
  } catch (...) {
    return resume(std::current_exception());
  }
  resume(nullptr);
}

/// Runs f(resume) on pool; the caller resumes on its own executor when resume
/// is called, which f may leave to whatever it hands resume on to (a group
/// commit's callback: the caller then waits for the commit holding no thread).
/// An exception thrown by f itself reaches the caller, as with offload.
template <class F>
boost::asio::awaitable<void> offload_until(boost::asio::thread_pool& pool, F f) {
  namespace asio = boost::asio;
  // A handler whose first argument is an exception_ptr rethrows it in the caller (use_awaitable).
  co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::exception_ptr)>(
      [&pool, &f](auto handler) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        Resume resume = [shared](std::exception_ptr e) {
          const auto ex = asio::get_associated_executor(*shared);
          asio::post(ex, [shared, e]() mutable { std::move(*shared)(e); });
        };
        asio::post(pool, [&f, resume]() {
          try {
            f(resume);
          } catch (...) {
            resume(std::current_exception());
          }
        });
      },
      asio::use_awaitable);
}

}  // namespace unsubrelay
