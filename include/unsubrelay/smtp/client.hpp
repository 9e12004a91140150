// client.hpp: one outbound SMTP connection (Postfix's smtp(8), OpenSMTPD's
// mta_session.c): connect, EHLO, STARTTLS or implicit TLS with certificate
// and host-name checks, AUTH, then transactions until it is closed.
//
// Failures are values: every call returns what the server said or why the
// connection failed, in words a log line and a bounce can carry.
// Credentials never reach a log line or an error text.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "unsubrelay/smtp/client_codec.hpp"

namespace unsubrelay::smtp {

enum class ClientTls { starttls, implicit, none };

struct ClientSettings {
  std::string host;
  std::uint16_t port = 587;
  ClientTls tls = ClientTls::starttls;
  std::string helo_name;
  std::string username;  // empty: no AUTH
  std::string password;
  std::chrono::seconds connect_timeout{30};   // Postfix smtp_connect_timeout
  std::chrono::seconds command_timeout{300};  // RFC 5321 §4.5.3.2
  std::chrono::seconds data_done_timeout{600};
};

/// The outcome of one MAIL/RCPT/DATA transaction.
struct Transaction {
  std::optional<ServerReply> mail;
  std::vector<std::optional<ServerReply>> rcpt;  // one per recipient, in order
  std::optional<ServerReply> data;               // the reply to DATA (354 or a refusal)
  std::optional<ServerReply> done;               // the reply after the final dot
  std::string failure;  // set when the connection failed; replies missing after it were never read
};

class ClientConnection {
 public:
  ~ClientConnection();

  /// Connects and readies a session (greeting, EHLO, TLS, AUTH). On failure
  /// returns nullptr and sets error, e.g. "connect to host[addr]:587: Connection refused".
  static boost::asio::awaitable<std::unique_ptr<ClientConnection>> open(boost::asio::any_io_executor executor,
                                                                        boost::asio::ssl::context& tls,
                                                                        const ClientSettings& settings,
                                                                        std::string& error);

  /// Sends one message; pipelined when the server offers PIPELINING.
  boost::asio::awaitable<Transaction> send(const std::string& sender, const std::vector<std::string>& recipients,
                                           std::string_view content);
  /// RSET before reusing the connection for another message. False: discard it.
  boost::asio::awaitable<bool> reset();
  boost::asio::awaitable<void> quit();

  bool usable() const { return usable_; }
  const std::string& relay() const { return relay_; }  // "host[addr]:port"
  const Extensions& extensions() const { return extensions_; }
  std::chrono::steady_clock::time_point last_used() const { return last_used_; }

  struct Impl;

 private:
  explicit ClientConnection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  bool usable_ = true;
  std::string relay_;
  Extensions extensions_;
  std::chrono::steady_clock::time_point last_used_;
};

}  // namespace unsubrelay::smtp
