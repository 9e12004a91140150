// webhook.cpp: event delivery to HTTP(S) receivers with Beast, retries, cursors.
#include "unsubrelay/http/webhook.hpp"

#include <openssl/ssl.h>

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
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

namespace {

struct Url {
  bool tls = false;
  std::string host, port, target;
};

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
         long long event_id, std::string& why) {
  try {
    asio::io_context io;
    tcp::resolver resolver(io);
    const auto endpoints = resolver.resolve(url.host, url.port);
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, url.target, 11};
    req.set(bhttp::field::host, url.host);
    req.set(bhttp::field::user_agent, "unsubrelay-webhook");
    req.set(bhttp::field::content_type, "application/json");
    req.set("X-Unsubrelay-Signature", signature);
    req.set("X-Unsubrelay-Event-Id", std::to_string(event_id));
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

nlohmann::json event_json(const store::Event& e, const std::string& email) {
  return {{"action", store::name(e.action)},
          {"source", e.source},
          {"time", e.time},
          {"uid", e.uid},
          {"email", email},
          {"email_id", e.email_id},
          {"launch_list_id", e.launch_list_id},
          {"ip", e.ip},
          {"user_agent", e.user_agent},
          {"topic", e.topic}};
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

void WebhookSender::run(std::size_t index, config::Webhook hook, std::string secret) {
  const auto url = parse_url(hook.url);
  if (!url) return;
  const auto name = "webhook " + hook.url;  // lease and cursor, shared by every relay sending there
  const auto ttl = static_cast<long long>(hook.lease_seconds);
  // The lease is renewed when half of it is gone; between renewals this relay sends freely.
  long long held_until = 0;
  bool leader = false;
  bool decided = false;  // the first answer is logged either way: an operator sees which relay sends
  auto hold = [&] {
    const auto now = static_cast<long long>(std::time(nullptr));
    if (leader && now < held_until - ttl / 2) return true;
    const bool was = leader;
    leader = store_.take_lease(name, holder_, now, ttl);
    if (leader) held_until = now + ttl;
    if (leader != was || !decided) {
      decided = true;
      spdlog::info("webhook {}: {} sender for this fleet", printable(hook.url, 100),
                   leader ? "this relay is now the" : "another relay is now the");
    }
    return leader;
  };

  long long cursor = -1;
  auto backoff = std::chrono::milliseconds(1000);
  while (!stopping_) {
    if (!hold()) {
      pause(std::chrono::milliseconds(1000));
      continue;
    }
    if (cursor < 0) {
      // Where the fleet left off; else this relay's cursor file from an older version; else
      // start with events from now on, not the whole history (`unsubrelay export` gives that).
      const auto stored = store_.cursor(name);
      if (!stored) {
        pause(std::chrono::milliseconds(1000));
        continue;
      }
      cursor = *stored;
      if (cursor < 0) {
        std::ifstream in(fmt::format("{}/{}.cursor", state_dir_, index));
        if (!(in >> cursor)) {
          cursor = 0;
          for (;;) {
            const auto page = store_.events_since(0, cursor, 1000);
            if (!page || page->empty()) break;
            cursor = page->back().id;
          }
        }
        if (!store_.set_cursor(name, cursor)) {
          cursor = -1;
          pause(std::chrono::milliseconds(1000));
          continue;
        }
      }
    }
    const auto page = store_.events_since(0, cursor, 100);
    if (!page || page->empty()) {
      pause(std::chrono::milliseconds(500));
      continue;
    }
    for (const auto& [id, e] : *page) {
      if (stopping_) return;
      auto j = event_json(e, store_.address_of(e.uid).value_or(""));
      j["id"] = id;
      const auto body = json_text(j);
      bool sent = false;
      while (!stopping_ && hold()) {
        std::string why;
        const int status = post(*url, tls_.get(), body, webhook_signature(secret, body), id, why);
        if (status >= 200 && status < 300) {
          backoff = std::chrono::milliseconds(1000);
          sent = true;
          break;
        }
        spdlog::warn("webhook {}: event {} not accepted ({}); retry in {} s", printable(hook.url, 100), id,
                     status ? fmt::format("HTTP {}", status) : why, backoff.count() / 1000);
        pause(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(300000));
      }
      if (!sent) {
        cursor = -1;  // stopping, or another relay took over: it resumes from the stored cursor
        break;
      }
      cursor = id;
      if (!store_.set_cursor(name, cursor)) {
        spdlog::warn("webhook {}: cannot store the cursor ({}): event {} may be sent again",
                     printable(hook.url, 100), store_.last_error(), id);
      }
    }
  }
}

}  // namespace unsubrelay::http
