// connection.hpp: one SMTP connection's state, shared by the acceptor and the session I/O
// (private to src/smtp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "unsubrelay/smtp/server.hpp"

namespace unsubrelay::smtp {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::use_awaitable;
using boost::system::error_code;

inline std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Server::Connection {
  Connection(tcp::socket socket, tcp::endpoint remote, std::shared_ptr<ssl::context> tls)
      : socket(std::move(socket)),
        remote(std::move(remote)),
        tls_context(std::move(tls)),
        deadline(this->socket.get_executor(), asio::steady_timer::time_point::max()) {}

  tcp::socket socket;
  tcp::endpoint remote;  // the client, read once at accept (getpeername)
  std::shared_ptr<ssl::context> tls_context;  // the certificate in force at accept (SIGHUP swaps it for new ones)
  // Created at STARTTLS (or at accept for implicit TLS) only: its engine holds
  // two 17 KB record buffers, which idle plaintext sessions should not pay for.
  std::unique_ptr<ssl::stream<tcp::socket&>> tls_stream;
  asio::steady_timer deadline;  // the watchdog closes the socket when it passes
  bool tls = false;
  std::atomic<bool> in_data{false};  // read by the acceptor's thread too: a session in DATA is never evicted
  bool finished = false;
  bool timed_out = false;
  bool evicted = false;  // closed to make room for a new client (see Server::evict_idlest)
  // Read by the acceptor's thread when choosing whom to evict.
  std::atomic<std::int64_t> idle_since_ms{steady_ms()};
  std::atomic<bool> eviction_chosen{false};

  void expire_in(unsigned seconds) { deadline.expires_after(std::chrono::seconds(seconds)); }

  void close() {
    error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, error_code& ec) {
    std::size_t n = 0;  // no "co_return co_await": see client.cpp
    if (tls) {
      n = co_await tls_stream->async_read_some(buffer, asio::redirect_error(use_awaitable, ec));
    } else {
      n = co_await socket.async_read_some(buffer, asio::redirect_error(use_awaitable, ec));
    }
    co_return n;
  }

  asio::awaitable<void> write(std::string_view bytes, error_code& ec) {
    if (tls) {
      co_await asio::async_write(*tls_stream, asio::buffer(bytes), asio::redirect_error(use_awaitable, ec));
    } else {
      co_await asio::async_write(socket, asio::buffer(bytes), asio::redirect_error(use_awaitable, ec));
    }
  }
};

/// Runs one accepted connection from greeting to close (server.cpp).
asio::awaitable<void> serve_connection(Server& server, std::shared_ptr<Server::Connection> c, bool implicit_tls,
                                       std::string peer);

}  // namespace unsubrelay::smtp
