// https_fetch.cpp: one bounded HTTPS GET with Boost.Beast and OpenSSL.
//
// Each step is an asynchronous Beast operation run to completion on a private
// io_context; beast::tcp_stream's deadline (FetchLimits::timeout, set once for
// the whole exchange) ends whichever step is waiting when it passes, TLS
// handshake included. The host name lookup, which no Asio deadline can end
// (getaddrinfo cannot be cancelled), runs on a thread of its own that the
// fetch waits for until the same deadline. The allow-list is checked before
// anything else.
#include "unsubrelay/feedback/https_fetch.hpp"

#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/feedback/sns.hpp"

namespace unsubrelay::feedback {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

FetchResult failure(FetchError error, std::string detail) {
  FetchResult r;
  r.error = error;
  r.detail = std::move(detail);
  return r;
}

/// Starts one asynchronous step and runs the io_context until it completes.
template <class Start>
error_code run_step(asio::io_context& io, Start start) {
  error_code result = asio::error::would_block;
  start([&result](error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

/// The name (or IP address) the peer's certificate must carry: the URL's host.
bool expect_peer(SSL* ssl, const HttpsUrl& url, std::string& why) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (is_ip_literal(url.host)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str()) != 1) why = "bad IP literal";
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), url.host.size()) != 1 ||
        SSL_set_tlsext_host_name(ssl, url.host.c_str()) != 1)
      why = "bad host name";
  }
  return why.empty();
}

/// Host name lookups under way, abandoned at their deadline or not: each
/// holds a thread until the system resolver returns (resolv.conf bounds that).
/// Past this many, a fetch fails at once rather than start another.
constexpr int max_lookups = 8;
std::atomic<int> lookups{0};

struct Lookup {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  int rc = 0;
  std::vector<tcp::endpoint> endpoints;
};

void look_up(const std::shared_ptr<Lookup>& lookup, const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
  std::vector<tcp::endpoint> endpoints;
  for (const addrinfo* a = list; rc == 0 && a != nullptr; a = a->ai_next) {
    if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) || a->ai_addrlen > sizeof(sockaddr_in6)) continue;
    tcp::endpoint e;
    std::memcpy(e.data(), a->ai_addr, a->ai_addrlen);
    e.resize(a->ai_addrlen);
    endpoints.push_back(e);
  }
  if (list != nullptr) ::freeaddrinfo(list);
  {
    std::lock_guard lock(lookup->mutex);
    lookup->rc = rc;
    lookup->endpoints = std::move(endpoints);
    lookup->done = true;
  }
  lookup->done_cv.notify_all();
}

/// The URL host's addresses by the deadline. A numeric host is never looked
/// up; a name is, on a detached thread, left to finish alone when the
/// deadline passes first.
FetchError resolve(const HttpsUrl& url, std::chrono::steady_clock::time_point deadline,
                   std::vector<tcp::endpoint>& out, std::string& why) {
  if (is_ip_literal(url.host)) {
    out.emplace_back(asio::ip::make_address(url.host), static_cast<unsigned short>(std::stoi(url.port)));
    return FetchError::none;
  }
  if (lookups.fetch_add(1) >= max_lookups) {
    --lookups;
    why = fmt::format("{}: {} host name lookups under way already", url.host, max_lookups);
    return FetchError::resolve;
  }
  auto lookup = std::make_shared<Lookup>();
  try {
    std::thread([lookup, host = url.host, port = url.port] {
      look_up(lookup, host, port);
      --lookups;
    }).detach();
  } catch (...) {
    --lookups;
    throw;
  }
  std::unique_lock lock(lookup->mutex);
  if (!lookup->done_cv.wait_until(lock, deadline, [&] { return lookup->done; })) {
    why = fmt::format("{}: the host name lookup did not end in time", url.host);
    return FetchError::timeout;
  }
  if (lookup->rc != 0 || lookup->endpoints.empty()) {
    why = fmt::format("{}: {}", url.host, lookup->rc != 0 ? ::gai_strerror(lookup->rc) : "no IP address");
    return FetchError::resolve;
  }
  out = std::move(lookup->endpoints);
  return FetchError::none;
}

