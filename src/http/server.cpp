// server.cpp: Beast HTTP/1.1 server: one coroutine per connection, keep-alive.
#include "unsubrelay/http/server.hpp"

#include <map>
#include <mutex>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/listener.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/delivery/rate_limit.hpp"

namespace unsubrelay::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using asio::use_awaitable;

struct Server::Impl {
  Impl(asio::io_context& i, const config::Http& c, Service& s) : io(i), config(c), service(s) {}
  asio::io_context& io;
  const config::Http& config;
  Service& service;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
  std::mutex limits_mutex;
  std::map<std::string, delivery::RateLimit> per_client;

  bool allow(const std::string& client) {
    std::lock_guard lock(limits_mutex);
    if (per_client.size() > 100000) per_client.clear();  // bounded memory under a spray of addresses
    const double rate = config.requests_per_minute / 60.0;
    auto it = per_client.try_emplace(client, rate, std::max(1.0, rate * 10)).first;
    return it->second.take(delivery::RateLimit::Clock::now()) == delivery::RateLimit::Clock::duration::zero();
  }

  /// X-Forwarded-For is believed only from configured proxies; then the
  /// last address that is not a trusted proxy is the client.
  std::string client_ip(const asio::ip::address& peer, std::string_view forwarded) const {
    auto trusted = [&](const asio::ip::address& a) {
      for (const auto& n : config.trusted_proxies) {
        if (n.contains(a)) return true;
      }
      return false;
    };
    std::string client = config::unmap(peer).to_string();
    if (!trusted(peer) || forwarded.empty()) return client;
    while (!forwarded.empty()) {
      const auto comma = forwarded.rfind(',');
      const auto item = trim(comma == std::string_view::npos ? forwarded : forwarded.substr(comma + 1));
      forwarded = comma == std::string_view::npos ? std::string_view() : forwarded.substr(0, comma);
      boost::system::error_code ec;
      const auto a = asio::ip::make_address(std::string(item), ec);
      if (ec) break;
      client = config::unmap(a).to_string();
      if (!trusted(a)) break;
    }
    return client;
  }

  asio::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    boost::system::error_code ec;
    const auto peer = stream.socket().remote_endpoint(ec).address();
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(config.max_header_bytes));
      parser.body_limit(config.max_body_bytes);
      stream.expires_after(std::chrono::seconds(config.timeout_seconds));
      co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
      if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof) break;
      int refusal = 0;
      if (ec == bhttp::error::header_limit) refusal = 431;
      else if (ec == bhttp::error::body_limit) refusal = 413;
      else if (ec) refusal = 400;
      auto request = parser.release();
      Request r;
      if (!refusal) {
        r.client_ip = client_ip(peer, std::string(request["X-Forwarded-For"]));
        if (!allow(r.client_ip)) refusal = 429;
      }
      Response response;
      if (refusal) {
        spdlog::info("http: {} from {}: {}", refusal, config::unmap(peer).to_string(), ec ? ec.message() : "rate limit");
        response = {refusal, "text/plain; charset=utf-8",
                    refusal == 429 ? "too many requests\n" : refusal == 413 ? "body too large\n"
                    : refusal == 431                       ? "header too large\n"
                                                           : "bad request\n",
                    {}};
        if (refusal == 429) response.headers.emplace_back("Retry-After", "60");
      } else {
        r.method = std::string(request.method_string());
        r.target = std::string(request.target());
        r.content_type = std::string(request[bhttp::field::content_type]);
        r.authorization = std::string(request[bhttp::field::authorization]);
        r.user_agent = std::string(request[bhttp::field::user_agent]);
        r.body = std::move(request.body());
        try {
          response = service.handle(r);
        } catch (const std::exception& e) {
          spdlog::error("http: {} {}: {}", r.method, printable(r.target, 100), e.what());
          response = {500, "text/plain; charset=utf-8", "internal error\n", {}};
        }
      }
      bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(response.status), request.version() ? request.version() : 11};
      out.set(bhttp::field::server, "unsubrelay");
      out.set(bhttp::field::content_type, response.content_type);
      for (const auto& [k, v] : response.headers) out.set(k, v);
      const bool head = !refusal && r.method == "HEAD";
      out.body() = head ? std::string() : std::move(response.body);
      out.keep_alive(!refusal && request.keep_alive());
      out.prepare_payload();
      if (head) out.content_length(response.body.size());
      stream.expires_after(std::chrono::seconds(config.timeout_seconds));
      co_await bhttp::async_write(stream, out, asio::redirect_error(use_awaitable, ec));
      if (ec || !out.keep_alive()) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }
};

Server::Server(asio::io_context& io, const config::Http& config, Service& service)
    : impl_(std::make_unique<Impl>(io, config, service)) {}

Server::~Server() = default;

std::string Server::start() {
  for (const auto& ep : impl_->config.listen) {
    std::string error;
    auto acceptor = open_listener(impl_->io, ep, "http", error);
    if (!acceptor) return error;
    impl_->acceptors.push_back(acceptor);
    spdlog::info("HTTP listening on {}", ep.to_string());
    asio::co_spawn(
        impl_->io,
        [impl = impl_.get(), acceptor]() -> asio::awaitable<void> {
          for (;;) {
            tcp::socket socket(asio::make_strand(impl->io));
            boost::system::error_code aec;
            co_await acceptor->async_accept(socket, asio::redirect_error(use_awaitable, aec));
            if (!acceptor->is_open()) co_return;
            if (aec) continue;
            asio::co_spawn(socket.get_executor(), impl->session(std::move(socket)), asio::detached);
          }
        },
        asio::detached);
  }
  return {};
}

void Server::stop() {
  for (auto& a : impl_->acceptors) {
    asio::post(a->get_executor(), [a] {
      boost::system::error_code ec;
      a->close(ec);
    });
  }
}

}  // namespace unsubrelay::http
