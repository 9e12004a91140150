// server.cpp: Beast HTTP/1.1 and HTTPS server: one coroutine per connection, keep-alive.
#include "unsubrelay/http/server.hpp"

#include <map>
#include <mutex>
#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/accept_pause.hpp"
#include "unsubrelay/common/listener.hpp"
#include "unsubrelay/common/offload.hpp"
#include "unsubrelay/config/network_match.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/common/tls.hpp"
#include "unsubrelay/http/client_limits.hpp"

#include "import_stream.hpp"

namespace unsubrelay::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::use_awaitable;
using boost::system::error_code;

namespace {

/// At max_connections, a connection that has waited this long for its request
/// (a real client sends it at once; slowloris never finishes it) makes room.
constexpr std::int64_t evictable_after_ms = 1000;
constexpr std::size_t max_evicting = 32;  // evictions in flight: descriptors above the cap, briefly
constexpr auto eviction_poll = std::chrono::milliseconds(1);
constexpr auto full_poll = std::chrono::milliseconds(20);
constexpr auto tls_shutdown_timeout = std::chrono::seconds(2);
/// Threads that run Service::handle. A request may block on the store (an
/// unsubscribe waits for its commit) or on an SNS certificate fetch (up to
/// feedback.ses_sns.fetch_timeout_seconds): never on the io threads, which
/// also serve SMTP. At most this many requests are handled at once; the others
/// wait their turn with their connection open.
constexpr std::size_t handler_threads = 16;

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// One open connection as the acceptor sees it.
struct Slot {
  asio::any_io_executor executor;
  beast::tcp_stream* stream = nullptr;              // valid until finished; used on executor only
  bool finished = false;                            // on executor only
  std::atomic<std::int64_t> waiting_since_ms{-1};   // reading a request since then; -1: answering
  std::atomic<bool> evicting{false};
};

/// The HTTP status for a failed read: 431, 413, 400; -1 when the connection is gone.
int refusal_for(const error_code& ec) {
  if (!ec) return 0;
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return -1;
  if (ec == bhttp::error::header_limit) return 431;
  if (ec == bhttp::error::body_limit) return 413;
  if (ec.category() == make_error_code(bhttp::error::bad_target).category()) return 400;
  return -1;  // timeout, reset, eviction, TLS failure
}

const char* refusal_text(int status) {
  switch (status) {
    case 429: return "too many requests\n";
    case 413: return "body too large\n";
    case 431: return "header too large\n";
    default: return "bad request\n";
  }
}

}  // namespace

bool exempt_from_rate_limit(const config::Http& config, std::string_view target, const std::string& client) {
  const auto path = target.substr(0, target.find('?'));
  if (path == "/healthz") return true;
  return path == "/metrics" && config::in_networks(client, config.metrics_networks);
}

struct Server::Impl {
  Impl(asio::io_context& i, const config::Http& c, const config::Tls& t, Handler& s, std::size_t max)
      : io(i), config(c), tls_profile(t), service(s), max_connections(max) {}
  asio::io_context& io;
  SessionExecutors session_executors;  // unset: a strand on io
  const config::Http& config;
  const config::Tls& tls_profile;
  Handler& service;
  const std::size_t max_connections;
  TlsServerContext tls;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
  ClientLimits per_client{config.requests_per_minute};  // bounded, least recently used out (issue 22)
  std::atomic<std::size_t> active{0};
  std::atomic<std::size_t> evicting{0};
  std::mutex slots_mutex;
  std::set<std::shared_ptr<Slot>> slots;
  std::atomic<std::int64_t> last_full_log_ms{0};
  std::atomic<std::size_t> imports{0};  // streamed imports running (import_stream.hpp)
  asio::thread_pool handlers{handler_threads};  // declared last: joined first

