// acceptor.cpp: the SMTP listeners: accept, the connection limit and idle
// eviction, back-off when out of descriptors, drain at shutdown.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include "connection.hpp"
#include "unsubrelay/common/accept_pause.hpp"
#include "unsubrelay/common/listener.hpp"
#include "unsubrelay/smtp/reply.hpp"

namespace unsubrelay::smtp {

namespace {

asio::awaitable<void> watchdog(std::shared_ptr<Server::Connection> c) {
  // First expiry: cancel the pending read so the session can say 421 and close.
  // A second expiry (the client does not even read that): close the socket.
  while (!c->finished) {
    error_code ec;
    co_await c->deadline.async_wait(asio::redirect_error(use_awaitable, ec));
    if (c->finished) break;
    if (c->deadline.expiry() > asio::steady_timer::clock_type::now()) continue;  // moved, not expired
    if (c->timed_out) {
      c->close();
      break;
    }
    c->timed_out = true;
    error_code cancel_ec;
    c->socket.cancel(cancel_ec);
    c->deadline.expires_after(std::chrono::seconds(10));
  }
}

}  // namespace

Server::Server(asio::io_context& io, asio::thread_pool& disk, const config::Config& config, const spool::Spool& spool,
               QueuedCallback on_queued, MailtoCallback on_mailto)
    : io_(io),
      disk_(disk),
      config_(config),
      tenants_(config),
      spool_(spool),
      on_queued_(std::move(on_queued)),
      on_mailto_(std::move(on_mailto)) {}

Server::~Server() = default;

void Server::set_users(std::shared_ptr<const UsersFile> users) {
  std::lock_guard lock(mutex_);
  users_ = std::move(users);
}

std::string Server::start() {
  const auto& smtp = config_.smtp;
  if (smtp.tls) {
    if (auto err = tls_.load(*smtp.tls, config_.tls, "smtp.tls"); !err.empty()) return err;
  }
  auto bind = [&](const config::Endpoint& ep, bool implicit_tls) -> std::string {
    std::string error;
    auto acceptor = open_listener(io_, ep, "smtp", error);
    if (!acceptor) return error;
    acceptors_.push_back(acceptor);
    spdlog::info("SMTP listening on {}{}", ep.to_string(), implicit_tls ? " (implicit TLS)" : "");
    accept_loop(acceptor, implicit_tls);
    return {};
  };
  for (const auto& ep : smtp.listen) {
    if (auto err = bind(ep, false); !err.empty()) return err;
  }
  for (const auto& ep : smtp.listen_tls) {
    if (auto err = bind(ep, true); !err.empty()) return err;
  }
  return {};
}

std::string Server::reload_tls(const config::Smtp& fresh) {
  if (!fresh.tls || !config_.smtp.tls) return {};
  return tls_.load(*fresh.tls, config_.tls, "smtp.tls");
}

void Server::accept_loop(std::shared_ptr<tcp::acceptor> acceptor, bool implicit_tls) {
  asio::co_spawn(
      io_,
      [this, acceptor, implicit_tls]() -> asio::awaitable<void> {
        AcceptPause pause("smtp");
        for (;;) {
          tcp::socket socket(session_executors_ ? session_executors_() : asio::make_strand(io_));
          error_code ec;
          co_await acceptor->async_accept(socket, asio::redirect_error(use_awaitable, ec));
          if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
          if (ec) {
            co_await pause.after_error(ec);  // EMFILE and friends: wait, log once a second, never spin
            continue;
          }
          pause.after_success();
          error_code peer_ec;
          const auto remote = socket.remote_endpoint(peer_ec);
          if (peer_ec) continue;
          const auto peer = fmt::format("[{}]:{}", config::unmap(remote.address()).to_string(), remote.port());
          auto connection = std::make_shared<Connection>(std::move(socket), remote, tls_.get());
          // At the limit, the session idle longest (not in DATA, idle at least
          // two seconds) makes room: idle connections cannot lock clients out.
          if (active_ >= config_.smtp.limits.max_connections && !evict_idlest()) {
            spdlog::warn("{}: refused: max_connections ({}) reached", peer, config_.smtp.limits.max_connections);
            asio::co_spawn(connection->socket.get_executor(), [this, connection]() -> asio::awaitable<void> {
              error_code wec;
              const auto text = reply(421, "4.7.0", config_.smtp.hostname + " Error: too many connections").wire();
              co_await connection->write(text, wec);
              connection->close();
            }, asio::detached);
            continue;
          }
          ++active_;
          ++counters_.connections;
          {
            std::lock_guard lock(mutex_);
            connections_.insert(connection);
          }
          spdlog::debug("connect from {}", peer);
          const auto executor = connection->socket.get_executor();
          asio::co_spawn(executor, watchdog(connection), asio::detached);
          asio::co_spawn(
              executor,
              [this, connection, implicit_tls, peer]() -> asio::awaitable<void> {
                try {
                  co_await serve_connection(*this, connection, implicit_tls, peer);
                } catch (const std::exception& e) {
                  spdlog::error("{}: session error: {}", peer, e.what());
                }
                connection->finished = true;
                connection->deadline.cancel();
                connection->close();
                spdlog::debug("disconnect from {}", peer);
                {
                  std::lock_guard lock(mutex_);
                  connections_.erase(connection);
                }
                --active_;
              },
              asio::detached);
        }
      },
      asio::detached);
}

void Server::stop_accepting() {
  for (auto& acceptor : acceptors_) {
    asio::post(acceptor->get_executor(), [acceptor] {
      error_code ec;
      acceptor->close(ec);
    });
  }
}

bool Server::evict_idlest() {
  constexpr std::int64_t min_idle_ms = 2000;
  const auto now = steady_ms();
  std::shared_ptr<Connection> victim;
  std::int64_t oldest = now - min_idle_ms;
  std::lock_guard lock(mutex_);
  for (const auto& connection : connections_) {
    if (connection->in_data || connection->eviction_chosen) continue;
    if (const auto since = connection->idle_since_ms.load(); since <= oldest) {
      oldest = since;
      victim = connection;
    }
  }
  if (!victim) return false;
  victim->eviction_chosen = true;
  asio::post(victim->socket.get_executor(), [victim] {
    if (victim->in_data) {  // it started a message meanwhile: let it finish
      victim->eviction_chosen = false;
      return;
    }
    victim->evicted = true;
    victim->deadline.expires_at(asio::steady_timer::clock_type::time_point::min());
  });
  return true;
}

void Server::drain() {
  draining_ = true;
  std::lock_guard lock(mutex_);
  for (const auto& connection : connections_) {
    asio::post(connection->socket.get_executor(), [connection] {
      // A message in DATA is finished first; everyone else is closed now.
      if (!connection->in_data) connection->deadline.expires_at(asio::steady_timer::clock_type::time_point::min());
    });
  }
}

}  // namespace unsubrelay::smtp
