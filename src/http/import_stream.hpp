// import_stream.hpp: POST /api/v1/suppressions/import read as it arrives
// (private to src/http; included by server.cpp only, where Beast lives).
//
// The key is checked on the header, before a byte of the body is read, so a
// stranger cannot make the relay read or parse anything. The body (with
// Content-Length or chunked) then goes in pieces of piece_bytes through the
// same suppression::Importer the command line uses: the parser holds one
// record, the store gets a batch at a time, so memory is flat whatever the
// size, up to http.max_import_bytes. Parsing and the waits on the store run on
// the server's handler threads, never on the io threads that serve SMTP; at
// most max_running imports run at once so they never take all those threads.
// A body that stops short (over its limit, no byte for http.timeout_seconds,
// the connection lost, a broken chunk) keeps the complete rows read before
// and never the record being read (Importer::abandon).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/offload.hpp"
#include "unsubrelay/config/config.hpp"
#include "unsubrelay/http/service.hpp"
#include "unsubrelay/suppression/manage.hpp"

#include "json_response.hpp"

namespace unsubrelay::http::import_stream {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

/// Bytes handed to the parser at a time (what the command line reads at a time).
constexpr std::size_t piece_bytes = 64 * 1024;
/// Imports at once; more answer 503. Each holds a handler thread while a
/// piece is parsed or its batch waits for the store.
constexpr std::size_t max_running = 2;

/// What the server lends an import.
struct Context {
  Handler& service;
  asio::thread_pool& pool;  // the handler threads
  const config::Http& config;
  std::atomic<std::size_t>& running;
};

struct Outcome {
  Response response;
  bool keep_alive = false;  // the whole body was read: the connection may serve another request
};

/// One of the max_running places, held for an import's life.
class Place {
 public:
  explicit Place(std::atomic<std::size_t>& running) : running_(running), taken_(++running_ <= max_running) {}
  ~Place() { --running_; }
  Place(const Place&) = delete;
  Place& operator=(const Place&) = delete;
  bool taken() const { return taken_; }

 private:
  std::atomic<std::size_t>& running_;
  bool taken_;
};

inline Response over_limit(const config::Http& config) {
  return json_response(413, {{"error", fmt::format("the body is over http.max_import_bytes ({} bytes): split the "
                                                   "file, or raise the limit",
                                                   config.max_import_bytes)}});
}

inline Response busy() {
  auto out = json_response(503, {{"error", fmt::format("{} imports are running: try again when one is done",
                                                       max_running)}});
  out.headers.emplace_back("Retry-After", "60");
  return out;
}

/// Why a body stopped short, and the status the client gets if it can still read one.
inline std::pair<int, std::string> stop_reason(const boost::system::error_code& ec, const config::Http& config,
                                               std::uint64_t received) {
  if (ec == bhttp::error::body_limit) {
    return {413, fmt::format("the body is over http.max_import_bytes ({} bytes); the complete rows before the limit "
                             "were applied, the record across it was not",
                             config.max_import_bytes)};
  }
  const bool timeout = ec == beast::error::timeout;
  const int status = ec.category() == make_error_code(bhttp::error::bad_chunk).category() ? 400 : 408;
  return {status, fmt::format("the body stopped after {} bytes ({}); the complete rows before were applied, the "
                              "record being read was not",
                              received, timeout ? fmt::format("nothing for {} s", config.timeout_seconds)
                                                : ec.message())};
}

/// Reads body bytes into piece until it is full or the body ends; each read
/// waits at most http.timeout_seconds. Returns how many bytes piece holds.
template <typename Stream, typename Parser>
asio::awaitable<std::size_t> fill(Stream& stream, beast::flat_buffer& buffer, Parser& body,
                                  std::vector<char>& piece, unsigned timeout_seconds,
                                  boost::system::error_code& ec) {
  std::size_t filled = 0;
  while (filled < piece.size() && !body.is_done()) {
    body.get().body().data = piece.data() + filled;
    body.get().body().size = piece.size() - filled;
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(timeout_seconds));
    co_await bhttp::async_read_some(stream, buffer, body, asio::redirect_error(asio::use_awaitable, ec));
    filled = piece.size() - body.get().body().size;
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) break;
  }
  co_return filled;
}

/// Sends "100 Continue" when the client waits for it (curl does above 1 MB).
template <typename Stream>
asio::awaitable<void> send_continue(Stream& stream, const bhttp::request<bhttp::string_body>& head,
                                    unsigned timeout_seconds, boost::system::error_code& ec) {
  if (!beast::iequals(head[bhttp::field::expect], "100-continue")) co_return;
  bhttp::response<bhttp::empty_body> go{bhttp::status::continue_, 11};
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(timeout_seconds));
  co_await bhttp::async_write(stream, go, asio::redirect_error(asio::use_awaitable, ec));
}

/// Pushes the body into importer as it arrives; after the importer stopped
/// (a fatal error, the store) the rest is read and dropped, so the client
/// still gets its report. ec: why the body did not end (none when it did).
template <typename Stream, typename Parser>
asio::awaitable<std::uint64_t> pump(Stream& stream, beast::flat_buffer& buffer, Parser& body,
                                    suppression::Importer& importer, Context& ctx, boost::system::error_code& ec) {
  std::vector<char> piece(piece_bytes);
  std::uint64_t received = 0;
  bool going = true;
  while (!body.is_done() && !ec) {
    const auto filled = co_await fill(stream, buffer, body, piece, ctx.config.timeout_seconds, ec);
    received += filled;
    if (filled && going) {
      const std::string_view bytes(piece.data(), filled);
      going = co_await offload(ctx.pool, [&importer, bytes] { return importer.push(bytes); });
    }
  }
  co_return received;
}

/// The whole import: the key, the limits, the body, the report.
template <typename Stream>
asio::awaitable<Outcome> run(Stream& stream, beast::flat_buffer& buffer, bhttp::request_parser<bhttp::string_body>& head,
                             const Request& r, Context ctx) {
  if (auto refusal = ctx.service.admit_import(r)) co_return Outcome{std::move(*refusal), false};
  const auto length = head.content_length();
  if (length && *length > ctx.config.max_import_bytes) co_return Outcome{over_limit(ctx.config), false};
  Place place(ctx.running);
  if (!place.taken()) co_return Outcome{busy(), false};
  boost::system::error_code ec;
  co_await send_continue(stream, head.get(), ctx.config.timeout_seconds, ec);
  if (ec) co_return Outcome{{408, "text/plain; charset=utf-8", "request timeout\n", {}}, false};  // gone: nothing read
  bhttp::request_parser<bhttp::buffer_body> body{std::move(head)};
  body.body_limit(ctx.config.max_import_bytes);
  body.eager(true);
  auto importer = ctx.service.start_import(r);
  const auto received = co_await pump(stream, buffer, body, *importer, ctx, ec);
  if (!ec) {
    const auto report = co_await offload(ctx.pool, [&importer] { return importer->finish(); });
    co_return Outcome{Service::import_response(report), true};
  }
  const auto stop = stop_reason(ec, ctx.config, received);
  const auto report = co_await offload(ctx.pool, [&importer, &stop] { return importer->abandon(stop.second); });
  spdlog::info("http: import stopped for {}: {}: {} rows applied ({} new), {} bad rows", r.client_ip, stop.second,
               report.rows, report.added, report.bad_rows);
  co_return Outcome{Service::import_response(report, stop.first), false};
}

}  // namespace unsubrelay::http::import_stream
