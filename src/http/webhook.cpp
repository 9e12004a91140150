// webhook.cpp: event delivery to HTTP(S) receivers with Beast, retries, cursors.
#include "unsubrelay/http/webhook.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/json.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/common/tls.hpp"
#include "unsubrelay/http/event_stream.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

struct WebhookUrl {
  bool tls = false;
  std::string host, port, target;
};

namespace {

using Url = WebhookUrl;

std::optional<Url> parse_url(const std::string& url) {
  Url u;
  std::string rest;
  if (url.starts_with("https://")) {
    u.tls = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return std::nullopt;
  }
  const auto slash = rest.find('/');
  const auto authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  const auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']') == std::string::npos) {
    u.host = authority.substr(0, colon);
    u.port = authority.substr(colon + 1);
  } else {
    u.host = authority;
    u.port = u.tls ? "443" : "80";
  }
  if (u.host.empty()) return std::nullopt;
  return u;
}

/// One POST; returns the status code, or 0 and why on a network failure.
int post(const Url& url, asio::ssl::context* tls, const std::string& body, const std::string& signature,
         long long event_id, std::size_t count, std::string& why) {
  try {
    asio::io_context io;
    tcp::resolver resolver(io);
    const auto endpoints = resolver.resolve(url.host, url.port);
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, url.target, 11};
    req.set(bhttp::field::host, url.host);
    req.set(bhttp::field::user_agent, "unsubrelay-webhook");
    req.set(bhttp::field::content_type, "application/json");
    req.set("X-Unsubrelay-Signature", signature);
    req.set("X-Unsubrelay-Event-Id", std::to_string(event_id));  // a batch: its last event's
    req.set("X-Unsubrelay-Event-Count", std::to_string(count));
    req.body() = body;
    req.prepare_payload();
    bhttp::response<bhttp::string_body> res;
    beast::flat_buffer buffer;
    if (url.tls) {
      if (tls == nullptr) throw std::runtime_error("no TLS client context");
      asio::ssl::stream<beast::tcp_stream> stream(io, *tls);  // the profile, the system CAs (run.cpp)
      SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str());
      stream.set_verify_callback(asio::ssl::host_name_verification(url.host));
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
      beast::get_lowest_layer(stream).connect(endpoints);
      stream.handshake(asio::ssl::stream_base::client);
      bhttp::write(stream, req);
      bhttp::read(stream, buffer, res);
    } else {
      beast::tcp_stream stream(io);
      stream.expires_after(std::chrono::seconds(10));
      stream.connect(endpoints);
      bhttp::write(stream, req);
      bhttp::read(stream, buffer, res);
    }
    return res.result_int();
  } catch (const std::exception& e) {
    why = e.what();
    return 0;
  }
}

}  // namespace

std::string webhook_signature(const std::string& secret, const std::string& body) {
  return "sha256=" + hex(token::hmac_sha256(secret, body));
}

