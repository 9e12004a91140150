// server.cpp: one SMTP connection's I/O: commands, STARTTLS, DATA streaming
// to the spool. The listeners and connection limits are in acceptor.cpp.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "connection.hpp"
#include "unsubrelay/common/clock.hpp"
#include "unsubrelay/common/offload.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/mime/render_plan.hpp"
#include "unsubrelay/mime/scanner.hpp"
#include "unsubrelay/smtp/dot_unstuffer.hpp"
#include "unsubrelay/smtp/session.hpp"
#include "unsubrelay/smtp/tenant_intake.hpp"

namespace unsubrelay::smtp {

constexpr std::size_t read_chunk = 64 * 1024;   // DATA
constexpr std::size_t command_chunk = 4 * 1024;  // commands: 1,000 idle sessions stay small

namespace {

/// A queue file that could not be written or committed: the client keeps the
/// message and retries. A full disk (or quota) is 452 4.3.1, as in Postfix's
/// "Insufficient system storage"; anything else 451 4.3.0.
Reply storage_error(const std::string& error) {
  if (error.find(std::strerror(ENOSPC)) != std::string::npos || error.find(std::strerror(EDQUOT)) != std::string::npos) {
    return reply(452, "4.3.1", "Error: insufficient system storage");
  }
  return reply(451, "4.3.0", "Error: queue file write error");
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
  feedback::Addresses intake;  // the feedback addresses (not relayed: not counted in quotas)
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
    c->tls_stream = std::make_unique<ssl::stream<tcp::socket&>>(c->socket, *c->tls_context);
    co_await c->tls_stream->async_handshake(ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      spdlog::warn("TLS handshake failed from {}: {}", peer, ec.message());
      co_return false;
    }
    c->tls = true;
    co_return true;
  }

  /// nothing_to_queue: every recipient was an unsubscribe address (mailto:).
  /// max_bytes: the session's data_limit() (feedback mail is held to feedback.max_report_bytes).
  /// tenant: the submitting tenant whose From: is checked; "" = none (no tenants, or no mail relayed),
  /// or, with by_header, the tenant smtp.tenant_header names (set here once read).
  asio::awaitable<DataResult> receive_data(spool::QueueWriter& writer, const Envelope& env, std::uint64_t max_bytes,
                                           std::string& tenant, bool by_header) {
    const bool nothing_to_queue = env.recipients.empty();
    const auto& limits = server.config_.smtp.limits;
    DotUnstuffer decoder({max_bytes, limits.max_text_line});
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
      std::optional<Reply> refused;
      if (server.config_.unsubscribe.body_link == config::BodyLink::reject || !tenant.empty() || by_header) {
        refused = co_await offload(server.disk_, [&] { return content_refusal(writer, env, tenant, by_header); });
      }
      if (!refused && by_header) refused = header_tenant_quota(env, tenant);
      std::string err;
      if (!refused) err = co_await commit(writer);
      if (refused) {
        r.outcome.refusal = std::move(refused);
      } else if (!err.empty()) {
        spdlog::error("{}: queue file commit error: {}", writer.id(), err);
        r.outcome.refusal = storage_error(err);
      } else {
        r.outcome.queue_id = writer.id();
      }
    }
    co_return r;
  }