  bool allow(const std::string& client) {
    return per_client.allow(client_bucket(client), ClientLimits::Clock::now());  // IPv6: per /64
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

  /// Service::handle on the handler pool; a throw is a 500.
  asio::awaitable<Response> handle(const Request& r) {
    auto response = co_await offload(handlers, [this, &r]() -> Response {
      try {
        return service.handle(r);
      } catch (const std::exception& e) {
        spdlog::error("http: {} {}: {}", r.method, printable(r.target, 100), e.what());
        return {500, "text/plain; charset=utf-8", "internal error\n", {}};
      }
    });
    co_return response;  // not `co_return co_await`: g++ 12 miscompiles it (see smtp/client.cpp)
  }

  /// The response to one request (or to a refused one: 400, 413, 431, 429).
  asio::awaitable<bhttp::response<bhttp::string_body>> answer(bhttp::request<bhttp::string_body>& request,
                                                              int refusal, const std::string& why,
                                                              const asio::ip::address& peer, bool tls) {
    Request r;
    if (!refusal) {
      r.client_ip = client_ip(peer, std::string(request["X-Forwarded-For"]));
      const auto target = request.target();
      if (!exempt_from_rate_limit(config, std::string_view(target.data(), target.size()), r.client_ip) &&
          !allow(r.client_ip)) {
        refusal = 429;
      }
    }
    Response response;
    if (refusal) {
      response = refused(refusal, why, peer);
    } else {
      fill_request(r, request);
      r.body = std::move(request.body());
      response = co_await handle(r);
    }
    co_return to_beast(std::move(response), request, refusal, r.method == "HEAD", tls);
  }

  static Response refused(int refusal, const std::string& why, const asio::ip::address& peer) {
    spdlog::info("http: {} from {}: {}", refusal, config::unmap(peer).to_string(), refusal == 429 ? "rate limit" : why);
    Response response{refusal, "text/plain; charset=utf-8", refusal_text(refusal), {}};
    if (refusal == 429) response.headers.emplace_back("Retry-After", "60");
    return response;
  }

  /// Everything but the body and client_ip.
  static void fill_request(Request& r, const bhttp::request<bhttp::string_body>& request) {
    r.method = std::string(request.method_string());
    r.target = std::string(request.target());
    r.content_type = std::string(request[bhttp::field::content_type]);
    r.authorization = std::string(request[bhttp::field::authorization]);
    r.user_agent = std::string(request[bhttp::field::user_agent]);
    r.origin = std::string(request[bhttp::field::origin]);  // CORS (http/page_api.cpp)
    r.host = std::string(request[bhttp::field::host]);
  }

  /// POST /api/v1/suppressions/import, its body streamed (import_stream.hpp);
  /// parser has read the header only.
  template <typename Stream>
  asio::awaitable<bhttp::response<bhttp::string_body>> import_answer(
      Stream& stream, beast::flat_buffer& buffer, bhttp::request_parser<bhttp::string_body>& parser,
      const asio::ip::address& peer, bool tls) {
    const bhttp::request<bhttp::empty_body> head(parser.get().base());  // the parser is moved from below
    Request r;
    r.client_ip = client_ip(peer, std::string(head["X-Forwarded-For"]));
    fill_request(r, parser.get());
    import_stream::Outcome outcome;
    if (!allow(r.client_ip)) {
      outcome.response = refused(429, "", peer);
    } else {
      import_stream::Context context{service, handlers, config, imports};  // no temporaries in a co_await
      outcome = co_await import_stream::run(stream, buffer, parser, r, context);
    }
    const int refusal = outcome.keep_alive ? 0 : outcome.response.status;
    co_return to_beast(std::move(outcome.response), head, refusal, false, tls);
  }

  template <typename Body>
  bhttp::response<bhttp::string_body> to_beast(Response response, const bhttp::request<Body>& request,
                                               int refusal, bool head_request, bool tls) const {
    bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(response.status),
                                            request.version() ? request.version() : 11};
    out.set(bhttp::field::server, "unsubrelay");
    out.set(bhttp::field::content_type, response.content_type);
    for (const auto& [k, v] : response.headers) out.set(k, v);
    if (tls && config.hsts_max_age_seconds > 0) {
      out.set(bhttp::field::strict_transport_security, fmt::format("max-age={}", config.hsts_max_age_seconds));
    }
    const bool head = !refusal && head_request;
    out.body() = head ? std::string() : std::move(response.body);
    out.keep_alive(!refusal && request.keep_alive());
    out.prepare_payload();
    if (head) out.content_length(response.body.size());
    return out;
  }

  static bool streamed(const bhttp::request<bhttp::string_body>& request) {
    const auto method = request.method_string();
    const auto target = request.target();
    return is_streamed_import(std::string_view(method.data(), method.size()),
                              std::string_view(target.data(), target.size()));
  }

  /// Every body but the import's: http.max_body_bytes (413 above it).
  error_code limit_body(bhttp::request_parser<bhttp::string_body>& parser) const {
    const auto length = parser.content_length();
    if (length && *length > config.max_body_bytes) return bhttp::error::body_limit;
    parser.body_limit(config.max_body_bytes);  // a chunked body's
    return {};
  }