FetchError classify_io(const error_code& ec) {
  if (ec == beast::error::timeout) return FetchError::timeout;
  if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
    return FetchError::too_large;
  return FetchError::protocol;
}

FetchResult exchange(const HttpsUrl& url, const FetchOptions& options) {
  const auto deadline = std::chrono::steady_clock::now() + options.limits.timeout;
  if (!options.tls) return failure(FetchError::tls, "no TLS client context");
  asio::io_context io;
  beast::ssl_stream<beast::tcp_stream> stream(io, *options.tls);
  std::string why;
  if (!expect_peer(stream.native_handle(), url, why)) return failure(FetchError::tls, why);

  std::vector<tcp::endpoint> endpoints;
  if (const auto e = resolve(url, deadline, endpoints, why); e != FetchError::none) return failure(e, why);
  if (std::chrono::steady_clock::now() >= deadline) return failure(FetchError::timeout, "resolving took too long");

  auto& tcp_layer = beast::get_lowest_layer(stream);
  tcp_layer.expires_at(deadline);
  auto ec = run_step(io, [&](auto handler) { tcp_layer.async_connect(endpoints, std::move(handler)); });
  if (ec) return failure(ec == beast::error::timeout ? FetchError::timeout : FetchError::connect, ec.message());
  ec = run_step(io, [&](auto handler) { stream.async_handshake(asio::ssl::stream_base::client, std::move(handler)); });
  if (ec) return failure(ec == beast::error::timeout ? FetchError::timeout : FetchError::tls, ec.message());

  bhttp::request<bhttp::empty_body> request(bhttp::verb::get, url.target, 11);
  request.set(bhttp::field::host, url.port == "443" ? url.host : url.host + ":" + url.port);
  request.set(bhttp::field::user_agent, "unsubrelay");
  request.set(bhttp::field::connection, "close");
  ec = run_step(io, [&](auto handler) { bhttp::async_write(stream, request, std::move(handler)); });
  if (ec) return failure(classify_io(ec), ec.message());

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(options.limits.max_header_bytes));
  parser.body_limit(options.limits.max_body_bytes);
  ec = run_step(io, [&](auto handler) { bhttp::async_read(stream, buffer, parser, std::move(handler)); });
  if (ec) return failure(classify_io(ec), ec.message());

  auto response = parser.release();
  FetchResult out;
  out.status = static_cast<int>(response.result_int());
  if (out.status >= 300 && out.status < 400) {
    out.error = FetchError::redirect;
    out.detail = fmt::format("{} to {}", out.status, printable(std::string(response[bhttp::field::location]), 200));
  } else if (out.status != 200) {
    out.error = FetchError::http_status;
    out.detail = fmt::format("status {}", out.status);
  } else {
    out.body = std::move(response.body());
  }
  // No close_notify exchange: the answer is complete, and a peer that never
  // answers it must not hold us past the deadline.
  error_code ignored;
  tcp_layer.socket().close(ignored);
  return out;
}

}  // namespace

const char* describe(FetchError e) {
  switch (e) {
    case FetchError::none: return "ok";
    case FetchError::not_allowed: return "URL not allowed";
    case FetchError::resolve: return "host not found";
    case FetchError::connect: return "connection failed";
    case FetchError::tls: return "TLS handshake failed";
    case FetchError::timeout: return "timed out";
    case FetchError::redirect: return "redirect refused";
    case FetchError::http_status: return "HTTP error status";
    case FetchError::too_large: return "answer too large";
    case FetchError::protocol: return "bad HTTP answer";
    case FetchError::busy: return "too many fetches waiting";
  }
  return "?";
}

FetchResult https_get(const std::string& url, const FetchOptions& options) {
  const auto parsed = parse_https_url(url);
  if (!parsed || !url_allowed(url, options.allowed_prefixes))
    return failure(FetchError::not_allowed, "not under a cert_url_prefixes entry: " + printable(url, 200));
  try {
    return exchange(*parsed, options);
  } catch (const std::exception& e) {  // Asio/OpenSSL set-up failures (bad_alloc, context creation)
    return failure(FetchError::protocol, e.what());
  }
}

}  // namespace unsubrelay::feedback
