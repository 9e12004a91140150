// upstream.hpp: the interface every upstream (directory, SMTP, SES) implements.
//
// The queue manager hands an upstream one copy at a time: an envelope and
// the content rendered for its recipients. The upstream answers per
// recipient, as an SMTP server answers each RCPT, and never throws for
// expected failures: a refusal is a result, like Postfix's smtp client
// reporting status=deferred or status=bounced.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange
#include <boost/asio/awaitable.hpp>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay::delivery {

struct OutboundCopy {
  std::string queue_id;
  std::size_t copy_index = 0;  // the recipient's index in the queue file
  std::string sender;
  std::vector<std::string> recipients;
  std::string_view content;
  std::string client_address;  // the SMTP client it came from (queue file "C"); the feedback transport's trust
};

enum class DeliveryStatus { sent, deferred, bounced };

struct RecipientResult {
  DeliveryStatus status = DeliveryStatus::deferred;
  std::string reply;        // the upstream's answer, for logs and DSNs
  std::string relay;        // where it went: "host[addr]:port" or "directory"
  std::string upstream_id;  // the SES message id, when there is one
};

class Upstream {
 public:
  virtual ~Upstream() = default;
  /// One result per recipient of the copy, in order.
  virtual boost::asio::awaitable<std::vector<RecipientResult>> deliver(OutboundCopy copy) = 0;
  /// Concurrent copies this upstream can take (upstream.max_connections).
  virtual std::size_t concurrency() const = 0;
  /// Closes idle connections (shutdown). Called on the queue manager's strand.
  virtual boost::asio::awaitable<void> close() { co_return; }
};

/// upstream.kind: directory: one .eml file per recipient copy.
std::unique_ptr<Upstream> make_directory_upstream(const config::Upstream& settings, std::string* error);

/// upstream.kind: smtp or ses: a pool of SMTP client connections. Reads the
/// credential files now; returns nullptr and sets error when it cannot.
/// tls: the profile of its TLS context (docs/tls.md).
std::unique_ptr<Upstream> make_smtp_upstream(const config::Upstream& settings, const std::string& helo_name,
                                             std::string* error, const config::Tls& tls = config::Tls{});

}  // namespace unsubrelay::delivery