void WebhookSender::pause(std::chrono::milliseconds d) const {
  for (auto end = std::chrono::steady_clock::now() + d; !stopping_ && std::chrono::steady_clock::now() < end;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

WebhookSender::WebhookSender(const std::vector<config::Webhook>& hooks, std::shared_ptr<asio::ssl::context> tls,
                             store::Store& store, std::string holder, std::string state_dir)
    : tls_(std::move(tls)), store_(store), holder_(std::move(holder)), state_dir_(std::move(state_dir)) {
  for (std::size_t i = 0; i < hooks.size(); ++i) {
    std::ifstream in(hooks[i].secret_file);
    std::string secret;
    std::getline(in, secret);
    threads_.emplace_back([this, i, hook = hooks[i], secret] {
      // Nothing a receiver or an event holds may end the relay: log, wait, start over.
      while (!stopping_) {
        try {
          run(i, hook, secret);
          return;
        } catch (const std::exception& e) {
          spdlog::error("webhook {}: {}; restarting in 5 s", printable(hook.url, 100), e.what());
          pause(std::chrono::seconds(5));
        }
      }
    });
  }
}

WebhookSender::~WebhookSender() { stop(); }

void WebhookSender::stop() {
  stopping_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::optional<long long> WebhookSender::start_position(const std::string& name, std::size_t index) {
  const auto stored = store_.cursor(name);
  if (!stored) return std::nullopt;
  if (*stored >= 0) return *stored;
  // This relay's cursor file from an older version; else events from now on,
  // not the whole history (`unsubrelay export` gives that).
  long long cursor = 0;
  std::ifstream in(fmt::format("{}/{}.cursor", state_dir_, index));
  if (!(in >> cursor)) {
    cursor = 0;
    for (;;) {
      const auto page = store_.events_since(0, cursor, 1000);
      if (!page) return std::nullopt;
      if (page->empty()) break;
      cursor = page->back().id;
    }
  }
  if (!store_.set_cursor(name, cursor)) return std::nullopt;
  spdlog::info("{}: first start, sending the events after id {}", printable(name, 110), cursor);
  return cursor;
}

/// The fleet's lease on one receiver (store::Store::take_lease), renewed when
/// half of it is gone; between renewals this relay sends freely.
class WebhookLease {
 public:
  WebhookLease(store::Store& store, std::string name, std::string holder, std::string url, long long ttl)
      : store_(store), name_(std::move(name)), holder_(std::move(holder)), url_(std::move(url)), ttl_(ttl) {}

  bool hold() {
    const auto now = static_cast<long long>(std::time(nullptr));
    if (leader_ && now < held_until_ - ttl_ / 2) return true;
    const bool was = leader_;
    leader_ = store_.take_lease(name_, holder_, now, ttl_);
    if (leader_) held_until_ = now + ttl_;
    if (leader_ != was || !decided_) {  // the first answer is logged either way: an operator sees which relay sends
      decided_ = true;
      spdlog::info("webhook {}: {} sender for this fleet", printable(url_, 100),
                   leader_ ? "this relay is now the" : "another relay is now the");
    }
    return leader_;
  }

 private:
  store::Store& store_;
  std::string name_, holder_, url_;
  long long ttl_;
  long long held_until_ = 0;
  bool leader_ = false;
  bool decided_ = false;
};

/// One receiver's reading: the stored position, how far this relay has read,
/// and the batch of wanted events read since the position.
struct WebhookSender::Stream {
  using clock = std::chrono::steady_clock;
  long long cursor = -1;   // everything up to it was accepted (or not wanted)
  long long stored = -1;   // the cursor as last stored (at most once a second while events flow)
  clock::time_point stored_at;
  long long scanned = -1;  // read: the batch holds what was wanted of it
  std::vector<store::StoredEvent> batch;
  clock::time_point batch_started;
  long long gap_id = -1;  // a missing id (event_stream.hpp) and since when
  clock::time_point gap_since;
};

std::optional<bool> WebhookSender::read_more(const config::Webhook& hook, const EventFilter& filter, Stream& s) {
  // Enough for the batch's room even when most events are not wanted, not so many that a
  // full batch leaves most of the page read for nothing (the read holds SQLite's lock).
  const std::size_t limit = std::clamp<std::size_t>((hook.batch_size - s.batch.size()) * 4, 100, 1000);
  const auto page = store_.events_since(0, s.scanned, limit);
  if (!page) return std::nullopt;
  const auto take = settled_count(*page, s.scanned, [&](long long missing, const store::StoredEvent&) {
    if (missing != s.gap_id) s.gap_id = missing, s.gap_since = Stream::clock::now();
    return Stream::clock::now() - s.gap_since < std::chrono::seconds(10);
  });
  for (std::size_t i = 0; i < take && s.batch.size() < hook.batch_size; ++i) {
    s.scanned = (*page)[i].id;
    if (!filter.wants((*page)[i].event.action)) continue;
    if (s.batch.empty()) s.batch_started = Stream::clock::now();
    s.batch.push_back((*page)[i]);
  }
  return take < limit;  // caught up: nothing more to read now
}

void WebhookSender::run(std::size_t index, config::Webhook hook, std::string secret) {
  const auto url = parse_url(hook.url);
  if (!url) return;
  std::string why;
  const auto filter = hook.events.empty() ? EventFilter::subscription() : EventFilter::of(hook.events, why);
  if (!filter) {
    spdlog::error("webhook {}: {}", printable(hook.url, 100), why);
    return;
  }
  const auto name = "webhook " + hook.url;  // lease and cursor, shared by every relay sending there
  WebhookLease lease(store_, name, holder_, hook.url, static_cast<long long>(hook.lease_seconds));
  const std::function<bool()> hold = [&] { return lease.hold(); };
  Stream s;
  // The position is stored at most once a second while batches flow, and within 200 ms when
  // the receiver has caught up (a trickle: at once): a store write (an fsync on SQLite) per
  // batch competed with the mail path's. A crash resends at most that much (at least once).
  using std::chrono::milliseconds;
  const auto keep = [&](milliseconds at_most_every) {
    if (s.cursor == s.stored || Stream::clock::now() - s.stored_at < at_most_every) return;
    if (store_.set_cursor(name, s.cursor)) {
      s.stored = s.cursor;
      s.stored_at = Stream::clock::now();
    } else {
      spdlog::warn("webhook {}: cannot store the position ({}): events after {} may be sent again",
                   printable(hook.url, 100), store_.last_error(), s.stored);
    }
  };
  auto backoff = std::chrono::milliseconds(1000);
  while (!stopping_) {
    if (!hold()) {
      s = Stream{};  // another relay sends: start again from the stored position when this one leads again
      pause(std::chrono::milliseconds(1000));
      continue;
    }
    if (s.cursor < 0) {
      const auto start = start_position(name, index);
      if (!start) {
        pause(std::chrono::milliseconds(1000));
        continue;
      }
      s = Stream{};
      s.cursor = s.stored = s.scanned = *start;
    }
    std::optional<bool> caught_up = false;
    if (s.batch.size() < hook.batch_size && !(caught_up = read_more(hook, *filter, s))) {
      pause(std::chrono::milliseconds(500));  // the store failed: try again
      continue;
    }
    if (s.batch.empty()) {
      s.cursor = s.scanned;  // nothing wanted so far: a restart need not read it again
      keep(*caught_up ? milliseconds(200) : milliseconds(1000));
      if (*caught_up) pause(std::chrono::milliseconds(200));
      continue;
    }
    const bool full = s.batch.size() >= hook.batch_size;
    if (!full && *caught_up && Stream::clock::now() - s.batch_started < std::chrono::milliseconds(hook.batch_ms)) {
      pause(std::chrono::milliseconds(std::min(100u, hook.batch_ms)));
      continue;
    }
    if (!deliver(hook, *url, secret, s.batch, backoff, hold)) {
      if (stopping_) break;
      s = Stream{};  // another relay took over: it resumes from the stored position
      continue;
    }
    s.batch.clear();
    s.cursor = s.scanned;
    keep(*caught_up ? milliseconds(200) : milliseconds(1000));
  }
  if (s.cursor >= 0 && hold()) keep(milliseconds(0));  // stopping: what was accepted is not sent again
}

bool WebhookSender::deliver(const config::Webhook& hook, const WebhookUrl& url, const std::string& secret,
                            const std::vector<store::StoredEvent>& batch, std::chrono::milliseconds& backoff,
                            const std::function<bool()>& hold) {
  std::string body;
  if (hook.batch_size == 1) {
    body = json_text(event_json(batch.front(), true));  // the body receivers got before batching: one object
  } else {
    auto array = nlohmann::json::array();
    for (const auto& e : batch) array.push_back(event_json(e, true));
    body = json_text(array);
  }
  const auto signature = webhook_signature(secret, body);
  while (!stopping_ && hold()) {
    std::string why;
    const int status = post(url, tls_.get(), body, signature, batch.back().id, batch.size(), why);
    if (status >= 200 && status < 300) {
      backoff = std::chrono::milliseconds(1000);
      return true;
    }
    spdlog::warn("webhook {}: event {}{} not accepted ({}); retry in {} s", printable(hook.url, 100),
                 batch.front().id, batch.size() > 1 ? fmt::format("-{}", batch.back().id) : std::string(),
                 status ? fmt::format("HTTP {}", status) : why, backoff.count() / 1000);
    pause(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(300000));
  }
  return false;
}

}  // namespace unsubrelay::http
