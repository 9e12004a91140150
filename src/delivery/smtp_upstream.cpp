// smtp_upstream.cpp: upstream.kind: smtp | ses, a pool of SMTP connections.
//
// Like Postfix's smtp client with its connection cache: a delivery takes an
// idle connection (after RSET) or opens one, up to upstream.max_connections;
// connections idle longer than idle_limit are closed with QUIT. Sends are
// paced by upstream.max_messages_per_second across the whole pool. All of it
// runs on the queue manager's strand, so the pool needs no lock.
#include <fstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/common/tls.hpp"
#include "unsubrelay/delivery/rate_limit.hpp"
#include "unsubrelay/delivery/upstream.hpp"
#include "unsubrelay/delivery/upstream_result.hpp"
#include "unsubrelay/smtp/client.hpp"

namespace unsubrelay::delivery {

namespace asio = boost::asio;

namespace {

constexpr auto idle_limit = std::chrono::seconds(10);  // SES drops idle sessions soon after; so do we
constexpr auto reuse_without_probe = std::chrono::seconds(2);  // idle longer: RSET before reuse

std::optional<std::string> read_secret(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    if (error) *error = fmt::format("cannot read {}", path);
    return std::nullopt;
  }
  std::string value;
  std::getline(in, value);
  while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
  return value;
}

class SmtpUpstream final : public Upstream {
 public:
  SmtpUpstream(smtp::ClientSettings settings, const config::Upstream& cfg, const config::Tls& profile)
      : settings_(std::move(settings)),
        tls_(asio::ssl::context::tls_client),
        max_connections_(cfg.max_connections),
        ses_(cfg.kind == config::UpstreamKind::ses),
        limit_(cfg.max_messages_per_second, cfg.max_messages_per_second) {
    if (auto err = apply_tls_profile(tls_, profile, false); !err.empty()) throw std::runtime_error(err);
    if (cfg.verify_peer) {
      tls_.set_verify_mode(asio::ssl::verify_peer);
      if (!cfg.ca_file.empty()) {
        tls_.load_verify_file(cfg.ca_file);
      } else {
        tls_.set_default_verify_paths();
      }
    } else {
      tls_.set_verify_mode(asio::ssl::verify_none);
    }
  }

  std::size_t concurrency() const override { return max_connections_; }

  asio::awaitable<std::vector<RecipientResult>> deliver(OutboundCopy copy) override {
    const auto executor = co_await asio::this_coro::executor;
    start_sweeper(executor);
    co_await pace(executor);
    for (int tries = 0;; ++tries) {
      bool reused = false;
      std::string error;
      auto conn = co_await take_connection(executor, reused, error);
      if (!conn) {
        spdlog::warn("{}: upstream unavailable: {}", copy.queue_id, error);
        co_return all_deferred(copy.recipients.size(), "451 4.4.1 " + error, settings_.host);
      }
      const auto tx = co_await conn->send(copy.sender, copy.recipients, copy.content);
      // A reused connection the server had closed fails before any reply to
      // MAIL: nothing was accepted, so the copy goes again on a new connection.
      if (reused && !tx.mail && tries == 0) continue;
      auto results = results_of(tx, copy.recipients.size(), conn->relay(), ses_);
      if (conn->usable()) idle_.push_back(std::move(conn));
      co_return results;
    }
  }

  asio::awaitable<void> close() override {
    stopping_ = true;
    for (auto& c : idle_) co_await c->quit();
    idle_.clear();
  }

 private:
  /// An idle connection, or a new one (nullptr and error when none can be opened).
  asio::awaitable<std::unique_ptr<smtp::ClientConnection>> take_connection(asio::any_io_executor executor,
                                                                           bool& reused, std::string& error) {
    std::unique_ptr<smtp::ClientConnection> conn;
    while (!idle_.empty() && !conn) {
      conn = std::move(idle_.back());
      idle_.pop_back();
      // A connection that ended its last transaction moments ago is ready for
      // MAIL (send() leaves it so, or resets it): no RSET round trip per copy.
      // One idle longer is probed first; the server may have closed it.
      const bool fresh = std::chrono::steady_clock::now() - conn->last_used() < reuse_without_probe;
      if (!fresh && !co_await conn->reset()) conn.reset();
    }
    if (conn) {
      reused = true;
      co_return conn;
    }
    conn = co_await smtp::ClientConnection::open(executor, tls_, settings_, error);
    if (!conn) co_return nullptr;
    ++opened_;
    spdlog::debug("upstream connection {} opened to {}", opened_, conn->relay());
    co_return conn;
  }

  /// Waits for a token of the rate limit.
  asio::awaitable<void> pace(asio::any_io_executor executor) {
    for (;;) {
      const auto wait = limit_.take(RateLimit::Clock::now());
      if (wait == RateLimit::Clock::duration::zero()) co_return;
      asio::steady_timer timer(executor, wait);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  void start_sweeper(asio::any_io_executor executor) {
    if (sweeper_started_) return;
    sweeper_started_ = true;
    asio::co_spawn(executor, [this, executor]() -> asio::awaitable<void> {
      asio::steady_timer timer(executor);
      while (!stopping_) {
        timer.expires_after(std::chrono::seconds(2));
        boost::system::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        const auto now = std::chrono::steady_clock::now();
        for (auto it = idle_.begin(); it != idle_.end();) {
          if (now - (*it)->last_used() > idle_limit) {
            auto c = std::move(*it);
            it = idle_.erase(it);
            spdlog::debug("closing idle upstream connection to {}", c->relay());
            co_await c->quit();
          } else {
            ++it;
          }
        }
      }
    }, asio::detached);
  }

  smtp::ClientSettings settings_;
  asio::ssl::context tls_;
  std::size_t max_connections_;
  bool ses_;
  RateLimit limit_;
  std::vector<std::unique_ptr<smtp::ClientConnection>> idle_;
  std::uint64_t opened_ = 0;
  bool sweeper_started_ = false;
  bool stopping_ = false;
};

}  // namespace

std::unique_ptr<Upstream> make_smtp_upstream(const config::Upstream& cfg, const std::string& helo_name,
                                             std::string* error, const config::Tls& tls) {
  smtp::ClientSettings s;
  s.host = cfg.host;
  s.port = cfg.port;
  s.tls = cfg.tls == config::UpstreamTls::starttls   ? smtp::ClientTls::starttls
          : cfg.tls == config::UpstreamTls::implicit ? smtp::ClientTls::implicit
                                                     : smtp::ClientTls::none;
  s.helo_name = helo_name;
  s.username = cfg.username;
  if (!cfg.username_file.empty()) {
    auto u = read_secret(cfg.username_file, error);
    if (!u) return nullptr;
    s.username = *u;
  }
  if (!cfg.password_file.empty()) {
    auto p = read_secret(cfg.password_file, error);
    if (!p) return nullptr;
    s.password = *p;
  }
  try {
    return std::make_unique<SmtpUpstream>(std::move(s), cfg, tls);
  } catch (const std::exception& e) {
    if (error) *error = fmt::format("upstream TLS setup: {}", e.what());
    return nullptr;
  }
}

}  // namespace unsubrelay::delivery
