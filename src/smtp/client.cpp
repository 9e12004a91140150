// client.cpp: outbound SMTP session over Boost.Asio and OpenSSL.
#include "unsubrelay/smtp/client.hpp"

#include <openssl/ssl.h>

#include <array>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/smtp/auth.hpp"

namespace unsubrelay::smtp {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::use_awaitable;
using boost::system::error_code;

namespace {
constexpr std::size_t max_reply_line = 4096;  // a server cannot make us buffer forever
}

struct ClientConnection::Impl {
  Impl(asio::any_io_executor executor, ssl::context& tls, const ClientSettings& s)
      : stream(executor, tls), timer(executor), settings(s) {}

  ssl::stream<tcp::socket> stream;
  asio::steady_timer timer;
  ClientSettings settings;
  bool tls = false;
  bool timed_out = false;
  std::string in;
  std::array<char, 16384> buf{};
  std::string relay;

  /// Closes the socket if the operation that follows takes longer than limit.
  void arm(std::chrono::seconds limit) {
    timed_out = false;
    timer.expires_after(limit);
    timer.async_wait([this](const error_code& ec) {
      if (ec) return;  // cancelled: the operation finished in time
      timed_out = true;
      error_code ignored;
      stream.next_layer().close(ignored);
    });
  }
  void disarm() { timer.cancel(); }

  std::string describe(const error_code& ec, const char* during) const {
    if (timed_out) return fmt::format("timeout {} {}", during, relay);
    return fmt::format("{} {}: {}", during, relay, ec.message());
  }

  /// Writes bytes, then more (one gathered write).
  asio::awaitable<bool> write(std::string_view bytes, std::string& error, std::string_view more = {}) {
    arm(settings.command_timeout);
    error_code ec;
    const std::array<asio::const_buffer, 2> buffers{asio::buffer(bytes), asio::buffer(more)};
    if (tls) {
      co_await asio::async_write(stream, buffers, asio::redirect_error(use_awaitable, ec));
    } else {
      co_await asio::async_write(stream.next_layer(), buffers, asio::redirect_error(use_awaitable, ec));
    }
    disarm();
    if (ec) error = describe(ec, "lost connection with");
    co_return !ec;
  }

  asio::awaitable<std::optional<ServerReply>> read_reply(std::chrono::seconds limit, std::string& error) {
    ReplyReader reader;
    arm(limit);
    for (;;) {
      const auto nl = in.find('\n');
      if (nl == std::string::npos) {
        if (in.size() > max_reply_line) {
          disarm();
          error = fmt::format("malformed reply from {}: line too long", relay);
          co_return std::nullopt;
        }
        error_code ec;
        std::size_t n = 0;
        if (tls) {
          n = co_await stream.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
        } else {
          n = co_await stream.next_layer().async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
        }
        if (ec) {
          disarm();
          error = describe(ec, "lost connection with");
          co_return std::nullopt;
        }
        in.append(buf.data(), n);
        continue;
      }
      std::string line = in.substr(0, nl);
      in.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      switch (reader.push(line)) {
        case ReplyReader::Status::more:
          continue;
        case ReplyReader::Status::complete:
          disarm();
          co_return reader.take();
        case ReplyReader::Status::malformed:
          disarm();
          error = fmt::format("malformed reply from {}: {}", relay, printable(line, 100));
          co_return std::nullopt;
      }
    }
  }

  asio::awaitable<std::optional<ServerReply>> command(std::string_view line, std::string& error) {
    if (!co_await write(std::string(line) + "\r\n", error)) co_return std::nullopt;
    // Not "co_return co_await ...": g++ 12 miscompiles that form for this
    // return type (the coroutine falls off its end: SIGILL).
    auto reply = co_await read_reply(settings.command_timeout, error);
    co_return reply;
  }

