// server.hpp: the HTTP and HTTPS listeners (Boost.Beast), in front of http::Service.
//
// Every read has a deadline and named limits (header and body size, requests
// per minute per client); a client over a limit gets 431, 413 or 429 and the
// connection closes. Connections are capped (http.max_connections, never
// more than the descriptor budget leaves after SMTP and the spool): at the cap
// the connection that has waited longest for its request (1 s or more) is
// closed to make room, and if none has, accepting waits. The unsubscribe
// service is public; the SMTP port must never depend on it. Beast lives in
// this one translation unit: it is slow to compile.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "unsubrelay/common/io_threads.hpp"
#include "unsubrelay/config/config.hpp"
#include "unsubrelay/http/service.hpp"

namespace unsubrelay::http {

class Server {
 public:
  /// max_connections: http.max_connections as the descriptor budget allows it
  /// (app/descriptors.hpp).
  Server(boost::asio::io_context& io, const config::Http& config, const config::Tls& tls, Handler& service,
         std::size_t max_connections);
  ~Server();
  /// Loads http.tls and binds every listener. "" or an error naming the file or address.
  std::string start();
  /// SIGHUP: loads http.tls again; new connections use it. "" or why the
  /// running certificate stays.
  std::string reload_tls(const config::Http& fresh);
  void stop();
  std::size_t active_connections() const;
  /// Where each new connection lives (common/io_threads.hpp); unset: a strand
  /// on io. Set before start().
  void set_session_executors(SessionExecutors executors);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// /healthz is never rate-limited (a load balancer polls it from one address);
/// GET /metrics is not either when the client is in http.metrics_networks.
/// client: the address the per-address limit counts (after trusted X-Forwarded-For).
bool exempt_from_rate_limit(const config::Http& config, std::string_view target, const std::string& client);

}  // namespace unsubrelay::http