  /// Requests and responses on one connection until it closes, times out or is evicted.
  template <typename Stream>
  asio::awaitable<void> serve(Stream& stream, Slot& slot, const asio::ip::address& peer, bool tls) {
    beast::flat_buffer buffer;
    error_code ec;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(config.max_header_bytes));
      // The import's limit lets its Content-Length past the header; every other body's is set after it.
      parser.body_limit(std::max<std::uint64_t>(config.max_body_bytes, config.max_import_bytes));
      slot.waiting_since_ms = steady_ms();
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(config.timeout_seconds));
      co_await bhttp::async_read_header(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
      if (!ec && streamed(parser.get())) {
        slot.waiting_since_ms = -1;
        auto out = co_await import_answer(stream, buffer, parser, peer, tls);
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(config.timeout_seconds));
        co_await bhttp::async_write(stream, out, asio::redirect_error(use_awaitable, ec));
        if (ec || !out.keep_alive()) co_return;
        continue;
      }
      if (!ec) ec = limit_body(parser);
      if (!ec) co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
      slot.waiting_since_ms = -1;
      const int refusal = refusal_for(ec);
      if (refusal < 0) {
        if (slot.evicting) spdlog::debug("http: {} closed: max_connections reached", config::unmap(peer).to_string());
        co_return;
      }
      // No temporaries in a co_await's full expression: g++ 12 destroys them twice.
      const std::string why = ec ? ec.message() : std::string();
      auto out = co_await answer(parser.get(), refusal, why, peer, tls);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(config.timeout_seconds));
      co_await bhttp::async_write(stream, out, asio::redirect_error(use_awaitable, ec));
      if (ec || !out.keep_alive()) co_return;
    }
  }

  asio::awaitable<void> run_plain(tcp::socket socket, std::shared_ptr<Slot> slot) {
    error_code ec;
    const auto peer = socket.remote_endpoint(ec).address();
    beast::tcp_stream stream(std::move(socket));
    slot->stream = &stream;
    co_await serve(stream, *slot, peer, false);
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    slot->finished = true;  // before the stream goes: an eviction posted later must not touch it
  }

  asio::awaitable<void> run_tls(tcp::socket socket, std::shared_ptr<Slot> slot) {
    error_code ec;
    const auto peer = socket.remote_endpoint(ec).address();
    const auto context = tls.get();  // the certificate in force at accept; SIGHUP swaps it for new connections
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *context);
    slot->stream = &beast::get_lowest_layer(stream);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(config.timeout_seconds));
    co_await stream.async_handshake(ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      spdlog::debug("https: TLS handshake failed from {}: {}", config::unmap(peer).to_string(), ec.message());
    } else {
      co_await serve(stream, *slot, peer, true);
      beast::get_lowest_layer(stream).expires_after(tls_shutdown_timeout);
      co_await stream.async_shutdown(asio::redirect_error(use_awaitable, ec));
    }
    slot->finished = true;
  }

  asio::awaitable<void> run(tcp::socket socket, std::shared_ptr<Slot> slot, bool tls_listener) {
    try {
      if (tls_listener) {
        co_await run_tls(std::move(socket), slot);
      } else {
        co_await run_plain(std::move(socket), slot);
      }
    } catch (const std::exception& e) {
      spdlog::error("http: connection error: {}", e.what());
    }
    slot->finished = true;
    {
      std::lock_guard lock(slots_mutex);
      slots.erase(slot);
    }
    if (slot->evicting) --evicting;
    --active;
  }

  /// Closes the connection that has waited longest for its request, if it has
  /// waited evictable_after_ms or more. False: nobody to evict.
  bool evict_longest_waiting() {
    std::shared_ptr<Slot> victim;
    std::int64_t oldest = steady_ms() - evictable_after_ms;
    {
      std::lock_guard lock(slots_mutex);
      for (const auto& slot : slots) {
        const auto since = slot->waiting_since_ms.load();
        if (!slot->evicting && since >= 0 && since <= oldest) {
          oldest = since;
          victim = slot;
        }
      }
      if (!victim) return false;
      victim->evicting = true;
      ++evicting;
    }
    asio::post(victim->executor, [this, victim] {
      if (victim->finished) return;  // run() counts it down
      if (victim->waiting_since_ms < 0) {  // its request came in meanwhile: let it be answered
        victim->evicting = false;
        --evicting;
        return;
      }
      victim->stream->cancel();
    });
    return true;
  }

  /// Before each accept: the connections not being evicted must be at most
  /// max_connections (the one accepted last may have made them one more). At
  /// the cap, the one that has waited longest for its request makes room; if
  /// none has waited long enough, accepting waits (new clients queue in the
  /// kernel's listen backlog, which costs no descriptor). So eviction happens
  /// only for a client that is already there.
  asio::awaitable<void> make_room() {
    asio::steady_timer wait(co_await asio::this_coro::executor);
    while (active - evicting > max_connections) {
      if (evicting < max_evicting && evict_longest_waiting()) continue;
      if (evicting == 0) log_full();
      // An evicted connection closes within a millisecond or so: look again soon.
      wait.expires_after(evicting > 0 ? eviction_poll : full_poll);
      error_code ec;
      co_await wait.async_wait(asio::redirect_error(use_awaitable, ec));
    }
  }

  void log_full() {
    const auto now = steady_ms();
    auto last = last_full_log_ms.load();
    if (now - last < 1000 || !last_full_log_ms.compare_exchange_strong(last, now)) return;
    spdlog::warn("http: max_connections ({}) reached and no connection has waited {} ms for its request: "
                 "new connections wait", max_connections, evictable_after_ms);
  }

  asio::awaitable<void> accept_loop(std::shared_ptr<tcp::acceptor> acceptor, bool tls_listener) {
    AcceptPause pause(tls_listener ? "https" : "http");
    for (;;) {
      co_await make_room();
      tcp::socket socket(session_executors ? session_executors() : asio::make_strand(io));
      error_code ec;
      co_await acceptor->async_accept(socket, asio::redirect_error(use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      if (ec) {
        co_await pause.after_error(ec);
        continue;
      }
      pause.after_success();
      ++active;
      auto slot = std::make_shared<Slot>();
      slot->executor = socket.get_executor();
      slot->waiting_since_ms = steady_ms();
      {
        std::lock_guard lock(slots_mutex);
        slots.insert(slot);
      }
      asio::co_spawn(slot->executor, run(std::move(socket), slot, tls_listener), asio::detached);
    }
  }

  std::string listen(const config::Endpoint& ep, bool tls_listener) {
    std::string error;
    auto acceptor = open_listener(io, ep, tls_listener ? "https" : "http", error);
    if (!acceptor) return error;
    acceptors.push_back(acceptor);
    spdlog::info("{} listening on {}", tls_listener ? "HTTPS" : "HTTP", ep.to_string());
    if (!tls_listener && !ep.host.starts_with("127.") && ep.host != "::1") {
      spdlog::warn("http: plain HTTP on {}: mailbox providers want https: unsubscribe links; use http.tls "
                   "(http.listen_tls) or a TLS proxy in front (docs/tls.md)", ep.to_string());
    }
    asio::co_spawn(io, accept_loop(acceptor, tls_listener), asio::detached);
    return {};
  }
};

Server::Server(asio::io_context& io, const config::Http& config, const config::Tls& tls, Handler& service,
               std::size_t max_connections)
    : impl_(std::make_unique<Impl>(io, config, tls, service, max_connections)) {}

Server::~Server() = default;

std::string Server::start() {
  if (impl_->config.tls) {
    if (auto err = impl_->tls.load(*impl_->config.tls, impl_->tls_profile, "http.tls"); !err.empty()) return err;
  }
  spdlog::info("http: at most {} connections (http.max_connections and the descriptor budget)",
               impl_->max_connections);
  for (const auto& ep : impl_->config.listen) {
    if (auto err = impl_->listen(ep, false); !err.empty()) return err;
  }
  for (const auto& ep : impl_->config.listen_tls) {
    if (auto err = impl_->listen(ep, true); !err.empty()) return err;
  }
  return {};
}

std::string Server::reload_tls(const config::Http& fresh) {
  if (!fresh.tls || !impl_->config.tls) return {};
  return impl_->tls.load(*fresh.tls, impl_->tls_profile, "http.tls");
}

std::size_t Server::active_connections() const { return impl_->active.load(); }

void Server::set_session_executors(SessionExecutors executors) { impl_->session_executors = std::move(executors); }

void Server::stop() {
  for (auto& a : impl_->acceptors) {
    asio::post(a->get_executor(), [a] {
      boost::system::error_code ec;
      a->close(ec);
    });
  }
}

}  // namespace unsubrelay::http
