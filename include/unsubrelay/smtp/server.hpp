// server.hpp: the SMTP listeners and the I/O around each Session.
//
// One coroutine per connection (Beast's advanced_server_flex_awaitable
// pattern) reads lines and DATA, feeds them to the pure Session and
// DotUnstuffer, streams DATA into the spool, and writes replies. A watchdog
// timer per connection enforces the RFC 5321 §4.5.3.2 timeouts.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <utility>  // before Asio, see upstream.hpp
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include "unsubrelay/common/io_threads.hpp"
#include "unsubrelay/common/tls.hpp"
#include "unsubrelay/config/config.hpp"
#include "unsubrelay/smtp/auth.hpp"
#include "unsubrelay/spool/spool.hpp"
#include "unsubrelay/tenant/counters.hpp"
#include "unsubrelay/tenant/directory.hpp"

namespace unsubrelay::smtp {

struct ServerCounters {
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> messages_received{0};
  std::atomic<std::uint64_t> messages_refused{0};
};

/// Called for every message committed to the spool, with the message still
/// open and in memory when the spool's memory bound allowed keeping it (else null).
using QueuedCallback = std::function<void(const std::string& queue_id, std::unique_ptr<spool::OpenMessage> opened)>;
/// Called for each u+TOKEN@mailto_domain recipient once its message is in:
/// records the unsubscribe; false and why when the token is not valid.
using MailtoCallback = std::function<bool(const std::string& token, const std::string& client_ip, std::string& why)>;
/// Quotas (SPEC Part 3): SessionPolicy::quota_refusal.
using QuotaCheck = std::function<std::string(const std::string& tenant, std::size_t recipients)>;
/// Told each message of a tenant after its 250, with its relayed recipients.
using QuotaCount = std::function<void(const std::string& tenant, std::size_t recipients)>;

class Server {
 public:
  /// disk: the pool that runs queue-file commits (fsyncs), off the network threads.
  Server(boost::asio::io_context& io, boost::asio::thread_pool& disk, const config::Config& config,
         const spool::Spool& spool, QueuedCallback on_queued, MailtoCallback on_mailto = {});
  ~Server();

  /// Binds every listener. Returns "" or an error naming the address.
  std::string start();
  /// Closes the listeners: no new connections (SIGTERM, first step).
  void stop_accepting();
  /// Closes every connection that is not in the middle of DATA; those finish
  /// their message, get their 250, then a 421 (SIGTERM, second step).
  void drain();
  std::size_t active_connections() const { return active_.load(); }

  /// SIGHUP: swaps the users file used by new AUTH attempts.
  void set_users(std::shared_ptr<const UsersFile> users);
  /// feedback: checks the signature of a b+TOKEN@return_path_domain
  /// recipient's token (550 5.1.1 when false). Set before start().
  void set_verp_check(std::function<bool(std::string_view token)> valid) { verp_valid_ = std::move(valid); }
  /// SPEC Part 3: messages received and refused, per tenant, for /metrics. Set before start().
  void set_tenant_counters(tenant::CounterTable* counters) { tenant_counters_ = counters; }
  /// tenants[].limits (tenant/quotas.hpp): both run on the SMTP threads, so
  /// neither may wait for a store. Set before start().
  void set_quotas(QuotaCheck refusal, QuotaCount accepted) {
    quota_refusal_ = std::move(refusal);
    quota_accepted_ = std::move(accepted);
  }
  /// SIGHUP: loads smtp.tls again (same profile); new connections use it.
  /// "" or why the running certificate stays.
  std::string reload_tls(const config::Smtp& fresh);
  /// Where each new connection lives (common/io_threads.hpp); unset: a strand
  /// on io. Set before start().
  void set_session_executors(SessionExecutors executors) { session_executors_ = std::move(executors); }
  const ServerCounters& counters() const { return counters_; }

  struct Connection;  // per-connection state, in server.cpp

 private:
  void accept_loop(std::shared_ptr<boost::asio::ip::tcp::acceptor> acceptor, bool implicit_tls);
  /// At max_connections: closes (421) the session idle longest, if one has
  /// been idle 2 s or more and is not in DATA. False: nobody to evict.
  bool evict_idlest();
  friend struct ConnectionRunner;

  boost::asio::io_context& io_;
  boost::asio::thread_pool& disk_;
  const config::Config& config_;
  tenant::Directory tenants_;  // SPEC Part 3: from config_.tenants
  const spool::Spool& spool_;
  QueuedCallback on_queued_;
  MailtoCallback on_mailto_;
  std::function<bool(std::string_view token)> verp_valid_;
  tenant::CounterTable* tenant_counters_ = nullptr;
  QuotaCheck quota_refusal_;
  QuotaCount quota_accepted_;
  SessionExecutors session_executors_;
  TlsServerContext tls_;  // the tls profile (docs/tls.md), loaded at start and on SIGHUP
  std::vector<std::shared_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::atomic<std::size_t> active_{0};
  std::atomic<bool> draining_{false};
  mutable std::mutex mutex_;  // guards users_ and connections_
  std::shared_ptr<const UsersFile> users_;
  std::set<std::shared_ptr<Connection>> connections_;
  ServerCounters counters_;
};

}  // namespace unsubrelay::smtp