  /// A queue file's commit (fsyncs) runs on the disk pool; a segment record is
  /// appended here and awaited while one shared sync makes it durable with
  /// other sessions' records (spool/segment_log.hpp), holding no thread.
  asio::awaitable<std::string> commit(spool::QueueWriter& writer) {
    if (!writer.commits_async()) co_return co_await offload(server.disk_, [&] { return writer.commit(); });
    auto err = co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::string)>(
        [&writer](auto handler) {
          auto shared = std::make_shared<decltype(handler)>(std::move(handler));
          writer.commit_async([shared](const std::string& e) {
            const auto ex = asio::get_associated_executor(*shared);
            asio::post(ex, [shared, e]() mutable { std::move(*shared)(e); });
          });
        },
        asio::use_awaitable);
    writer.finish_commit(err);
    co_return err;
  }

  /// The checks of the content before the 250: which tenant the header names
  /// (by_header), that a tenant's header From: is one of its sender domains
  /// (SPEC Part 3), and with unsubscribe.body_link: reject, that campaign mail
  /// carries a placeholder (Gmail and Yahoo require a visible link). The refusal, or nullopt.
  std::optional<Reply> content_refusal(spool::QueueWriter& writer, const Envelope& env, std::string& tenant,
                                       bool by_header) {
    const auto content = writer.content();
    if (!content) {  // cannot read it back: a tenant's From: stays unproven
      if (tenant.empty() && !by_header) return std::nullopt;  // body_link: let delivery decide
      return reply(451, "4.3.0", "Error: cannot read the message back to check its From: header");
    }
    if (!tenant.empty() || by_header) {
      const auto header = by_header ? server.config_.smtp.tenant_header : std::string();
      auto verdict = check_tenant_content(mime::scan(*content), tenant, header, env.sender, server.tenants_);
      if (verdict.refusal) return verdict.refusal;
      if (by_header) {
        tenant = verdict.tenant;
        if (auto err = writer.set_tenant(tenant); !err.empty()) {
          spdlog::error("{}: queue file write error: {}", writer.id(), err);
          return storage_error(err);
        }
      }
    }
    // The tenant's own unsubscribe settings (its body_link, topics), else the top level's.
    const auto* own = tenant.empty() ? nullptr : server.config_.find_tenant(tenant);
    const auto& unsubscribe = own && tenant != "default" ? own->unsubscribe : server.config_.unsubscribe;
    if (unsubscribe.body_link != config::BodyLink::reject) return std::nullopt;
    const auto plan = mime::build_plan(*content, mime::PlanOptions::from(unsubscribe), writer.id());
    if (!plan.refused()) return std::nullopt;
    return reply(550, "5.7.0", "Error: campaign message without an unsubscribe link or placeholder");
  }

  /// The quotas of a tenant the header named, asked now it is known (others are asked at MAIL FROM and RCPT TO).
  std::optional<Reply> header_tenant_quota(const Envelope& env, const std::string& tenant) {
    if (!server.quota_refusal_) return std::nullopt;
    for (const auto n : {std::size_t{0}, relayed_count(env)}) {
      if (auto why = server.quota_refusal_(tenant, n); !why.empty()) return reply(451, "4.7.1", why);
    }
    return std::nullopt;
  }

  /// RFC 2369 mailto: unsubscribes: u+TOKEN@mailto_domain, recorded once the message is in.
  void mailto_unsubscribes(const Envelope& env, const std::string& queue_id) {
    const auto ip = config::unmap(c->remote.address()).to_string();
    for (const auto& token : env.unsubscribe_tokens) {
      std::string why;
      if (server.on_mailto_ && server.on_mailto_(token, ip, why)) {
        spdlog::info("{}: unsubscribe by mail from <{}>, client={}", queue_id, printable(env.sender, 256), peer);
      } else {
        spdlog::warn("{}: unsubscribe by mail refused: {}", queue_id, printable(why, 200));
      }
    }
  }

  /// The recipients relayed (not the relay's own feedback addresses): what quotas count.
  std::size_t relayed_count(const Envelope& env) const {
    return static_cast<std::size_t>(std::count_if(env.recipients.begin(), env.recipients.end(), [&](const auto& r) {
      return intake.classify(r) == feedback::AddressKind::none;
    }));
  }

  /// A tenant's accepted message, for its quotas: the message and its relayed recipients.
  void count_quota(const Envelope& env, const std::string& tenant) {
    if (!server.quota_accepted_ || tenant.empty() || !env.relayed) return;
    server.quota_accepted_(tenant, relayed_count(env));
  }

  /// DATA: create the queue file, send 354, stream, commit, reply.
  asio::awaitable<bool> data_phase(Session& session, Step& step) {
    const auto& env = session.envelope();
    spool::QueueEnvelope qenv{now_seconds(), c->remote.address().to_string(),
                              printable(env.helo, 200), printable(session.auth_user(), 200), env.body_8bit,
                              env.sender, env.recipients, env.tenant};
    // smtp.tenant_header: the tenant is read from the message, so the queue file holds a slot for it.
    const bool by_header = env.relayed && env.tenant_by_header;
    qenv.tenant_slot = by_header;
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
    std::string tenant = env.relayed && server.tenants_.enabled() ? env.tenant : "";  // its From: is checked
    auto result = co_await receive_data(*writer, env, session.data_limit(), tenant, by_header);
    if (!by_header) tenant = env.tenant;
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
      if (server.tenant_counters_) ++server.tenant_counters_->of(tenant)->messages_received;
      spdlog::info("{}: client={}, helo={}, from=<{}>, size={}, nrcpt={}{}{}", writer->id(), peer,
                   printable(env.helo, 100), printable(env.sender, 256), result.size, env.recipients.size(),
                   session.auth_user().empty() ? "" : ", sasl_username=" + printable(session.auth_user(), 100),
                   tenant.empty() ? "" : ", tenant=" + tenant);
      server.on_queued_(writer->id(), writer->opened());
      count_quota(env, tenant);
    } else {
      ++server.counters_.messages_refused;
      if (server.tenant_counters_) ++server.tenant_counters_->of(tenant)->messages_refused;
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
    const auto address = config::unmap(c->remote.address());
    SessionPolicy policy;
    policy.limits = cfg.limits;
    policy.hostname = cfg.hostname;
    policy.client_address = address.to_string();
    for (const auto& net : cfg.allow_networks) policy.client_trusted |= net.contains(address);
    policy.tls_available = server.tls_.ready();
    if (server.on_mailto_) policy.mailto_domain = server.config_.unsubscribe.mailto_domain;
    if (server.config_.feedback.enabled) {
      policy.feedback = feedback::intake_addresses(server.config_);
      intake = policy.feedback;
      policy.verp_valid = server.verp_valid_;
      policy.max_report_bytes = server.config_.feedback.max_report_bytes;
    }
    policy.tls_active = c->tls;
    policy.tenants = &server.tenants_;
    policy.tenant_header = cfg.tenant_header;
    policy.quota_refusal = server.quota_refusal_;
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

asio::awaitable<void> serve_connection(Server& server, std::shared_ptr<Server::Connection> c, bool implicit_tls,
                                       std::string peer) {
  auto runner = std::make_unique<ConnectionRunner>(ConnectionRunner{server, std::move(c), implicit_tls, std::move(peer)});
  co_await runner->run();
}

}  // namespace unsubrelay::smtp
