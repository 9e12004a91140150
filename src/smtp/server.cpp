// server.cpp: SMTP listeners, per-connection I/O, DATA streaming to the spool.
#include "unsubrelay/smtp/server.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <vector>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/listener.hpp"
#include "unsubrelay/common/offload.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/mime/render_plan.hpp"
#include "unsubrelay/smtp/dot_unstuffer.hpp"
#include "unsubrelay/smtp/session.hpp"

namespace unsubrelay::smtp {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::use_awaitable;
using boost::system::error_code;

constexpr std::size_t read_chunk = 64 * 1024;   // DATA
constexpr std::size_t command_chunk = 4 * 1024;  // commands: 1,000 idle sessions stay small

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Server::Connection {
  Connection(tcp::socket socket, ssl::context& tls)
      : socket(std::move(socket)),
        tls_context(tls),
        deadline(this->socket.get_executor(), asio::steady_timer::time_point::max()) {}

  tcp::socket socket;
  ssl::context& tls_context;
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

namespace {

long long now_seconds() { return static_cast<long long>(std::time(nullptr)); }

/// A queue file that could not be written or committed: the client keeps the
/// message and retries. A full disk (or quota) is 452 4.3.1, as in Postfix's
/// "Insufficient system storage"; anything else 451 4.3.0.
Reply storage_error(const std::string& error) {
  if (error.find(std::strerror(ENOSPC)) != std::string::npos || error.find(std::strerror(EDQUOT)) != std::string::npos) {
    return reply(452, "4.3.1", "Error: insufficient system storage");
  }
  return reply(451, "4.3.0", "Error: queue file write error");
}

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

/// The result of one DATA phase, as seen by the I/O layer.
struct DataResult {
  DataOutcome outcome;
  bool connection_lost = false;
  std::uint64_t size = 0;
};

}  // namespace

/// The coroutine that runs one connection from accept to close.
struct ConnectionRunner {
  Server& server;
  std::shared_ptr<Server::Connection> c;
  bool implicit_tls;
  std::string peer;  // "[addr]:port" for logs
  std::string out;   // replies waiting for the end of a pipelined group
  std::string in;    // bytes read but not yet consumed
  // Grows to read_chunk for DATA only; never zero-filled (make_unique_for_overwrite).
  std::unique_ptr<char[]> buf_storage = std::make_unique_for_overwrite<char[]>(command_chunk);
  asio::mutable_buffer buf{buf_storage.get(), command_chunk};
  void size_buffer(std::size_t size) {
    buf_storage = std::make_unique_for_overwrite<char[]>(size);
    buf = asio::mutable_buffer(buf_storage.get(), size);
  }

  asio::awaitable<bool> flush() {
    if (out.empty()) co_return true;
    error_code ec;
    co_await c->write(out, ec);
    out.clear();
    if (ec) spdlog::debug("{}: write failed: {}", peer, ec.message());
    co_return !ec;
  }

  asio::awaitable<bool> handshake() {
    c->expire_in(server.config_.smtp.limits.command_timeout_seconds);
    error_code ec;
    c->tls_stream = std::make_unique<ssl::stream<tcp::socket&>>(c->socket, c->tls_context);
    co_await c->tls_stream->async_handshake(ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      spdlog::warn("TLS handshake failed from {}: {}", peer, ec.message());
      co_return false;
    }
    c->tls = true;
    co_return true;
  }

  /// nothing_to_queue: every recipient was an unsubscribe address (mailto:).
  asio::awaitable<DataResult> receive_data(spool::QueueWriter& writer, bool nothing_to_queue) {
    const auto& limits = server.config_.smtp.limits;
    DotUnstuffer decoder({limits.max_message_bytes, limits.max_text_line});
    std::string chunk;
    std::string write_error;
    auto consume = [&](std::string_view bytes) {
      chunk.clear();
      const auto used = decoder.feed(bytes, chunk);
      const bool refused = decoder.too_big() || decoder.bare_newline() || decoder.nul_byte() || decoder.long_line();
      if (!refused && write_error.empty() && !chunk.empty()) write_error = writer.append(chunk);
      return used;
    };
    in.erase(0, consume(in));
    size_buffer(read_chunk);
    while (!decoder.done()) {
      c->expire_in(limits.data_timeout_seconds);
      error_code ec;
      const auto n = co_await c->read_some(buf, ec);
      if (ec) co_return DataResult{{}, true, decoder.size()};
      const std::string_view got(buf_storage.get(), n);
      const auto used = consume(got);
      if (decoder.done()) in.assign(got.substr(used));  // pipelined commands after the dot
    }

    DataResult r;
    r.size = decoder.size();
    if (decoder.bare_newline()) {
      // CVE-2023-51764 class: only <CRLF>.<CRLF> ends DATA; a bare CR or LF is refused.
      r.outcome.refusal = reply(550, "5.5.2", "Error: bare <CR> or <LF> in message data; lines must end in <CR><LF>");
    } else if (decoder.nul_byte()) {
      // An upstream that strips NULs would read <CRLF><NUL>.<CRLF> as the end of data.
      r.outcome.refusal = reply(550, "5.5.2", "Error: NUL byte in message data (RFC 5322 §2.3)");
    } else if (decoder.too_big()) {
      r.outcome.refusal = reply(552, "5.3.4", "Error: message size exceeds fixed limit");
    } else if (decoder.long_line()) {
      r.outcome.refusal = reply(550, "5.5.2", "Error: message has a line longer than 998 characters (RFC 5322 §2.1.1)");
    } else if (!write_error.empty()) {
      spdlog::error("{}: queue file write error: {}", writer.id(), write_error);
      r.outcome.refusal = storage_error(write_error);
    } else if (nothing_to_queue) {
      r.outcome.queue_id = writer.id();  // only unsubscribe addresses: nothing to spool
      writer.abort();
    } else {
      // The policy check reads the file back and the commit fsyncs: both on the disk pool.
      bool refused = false;
      if (server.config_.unsubscribe.body_link == config::BodyLink::reject) {
        refused = co_await offload(server.disk_, [&] { return refused_by_body_link(writer); });
      }
      std::string err;
      if (!refused) err = co_await offload(server.disk_, [&] { return writer.commit(); });
      if (refused) {
        r.outcome.refusal = reply(550, "5.7.0", "Error: campaign message without an unsubscribe link or placeholder");
      } else if (!err.empty()) {
        spdlog::error("{}: queue file commit error: {}", writer.id(), err);
        r.outcome.refusal = storage_error(err);
      } else {
        r.outcome.queue_id = writer.id();
      }
    }
    co_return r;
  }

  /// unsubscribe.body_link: reject: campaign mail must carry a placeholder
  /// (Gmail and Yahoo require a visible link); refused before the 250.
  bool refused_by_body_link(spool::QueueWriter& writer) {
    if (server.config_.unsubscribe.body_link != config::BodyLink::reject) return false;
    const auto content = writer.content();
    if (!content) return false;  // cannot read it back: let delivery decide
    const auto plan = mime::build_plan(*content, mime::PlanOptions::from(server.config_.unsubscribe), writer.id());
    return plan.refused();
  }

  /// RFC 2369 mailto: unsubscribes: u+TOKEN@mailto_domain, recorded once the message is in.
  void mailto_unsubscribes(const Envelope& env, const std::string& queue_id) {
    const auto ip = config::unmap(c->socket.remote_endpoint().address()).to_string();
    for (const auto& token : env.unsubscribe_tokens) {
      std::string why;
      if (server.on_mailto_ && server.on_mailto_(token, ip, why)) {
        spdlog::info("{}: unsubscribe by mail from <{}>, client={}", queue_id, printable(env.sender, 256), peer);
      } else {
        spdlog::warn("{}: unsubscribe by mail refused: {}", queue_id, printable(why, 200));
      }
    }
  }

  /// DATA: create the queue file, send 354, stream, commit, reply.
  asio::awaitable<bool> data_phase(Session& session, Step& step) {
    const auto& env = session.envelope();
    spool::QueueEnvelope qenv{now_seconds(), c->socket.remote_endpoint().address().to_string(),
                              printable(env.helo, 200), printable(session.auth_user(), 200), env.body_8bit,
                              env.sender, env.recipients};
    std::string err;
    auto writer = server.spool_.create(qenv, &err);
    if (writer) err = writer->append(session.received_header(writer->id(), qenv.arrival));
    if (!writer || !err.empty()) {
      spdlog::error("cannot create a queue file: {}", err);
      for (const auto& r : session.on_data_end({std::nullopt, storage_error(err)}).replies) {
        out += r.wire();
      }
      co_return true;
    }
    for (const auto& r : step.replies) out += r.wire();  // the 354
    if (!co_await flush()) co_return false;

    c->in_data = true;
    auto result = co_await receive_data(*writer, env.recipients.empty());
    c->in_data = false;
    c->idle_since_ms = steady_ms();
    size_buffer(command_chunk);
    if (result.connection_lost) {
      spdlog::info("{}: lost connection with {} during DATA after {} bytes; message discarded", writer->id(), peer,
                   result.size);
      co_return false;
    }
    if (result.outcome.queue_id && !env.unsubscribe_tokens.empty()) mailto_unsubscribes(env, writer->id());
    if (result.outcome.queue_id && env.recipients.empty()) {
      const auto end = session.on_data_end({std::nullopt, reply(250, "2.0.0", "Ok: unsubscribe request received")});
      for (const auto& r : end.replies) out += r.wire();
      co_return true;
    }
    if (result.outcome.queue_id) {
      ++server.counters_.messages_received;
      spdlog::info("{}: client={}, helo={}, from=<{}>, size={}, nrcpt={}{}", writer->id(), peer,
                   printable(env.helo, 100), printable(env.sender, 256), result.size, env.recipients.size(),
                   session.auth_user().empty() ? "" : ", sasl_username=" + printable(session.auth_user(), 100));
      server.on_queued_(writer->id());
    } else {
      ++server.counters_.messages_refused;
      spdlog::info("{}: refused from {}: {}", writer->id(), peer,
                   result.outcome.refusal ? result.outcome.refusal->lines.front() : std::string("?"));
    }
    const auto end = session.on_data_end(result.outcome);
    for (const auto& r : end.replies) out += r.wire();
    if (end.action == Action::close) {
      co_await flush();
      co_return false;
    }
    if (server.draining_) {
      out += reply(421, "4.3.2", server.config_.smtp.hostname + " Service shutting down").wire();
      co_await flush();
      co_return false;
    }
    co_return true;
  }

  asio::awaitable<void> run() {
    if (implicit_tls && !co_await handshake()) co_return;

    const auto& cfg = server.config_.smtp;
    const auto address = config::unmap(c->socket.remote_endpoint().address());
    SessionPolicy policy;
    policy.limits = cfg.limits;
    policy.hostname = cfg.hostname;
    policy.client_address = address.to_string();
    for (const auto& net : cfg.allow_networks) policy.client_trusted |= net.contains(address);
    policy.tls_available = server.tls_ready_;
    if (server.on_mailto_) policy.mailto_domain = server.config_.unsubscribe.mailto_domain;
    policy.tls_active = c->tls;
    if (cfg.auth) {
      policy.auth_available = true;
      policy.auth_requires_tls = cfg.auth->require_tls;
      policy.verify_password = [this](const std::string& user, const std::string& password) {
        std::shared_ptr<const UsersFile> users;
        {
          std::lock_guard lock(server.mutex_);
          users = server.users_;
        }
        const bool ok = users && users->verify(user, password);
        spdlog::log(ok ? spdlog::level::info : spdlog::level::warn, "{}: AUTH {} for user {}", peer,
                    ok ? "succeeded" : "failed", printable(user, 64));
        return ok;
      };
    }
    Session session(std::move(policy));
    out = session.greeting().wire();

    bool skipping = false;  // Postfix skips an over-long line to its CRLF instead of buffering it
    while (session.state() != SessionState::closed) {
      const auto nl = in.find('\n');
      if (nl == std::string::npos) {
        if (in.size() > cfg.limits.max_auth_line) {
          skipping = true;
          in.clear();
        }
        if (!co_await flush()) co_return;
        c->expire_in(cfg.limits.command_timeout_seconds);
        error_code ec;
        const auto n = co_await c->read_some(buf, ec);
        if (ec) {
          if (c->timed_out) {
            // RFC 5321 §4.5.3.2: the server may close after its timeout; it says why first.
            if (server.draining_) {
              spdlog::info("shutdown: closing idle session from {}", peer);
              out = reply(421, "4.3.2", cfg.hostname + " Service shutting down").wire();
            } else if (c->evicted) {
              spdlog::info("{}: idle session closed: max_connections reached and a new client is waiting", peer);
              out = reply(421, "4.7.0", cfg.hostname + " Error: too many connections; idle session closed").wire();
            } else {
              spdlog::info("timeout from {}", peer);
              out = reply(421, "4.4.2", cfg.hostname + " Error: timeout exceeded").wire();
            }
            co_await flush();
          }
          co_return;
        }
        c->idle_since_ms = steady_ms();
        in.append(buf_storage.get(), n);
        continue;
      }
      std::string line = in.substr(0, nl);
      in.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      Step step;
      if (skipping) {
        skipping = false;
        spdlog::info("{}: line longer than {} bytes skipped", peer, cfg.limits.max_auth_line);
        step = session.on_line_too_long();
      } else {
        step = session.on_line(line);
      }

      switch (step.action) {
        case Action::none:
          for (const auto& r : step.replies) out += r.wire();
          break;
        case Action::close:
          for (const auto& r : step.replies) out += r.wire();
          if (session.errors() >= cfg.limits.max_errors) spdlog::warn("{}: too many errors, disconnecting", peer);
          co_await flush();
          co_return;
        case Action::start_tls:
          for (const auto& r : step.replies) out += r.wire();
          if (!co_await flush()) co_return;
          // CVE-2011-0411: anything the client pipelined after STARTTLS was sent in
          // clear and could have been injected; it is dropped, never executed.
          if (!in.empty()) spdlog::warn("{}: discarded {} bytes pipelined after STARTTLS", peer, in.size());
          in.clear();
          if (!co_await handshake()) co_return;
          session.on_tls_established();
          break;
        case Action::receive_data:
          if (!co_await data_phase(session, step)) co_return;
          break;
      }
    }
    co_await flush();
  }
};

Server::Server(asio::io_context& io, asio::thread_pool& disk, const config::Config& config, const spool::Spool& spool,
               QueuedCallback on_queued, MailtoCallback on_mailto)
    : io_(io),
      disk_(disk),
      config_(config),
      spool_(spool),
      on_queued_(std::move(on_queued)),
      on_mailto_(std::move(on_mailto)),
      tls_(ssl::context::tls_server) {
  tls_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
}

Server::~Server() = default;

void Server::set_users(std::shared_ptr<const UsersFile> users) {
  std::lock_guard lock(mutex_);
  users_ = std::move(users);
}

std::string Server::start() {
  const auto& smtp = config_.smtp;
  if (smtp.tls) {
    error_code ec;
    tls_.use_certificate_chain_file(smtp.tls->cert, ec);
    if (ec) return fmt::format("smtp.tls.cert {}: {}", smtp.tls->cert, ec.message());
    tls_.use_private_key_file(smtp.tls->key, ssl::context::pem, ec);
    if (ec) return fmt::format("smtp.tls.key {}: {}", smtp.tls->key, ec.message());
    tls_ready_ = true;
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

void Server::accept_loop(std::shared_ptr<tcp::acceptor> acceptor, bool implicit_tls) {
  asio::co_spawn(
      io_,
      [this, acceptor, implicit_tls]() -> asio::awaitable<void> {
        for (;;) {
          tcp::socket socket(asio::make_strand(io_));
          error_code ec;
          co_await acceptor->async_accept(socket, asio::redirect_error(use_awaitable, ec));
          if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
          if (ec) {
            // EMFILE and friends: back off briefly instead of spinning.
            spdlog::warn("accept failed: {}", ec.message());
            asio::steady_timer pause(io_, std::chrono::milliseconds(100));
            co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
          }
          error_code peer_ec;
          const auto remote = socket.remote_endpoint(peer_ec);
          if (peer_ec) continue;
          const auto peer = fmt::format("[{}]:{}", config::unmap(remote.address()).to_string(), remote.port());
          auto connection = std::make_shared<Connection>(std::move(socket), tls_);
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
                auto runner = std::make_unique<ConnectionRunner>(ConnectionRunner{*this, connection, implicit_tls, peer});
                try {
                  co_await runner->run();
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