  asio::awaitable<bool> handshake(std::string& error) {
    // SNI, and host-name verification when the context verifies peers.
    SSL_set_tlsext_host_name(stream.native_handle(), settings.host.c_str());
    stream.set_verify_callback(ssl::host_name_verification(settings.host));
    arm(settings.command_timeout);
    error_code ec;
    co_await stream.async_handshake(ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
    disarm();
    if (ec) {
      const long verify = SSL_get_verify_result(stream.native_handle());
      std::string detail = ec.message();
      if (verify != X509_V_OK) detail = fmt::format("certificate verification failed: {}", X509_verify_cert_error_string(verify));
      error = fmt::format("TLS handshake with {} failed: {}", relay, detail);
      co_return false;
    }
    tls = true;
    co_return true;
  }

  /// EHLO, falling back to HELO for servers that refuse it (RFC 5321 §3.2).
  asio::awaitable<std::optional<Extensions>> ehlo(std::string& error) {
    auto r = co_await command("EHLO " + settings.helo_name, error);
    if (!r) co_return std::nullopt;
    if (r->code == 250) co_return parse_ehlo(*r);
    auto h = co_await command("HELO " + settings.helo_name, error);
    if (!h) co_return std::nullopt;
    if (h->code != 250) {
      error = fmt::format("host {} refused to talk to me: {}", relay, printable(h->text(), 300));
      co_return std::nullopt;
    }
    co_return Extensions{};
  }
};

ClientConnection::ClientConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ClientConnection::~ClientConnection() {
  if (impl_) {
    error_code ec;
    impl_->timer.cancel();
    impl_->stream.next_layer().close(ec);
  }
}

asio::awaitable<std::unique_ptr<ClientConnection>> ClientConnection::open(asio::any_io_executor executor,
                                                                          ssl::context& tls,
                                                                          const ClientSettings& s,
                                                                          std::string& error) {
  auto impl = std::make_unique<Impl>(executor, tls, s);
  impl->relay = fmt::format("{}[?]:{}", s.host, s.port);

  tcp::resolver resolver(executor);
  error_code ec;
  impl->timer.expires_after(s.connect_timeout);
  const auto endpoints = co_await resolver.async_resolve(s.host, std::to_string(s.port),
                                                         asio::redirect_error(use_awaitable, ec));
  if (ec) {
    error = fmt::format("host or domain name not found: {}: {}", s.host, ec.message());
    co_return nullptr;
  }
  impl->arm(s.connect_timeout);
  const auto endpoint = co_await asio::async_connect(impl->stream.next_layer(), endpoints,
                                                     asio::redirect_error(use_awaitable, ec));
  impl->disarm();
  if (ec) {
    error = impl->timed_out ? fmt::format("connect to {}:{}: timeout", s.host, s.port)
                            : fmt::format("connect to {}:{}: {}", s.host, s.port, ec.message());
    co_return nullptr;
  }
  impl->relay = fmt::format("{}[{}]:{}", s.host, endpoint.address().to_string(), endpoint.port());

  if (s.tls == ClientTls::implicit && !co_await impl->handshake(error)) co_return nullptr;
  const auto greeting = co_await impl->read_reply(s.command_timeout, error);
  if (!greeting) co_return nullptr;
  if (greeting->code != 220) {
    error = fmt::format("host {} refused to talk to me: {}", impl->relay, printable(greeting->text(), 300));
    co_return nullptr;
  }
  auto ext = co_await impl->ehlo(error);
  if (!ext) co_return nullptr;

  if (s.tls == ClientTls::starttls) {
    if (!ext->starttls) {
      error = fmt::format("host {} does not offer STARTTLS, and upstream.tls is starttls", impl->relay);
      co_return nullptr;
    }
    const auto r = co_await impl->command("STARTTLS", error);
    if (!r) co_return nullptr;
    if (r->code != 220) {
      error = fmt::format("host {} refused STARTTLS: {}", impl->relay, printable(r->text(), 300));
      co_return nullptr;
    }
    impl->in.clear();  // nothing the server sent in clear counts after TLS
    if (!co_await impl->handshake(error)) co_return nullptr;
    ext = co_await impl->ehlo(error);
    if (!ext) co_return nullptr;
  }

  if (!s.username.empty()) {
    // Never over plaintext unless upstream.tls: none says so (checked at configuration).
    std::string cmd;
    std::optional<ServerReply> r;
    if (ext->auth_plain) {
      r = co_await impl->command("AUTH PLAIN " + base64_encode(std::string(1, '\0') + s.username + '\0' + s.password),
                                 error);
    } else if (ext->auth_login) {
      r = co_await impl->command("AUTH LOGIN", error);
      if (r && r->code == 334) r = co_await impl->command(base64_encode(s.username), error);
      if (r && r->code == 334) r = co_await impl->command(base64_encode(s.password), error);
    } else {
      error = fmt::format("host {} offers no AUTH PLAIN or LOGIN, and upstream credentials are set", impl->relay);
      co_return nullptr;
    }
    if (!r) co_return nullptr;
    if (r->code != 235) {
      error = fmt::format("authentication failed at {}: {}", impl->relay, printable(r->text(), 300));
      co_return nullptr;
    }
  }

  std::unique_ptr<ClientConnection> c(new ClientConnection(std::move(impl)));
  c->relay_ = c->impl_->relay;
  c->extensions_ = *ext;
  c->last_used_ = std::chrono::steady_clock::now();
  co_return c;
}

asio::awaitable<Transaction> ClientConnection::send(const std::string& sender,
                                                    const std::vector<std::string>& recipients,
                                                    std::string_view content) {
  Transaction t;
  t.rcpt.resize(recipients.size());
  auto& impl = *impl_;
  last_used_ = std::chrono::steady_clock::now();

  std::string mail = fmt::format("MAIL FROM:<{}>", sender);
  if (extensions_.size) mail += fmt::format(" SIZE={}", content.size());
  if (extensions_.eightbitmime && has_8bit(content)) mail += " BODY=8BITMIME";
  mail += "\r\n";

  // RFC 2920: with PIPELINING, MAIL, every RCPT and DATA go in one write.
  if (extensions_.pipelining) {
    std::string batch = mail;
    for (const auto& r : recipients) batch += fmt::format("RCPT TO:<{}>\r\n", r);
    batch += "DATA\r\n";
    if (!co_await impl.write(batch, t.failure)) {
      usable_ = false;
      co_return t;
    }
    t.mail = co_await impl.read_reply(impl.settings.command_timeout, t.failure);
    for (std::size_t i = 0; t.mail && i < recipients.size(); ++i) {
      t.rcpt[i] = co_await impl.read_reply(impl.settings.command_timeout, t.failure);
      if (!t.rcpt[i]) break;
    }
    if (t.failure.empty()) t.data = co_await impl.read_reply(impl.settings.command_timeout, t.failure);
  } else {
    t.mail = co_await impl.command(std::string_view(mail).substr(0, mail.size() - 2), t.failure);
    if (t.mail && t.mail->positive()) {
      for (std::size_t i = 0; i < recipients.size(); ++i) {
        t.rcpt[i] = co_await impl.command(fmt::format("RCPT TO:<{}>", recipients[i]), t.failure);
        if (!t.rcpt[i]) break;
      }
      bool any = false;
      for (const auto& r : t.rcpt) any |= r && r->positive();
      if (any) t.data = co_await impl.command("DATA", t.failure);
    }
  }
  if (!t.failure.empty()) {
    usable_ = false;
    co_return t;
  }

  // A refused MAIL FROM (SES's 454 throttling) voids the transaction even when a
  // pipelining server then accepts RCPT and DATA: sending the content anyway
  // would deliver a copy the relay counts as deferred, and send it again later.
  bool any_accepted = false;
  for (const auto& r : t.rcpt) any_accepted |= t.mail && t.mail->positive() && r && r->positive();
  if (t.data && t.data->code == 354) {
    // With pipelining the server may say 354 although every RCPT failed:
    // RFC 2920 §3.1 says to send an empty message to close the DATA phase.
    bool written = false;
    if (!any_accepted) {
      written = co_await impl.write(".\r\n", t.failure);
    } else if (!needs_stuffing(content)) {
      written = co_await impl.write(content, t.failure, ".\r\n");  // as it is: no copy per recipient
    } else {
      written = co_await impl.write(dot_stuff(content), t.failure);
    }
    if (!written) {
      usable_ = false;
      co_return t;
    }
    auto done = co_await impl.read_reply(impl.settings.data_done_timeout, t.failure);
    if (any_accepted) t.done = std::move(done);
  }
  if (!t.failure.empty()) usable_ = false;
  for (const auto* r : {&t.mail, &t.data, &t.done}) {
    if (*r && (*r)->code == 421) usable_ = false;  // the server is closing
  }
  if (usable_ && (!t.done || !t.done->positive())) usable_ = co_await reset();
  last_used_ = std::chrono::steady_clock::now();
  co_return t;
}

asio::awaitable<bool> ClientConnection::reset() {
  std::string error;
  const auto r = co_await impl_->command("RSET", error);
  usable_ = r && r->code == 250;
  co_return usable_;
}

asio::awaitable<void> ClientConnection::quit() {
  std::string error;
  if (usable_) co_await impl_->command("QUIT", error);
  usable_ = false;
  error_code ec;
  impl_->stream.next_layer().close(ec);
}

}  // namespace unsubrelay::smtp
