// run.cpp: `unsubrelay run`: wiring, signals, systemd notification, drain.
//
// Start-up order follows the data flow: configuration, logging, spool
// recovery, upstream, queue manager, and only then the SMTP listeners, so no
// message is accepted before the relay can keep it. SIGTERM reverses it:
// listeners close, idle sessions get 421, sessions in DATA finish, deliveries
// in flight finish, then the process exits.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <latch>
#include <set>
#include <thread>

#include <malloc.h>
#include <pthread.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/app/commands.hpp"
#include "unsubrelay/app/descriptors.hpp"
#include "unsubrelay/app/systemd_notify.hpp"
#include "unsubrelay/app/tenants.hpp"
#include "unsubrelay/spool/durable_file.hpp"
#include "unsubrelay/common/certificate.hpp"
#include "unsubrelay/common/io_threads.hpp"
#include "unsubrelay/common/poll.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/common/tls.hpp"
#include "unsubrelay/config/config.hpp"
#include "unsubrelay/delivery/feedback_hooks.hpp"
#include "unsubrelay/delivery/feedback_transport.hpp"
#include "unsubrelay/delivery/queue_shards.hpp"
#include "unsubrelay/feedback/complaint_rate.hpp"
#include "unsubrelay/dkim/signer.hpp"
#include "unsubrelay/smtp/server.hpp"
#include "embedded_page.hpp"
#include "unsubrelay/http/server.hpp"
#include "unsubrelay/http/ses_feedback.hpp"
#include "unsubrelay/http/service.hpp"
#include "unsubrelay/http/webhook.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/tenant/quotas.hpp"

namespace unsubrelay::app {

namespace asio = boost::asio;

namespace {

/// Names each of a pool's threads PREFIX-N, so top -H and /proc/PID/task/*/comm
/// show where the CPU goes: one task per thread, each held until all have run.
void name_pool_threads(asio::thread_pool& pool, std::size_t threads, const char* prefix) {
  // Shared: a thread may still be leaving arrive_and_wait() when wait() returns here.
  auto all = std::make_shared<std::latch>(static_cast<std::ptrdiff_t>(threads));
  for (std::size_t i = 0; i < threads; ++i) {
    asio::post(pool, [all, prefix, i] {
      ::pthread_setname_np(::pthread_self(), fmt::format("{}-{}", prefix, i).c_str());
      all->arrive_and_wait();
    });
  }
  all->wait();
}

/// glibc hands a thread arena's free top back to the kernel once it passes
/// 128 KB (heap_trim: an madvise now, page faults when it is used again). A
/// message is read on one thread and freed on another, so nearly every message
/// paid for it: a fifth of the relay's CPU at 10 KB x 1 (docs/performance.md).
/// Keep up to 16 MB free per arena, and take blocks under 1 MB from the heap:
/// fixing the trim threshold also fixes mmap's at 128 KB, which would map and
/// unmap every 100 KB message. An operator's GLIBC_TUNABLES for malloc wins.
void keep_freed_memory() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::string_view(tunables).find("glibc.malloc.") != std::string_view::npos) return;
  ::mallopt(M_TRIM_THRESHOLD, 16 << 20);
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

constexpr auto drain_timeout = std::chrono::seconds(30);  // like systemd's TimeoutStopSec default

void setup_logging(const config::Log& log) {
  auto logger = spdlog::stderr_logger_mt("unsubrelay");
  if (log.format == "json") {
    // Messages are built with printable(), so they carry no quote-breaking control bytes.
    logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%v"})");
  } else if (stderr_is_journal()) {
    logger->set_formatter(journal_formatter());  // under systemd: the journal adds time and priority
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log.level));
  spdlog::flush_on(spdlog::level::trace);
}

std::shared_ptr<const smtp::UsersFile> load_users(const config::Config& cfg, bool& ok) {
  ok = true;
  if (!cfg.smtp.auth) return nullptr;
  std::vector<std::string> errors;
  auto users = smtp::UsersFile::load(cfg.smtp.auth->users_file, errors);
  for (const auto& e : errors) spdlog::error("{}", e);
  if (!users) {
    ok = false;
    return nullptr;
  }
  return std::make_shared<const smtp::UsersFile>(std::move(*users));
}

/// http.api_keys_file's keys and scopes (http/api_keys.hpp); nullopt after logging its errors.
std::optional<http::ApiKeyMatcher> load_api_keys(const std::string& path) {
  const auto file = http::load_api_keys(path);
  for (const auto& e : file.errors) spdlog::error("http.api_keys_file: {}", e);
  if (!file.ok()) return std::nullopt;
  return http::ApiKeyMatcher(file.keys);
}

std::size_t spool_depth(const std::string& dir) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    ++n;
  }
  return n;
}

/// The certificates the SMTP and HTTPS listeners serve, with their notAfter
/// (unsubrelay_tls_certificate_expiry_timestamp_seconds).
std::vector<common::ServedCertificate> served_certificates(const config::Config& cfg) {
  std::vector<common::ServedCertificate> served;
  auto add = [&](const char* listener, const std::optional<config::TlsFiles>& tls) {
    if (!tls) return;
    std::string err;
    if (auto t = common::certificate_not_after(tls->cert, err)) {
      served.push_back({listener, tls->cert, *t});
    } else {
      spdlog::warn("{}.tls.cert: no expiry metric: {}", listener, err);
    }
  };
  add("smtp", cfg.smtp.tls);
  if (!cfg.http.listen_tls.empty()) add("http", cfg.http.tls);
  return served;
}

}  // namespace

int run_relay(const std::string& config_path) {
  auto loaded = config::load_file(config_path);
  for (const auto& e : loaded.errors) std::cerr << e.to_string(config_path) << "\n";
  if (!loaded.ok()) {
    std::cerr << fmt::format("{}: {} error(s); not starting\n", config_path, loaded.errors.size());
    return 78;
  }
  // With tenants, the top-level objects below are the tenant "default"'s (SPEC Part 3).
  const auto* declared_default = loaded.config.find_tenant("default");
  const config::Config cfg =
      declared_default ? tenant_view(loaded.config, *declared_default) : std::move(loaded.config);
  setup_logging(cfg.log);
  keep_freed_memory();
  const auto descriptors = apply_descriptor_budget(cfg);

  spool::Spool spool(cfg.spool.path, std::size_t{cfg.spool.memory_limit_mb} << 20);
  if (cfg.spool.segments) {
    spool.use_segments(std::size_t{cfg.spool.segment_max_kb} << 10, false,
                       std::uint64_t{cfg.spool.segment_file_mb} << 20);
  } else if (spool::Spool::holds_segments(cfg.spool.path)) {
    // A downgrade: what the segments hold is still delivered; every new message is a queue file (max 0).
    spdlog::warn("spool.format: files, but {}/segments holds messages: they are delivered from there",
                 cfg.spool.path);
    spool.use_segments(0, false, std::uint64_t{cfg.spool.segment_file_mb} << 20);
  }
  if (auto err = spool.init(); !err.empty()) {
    spdlog::critical("spool: {}", err);
    return 73;  // EX_CANTCREAT
  }
  auto recovered = spool.recover();
  if (!recovered.error.empty()) {  // never start on a spool read in part: its messages would wait unseen
    spdlog::critical("spool: {}", recovered.error);
    return 74;  // EX_IOERR
  }
  // `queue delete` requests left while no relay ran: carried out before anything is delivered.
  const auto deleted = delivery::log_applied_requests(spool.apply_requests());
  std::erase_if(recovered.queued, [&deleted](const std::string& id) {
    return std::find(deleted.begin(), deleted.end(), id) != deleted.end();
  });
  for (const auto& n : recovered.notes) spdlog::warn("spool: {}", n);
  for (const auto& q : recovered.quarantined) spdlog::error("spool: damaged queue file moved to corrupt/: {}", q);
  spdlog::info("spool {}: {} message(s) to deliver, {} unacknowledged partial file(s) removed", cfg.spool.path,
               recovered.queued.size(), recovered.incomplete_removed);

  std::string err;
  const auto shards = delivery::shard_count(cfg.upstream);
  auto upstreams = delivery::make_shard_upstreams(cfg.upstream, shards, cfg.smtp.hostname, cfg.tls, err);
  if (upstreams.empty()) {
    spdlog::critical("upstream: {}", err);
    return 78;
  }

  bool users_ok = true;
  auto users = load_users(cfg, users_ok);
  if (!users_ok) return 78;

  auto keys = mime::load_keys(cfg.unsubscribe, err, true);
  if (!keys) {
    spdlog::critical("unsubscribe keys: {}", err);
    return 78;
  }
  std::vector<std::shared_ptr<const dkim::Signer>> signers;
  for (const auto& d : cfg.dkim) {
    auto signer = dkim::Signer::load(d, err);
    if (!signer) {
      spdlog::critical("{}", err);
      return 78;
    }
    signers.push_back(signer);
  }
  auto store = store::open(cfg.store, err);
  if (!store) {
    spdlog::critical("{}", err);
    return 78;
  }
  // Erased addresses stay suppressed as keyed hashes (store/contact.hpp).
  store->set_erasure_keys(store::ErasureKeys(*keys));
  mime::Rewriter rewriter(cfg.unsubscribe, std::move(*keys), signers, cfg.upstream.kind == config::UpstreamKind::ses);
  rewriter.set_strip_field(cfg.smtp.tenant_header);  // the tenant default's copies lose it too

  // An explicit http.page_template must be readable (check-config says so); the
  // default conf/unsubscribe.html falls back to the built-in copy of itself.
  auto page = spool::read_file(cfg.http.page_template);
  if (!page) {
    spdlog::info("http.page_template {} not found here: using the built-in page", cfg.http.page_template);
    page = std::string(http::embedded_page);
  }
  auto api_keys = load_api_keys(cfg.http.api_keys_file);
  if (!api_keys) return 78;
  http::Service service(cfg, rewriter.keys(), *store, *page, std::move(*api_keys),
                        [&spool] { return std::filesystem::is_directory(spool.messages_dir()); });

  asio::io_context io(1);  // run by the main thread only; the other io threads have their own
  const unsigned io_count =
      cfg.smtp.io_threads ? cfg.smtp.io_threads : std::clamp(std::thread::hardware_concurrency(), 2u, 8u);
  IoThreads io_threads(io, io_count);
  // Spool commits and store transactions block in fsync: they run here, many
  // at once, so the file system commits them together (common/offload.hpp).
  constexpr std::size_t disk_threads = 32;
  asio::thread_pool disk(disk_threads);
  name_pool_threads(disk, disk_threads, "disk");
  spool.set_background([&disk](std::function<void()> task) { asio::post(disk, std::move(task)); });
  // Tenants' objects (app/tenants.hpp), opened below: declared before the queue, so they outlive its threads.
  TenantSet tenant_set(cfg);
  const auto& tenants = tenant_set.tenants;
  auto& tenant_counters = tenant_set.counters;
  delivery::RetryPolicy retry{cfg.spool.retry_min_seconds, cfg.spool.retry_max_seconds, cfg.spool.max_age_hours};
  delivery::QueueShards queue(std::move(upstreams), disk, spool, retry, cfg.smtp.hostname, &rewriter, store.get(),
                              cfg.unsubscribe.suppression);
  // The feedback loop (docs/feedback.md): in-session bounces, VERP, sent_after_optout
  // always; DSN/ARF intake (the local transport) with a feedback: section.
  feedback::FeedbackMetrics feedback_metrics;
  const std::string default_label = cfg.tenants.empty() ? "" : "default";  // metrics: a tenant label with tenants
  feedback::Recorder feedback_recorder(*store, store::FeedbackPolicy::from(cfg.feedback), feedback_metrics,
                                       default_label);
  delivery::FeedbackHooks feedback_hooks(cfg.feedback, &feedback_recorder, cfg.unsubscribe.suppression);
  queue.set_feedback(&feedback_hooks);
  // Every other tenant: its own store, keys, DKIM, feedback objects and upstream (app/tenants.hpp).
  const delivery::TenantDelivery default_delivery{&rewriter, store.get(), nullptr, cfg.unsubscribe.suppression,
                                                   &feedback_hooks};
  if (auto failed = tenant_set.open(cfg, default_delivery, feedback_metrics, shards); !failed.empty()) {
    spdlog::critical("{}", failed);
    return 78;
  }
  if (!cfg.tenants.empty()) {
    queue.set_tenants(&tenant_set.table);
    // Fair delivery between tenants, weighted (delivery/fair_queue.hpp).
    std::map<std::string, unsigned> weights;
    for (const auto& t : cfg.tenants) weights[t.id] = t.limits.delivery_weight;
    queue.set_tenant_weights(weights);
  }
  // Reports name their tenant by the key that verified their token (SPEC Part 3).
  const auto all_keys = every_key(rewriter.keys(), tenants);
  if (cfg.feedback.enabled) {
    // One transport per delivery thread: reports it forwards go out through that thread's upstream.
    queue.set_local_transport(
        [addresses = feedback::intake_addresses(cfg)](std::string_view rcpt) {
          return addresses.classify(rcpt) != feedback::AddressKind::none;
        },
        [&](delivery::Upstream& upstream) {
          return delivery::make_feedback_transport(
              cfg.feedback, feedback::intake_addresses(cfg), all_keys, feedback_recorder,
              [&tenant_set](const std::string& key_id) -> feedback::Recorder* {
                const auto* owner = tenant_set.owner_of_key(key_id);
                return owner ? owner->feedback.get() : nullptr;
              },
              upstream, disk);
        });
  }
  // Tenants' HTTP side (app/tenants.hpp); without tenants the one Service answers everything.
  std::optional<TenantHttp> tenant_side;
  const std::function<bool()> spool_healthy = [&spool] { return std::filesystem::is_directory(spool.messages_dir()); };
  if (!cfg.tenants.empty() && !(tenant_side = tenant_http(cfg, service, rewriter.keys(), tenants,
                                                         *tenant_set.shared_list, *page, spool_healthy))) {
    return 78;
  }
  if (tenant_side) {  // /metrics: each tenant's unsubscribes, labelled
    service.metrics().tenants.emplace_back("default", &service.metrics());
    for (const auto& [id, s] : tenant_side->services) {
      if (id != store::shared_tenant) service.metrics().tenants.emplace_back(id, &s->metrics());
    }
  }
  // A token names its tenant by its key id: it is verified with that tenant's keys only.
  const auto owner_of = [&](std::string_view token) {
    const auto* owner = tenant_set.owner_of_key(token::key_id_of(token));
    return owner ? std::pair<const token::KeySet*, http::Service*>{&owner->rewriter->keys(),
                                                                   tenant_side->services.at(owner->id).get()}
                 : std::pair<const token::KeySet*, http::Service*>{&rewriter.keys(), &service};
  };
  // tenants[].limits (tenant/quotas.hpp): each tenant counted in its own store, shared by the fleet.
  std::vector<tenant::QuotaTenant> quota_tenants;
  for (const auto& t : cfg.tenants) {
    store::Store* counted_in = store.get();
    for (const auto& r : tenants) {
      if (r->id == t.id) counted_in = r->store.get();
    }
    quota_tenants.push_back({t.id, t.limits, counted_in});
  }
  tenant::Quotas quotas(quota_tenants);
  smtp::Server server(
      io, disk, cfg, spool,
      [&queue](const std::string& id, std::unique_ptr<spool::OpenMessage> opened) { queue.enqueue(id, std::move(opened)); },
      [&owner_of](const std::string& token, const std::string& ip, std::string& why) {
        return owner_of(token).second->unsubscribe_by_token(token, "mailto", ip, why);
      });
  server.set_users(users);
  server.set_session_executors(io_threads.executors());
  if (!cfg.tenants.empty()) server.set_tenant_counters(&tenant_counters);
  if (quotas.enabled()) {
    server.set_quotas([&quotas](const std::string& t, std::size_t n) { return quotas.refusal(t, n); },
                      [&quotas](const std::string& t, std::size_t n) { quotas.accepted(t, n); });
    quotas.start();
  }
  server.set_verp_check([&owner_of](std::string_view token) {
    const auto now = static_cast<std::uint32_t>(std::time(nullptr));
    return token::verify(token, *owner_of(token).first, now).claims.has_value();
  });
  if (auto start_err = server.start(); !start_err.empty()) {
    spdlog::critical("{}", start_err);
    return 71;  // EX_OSERR
  }
  common::CertificateExpiry served(served_certificates(cfg));  // for the certificate-expiry alert (docs/monitoring/)
  service.metrics().relay_metrics = [&] {
    const auto& in = server.counters();
    const auto& out = queue.counters();
    std::string m;
    auto counter = [&](const char* name, const char* help, std::uint64_t v) {
      m += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name, help, v);
    };
    counter("unsubrelay_connections_total", "SMTP connections accepted.", in.connections.load());
    // With tenants, these carry a tenant label (SPEC Part 3): one series per tenant instead of one in all.
    using C = tenant::Counters;
    auto by_tenant = [&](const char* name, const char* help, std::uint64_t all, std::atomic<std::uint64_t> C::*field) {
      if (tenant_counters.empty()) return counter(name, help, all);
      m += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n", name, help);
      for (const auto& [id, c] : tenant_counters.all()) {
        m += fmt::format("{}{{tenant=\"{}\"}} {}\n", name, id, (c.*field).load());
      }
    };
    by_tenant("unsubrelay_messages_received_total", "Messages accepted with 250.", in.messages_received.load(),
              &C::messages_received);
    by_tenant("unsubrelay_messages_refused_total", "Messages refused after DATA.", in.messages_refused.load(),
              &C::messages_refused);
    counter("unsubrelay_copies_rendered_total", "Per-recipient campaign copies rendered.", out.copies_rendered.load());
    by_tenant("unsubrelay_delivered_total", "Copies accepted by the upstream.", out.delivered.load(), &C::delivered);
    by_tenant("unsubrelay_deferred_total", "Delivery attempts deferred.", out.deferred.load(), &C::deferred);
    by_tenant("unsubrelay_bounced_total", "Recipients bounced.", out.bounced.load(), &C::bounced);
    by_tenant("unsubrelay_suppressed_total", "Recipients suppressed (unsubscribed).", out.suppressed.load(),
              &C::suppressed);
    m += out.upstream_latency.prometheus("unsubrelay_upstream_latency_seconds");
    m += feedback_metrics.prometheus();
    m += fmt::format("# HELP unsubrelay_spool_messages Messages in the spool.\n# TYPE unsubrelay_spool_messages gauge\n"
                     "unsubrelay_spool_messages {}\n", spool_depth(spool.messages_dir()) + spool.segment_messages());
    m += served.metric();
    if (quotas.enabled()) m += quotas.prometheus();
    return m;
  };
  // Client contexts come from tls.profile too (docs/tls.md); one that cannot be made stops the start.
  std::unique_ptr<http::SesFeedback> ses_feedback;
  if (cfg.feedback.ses_sns) {
    auto fetcher = http::ses_fetcher(*cfg.feedback.ses_sns, cfg.tls, err);
    if (!fetcher) {
      spdlog::critical("{}", err);
      return 78;
    }
    ses_feedback = std::make_unique<http::SesFeedback>(*cfg.feedback.ses_sns, feedback_recorder, std::move(fetcher));
    std::vector<feedback::Recorder*> tenant_recorders;
    for (const auto& t : tenants) tenant_recorders.push_back(t->feedback.get());
    ses_feedback->set_tenant_recorders(std::move(tenant_recorders));
    service.set_ses_handler([&ses_feedback](const http::Request& r) { return ses_feedback->handle(r); });
  }
  std::shared_ptr<asio::ssl::context> webhook_tls;
  const bool any_webhooks = !cfg.webhooks.empty() || std::any_of(tenants.begin(), tenants.end(), [](const auto& t) {
    return !t->view.webhooks.empty();
  });
  if (any_webhooks && !(webhook_tls = make_client_context(cfg.tls, "", err))) {
    spdlog::critical("webhooks: {}", err);
    return 78;
  }
  http::Handler& front = tenant_side ? static_cast<http::Handler&>(*tenant_side->router) : service;
  http::Server web(io, cfg.http, cfg.tls, front, descriptors.http_connections);
  web.set_session_executors(io_threads.executors());
  if (auto web_err = web.start(); !web_err.empty()) {
    spdlog::critical("{}", web_err);
    return 71;
  }
  // Delivery starts last: an early return above leaves no delivery thread
  // running while the objects it uses are destroyed.
  queue.start(recovered.queued);

  asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  std::function<void()> wait_signal;
  wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        sd_notify("RELOADING=1");
        auto again = config::load_file(config_path);
        if (!again.ok()) {
          for (const auto& e : again.errors) spdlog::error("reload: {}", e.to_string(config_path));
          spdlog::error("reload refused: the running configuration stays in force");
        } else {
          bool ok = true;
          auto fresh = load_users(again.config, ok);
          if (ok) server.set_users(fresh);
          if (tenant_side) {
            if (!reload_tenant_keys(again.config, *tenant_side, service)) {
              spdlog::error("reload: the running API keys stay in force");
            }
          } else if (auto fresh_keys = load_api_keys(again.config.http.api_keys_file)) {
            service.set_api_keys(std::move(*fresh_keys));
          } else {
            spdlog::error("reload: the running API keys stay in force");
          }
          const auto fresh_certificates = served_certificates(again.config);
          for (const auto& [listener, tls_err] : {std::pair{"smtp", server.reload_tls(again.config.smtp)},
                                                  std::pair{"http", web.reload_tls(again.config.http)}}) {
            if (!tls_err.empty()) {
              spdlog::error("reload: {}; the running certificate stays in force", tls_err);
            } else {
              served.replace(listener, fresh_certificates);
            }
          }
          spdlog::set_level(spdlog::level::from_str(again.config.log.level));
          spdlog::info("reloaded: users file, API keys, TLS certificates and log level (listeners and spool need a "
                       "restart)");
        }
        sd_notify("READY=1");
        wait_signal();
        return;
      }
      spdlog::info("signal {}: draining ({} connection(s) open)", sig, server.active_connections());
      sd_notify("STOPPING=1");
      server.stop_accepting();
      web.stop();
      server.drain();
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            const auto give_up = std::chrono::steady_clock::now() + drain_timeout;
            const auto executor = io.get_executor();  // named: no temporaries in a co_await (g++ 12)
            const auto sessions_closed = [&] { return server.active_connections() == 0; };
            co_await poll_until(executor, sessions_closed, give_up);
            co_await queue.drain();
            spdlog::info("stopped: {} message(s) received, {} delivered", server.counters().messages_received.load(),
                         queue.counters().delivered.load());
            io.stop();
          },
          asio::detached);
    });
  };
  wait_signal();

  spdlog::info("unsubrelay ready: upstream {}, spool {}, {} delivery thread(s)",
               cfg.upstream.kind == config::UpstreamKind::directory
                   ? "directory " + cfg.upstream.directory
                   : fmt::format("{}:{}", cfg.upstream.host, cfg.upstream.port),
               cfg.spool.path, queue.size());
  sd_notify("READY=1");

  // Retention: batch launch data older than store.launch_retention_days goes,
  // 500 launches per short transaction, hourly; on-event launches and
  // subscription events stay (outcome events go after store.event_retention_days). Runs on its own thread: never in the mail path.
  std::atomic<bool> stopping{false};
  // The complaint rate of each tenant's own copies (SPEC Part 3: statistics per tenant).
  std::vector<feedback::ComplaintRateWatch> complaint_rates{{*store, feedback_metrics, default_label}};
  for (const auto& t : tenants) complaint_rates.emplace_back(*t->store, feedback_metrics, t->id);
  std::thread retention([&] {
    auto next_rate = std::chrono::steady_clock::now();
    for (auto next = std::chrono::steady_clock::now(); !stopping;) {
      if (std::chrono::steady_clock::now() >= next_rate) {  // the 24-hour complaint rate, every minute
        for (auto& watch : complaint_rates) watch.check(static_cast<long long>(std::time(nullptr)));
        next_rate = std::chrono::steady_clock::now() + std::chrono::minutes(1);
      }
      if (std::chrono::steady_clock::now() >= next) {
        const auto cutoff = static_cast<long long>(std::time(nullptr)) - cfg.store.launch_retention_days * 86400LL;
        std::vector<std::pair<std::string, store::Store*>> stores{{"default", store.get()}};
        for (const auto& t : tenants) stores.emplace_back(t->id, t->store.get());  // each tenant's own (SPEC Part 3)
        // A copy's outcome events (docs/events.md) older than store.event_retention_days go too.
        const auto event_cutoff = static_cast<long long>(std::time(nullptr)) - cfg.store.event_retention_days * 86400LL;
        for (const auto& [tenant, each] : stores) {
          const auto purge = [&, &tenant = tenant, each = each](auto step, std::size_t batch) {
            std::size_t total = 0;
            for (;;) {
              const auto n = step(batch);
              if (!n) {
                spdlog::warn("retention: tenant {}: {}", tenant, each->last_error());
                break;
              }
              total += *n;
              if (*n < batch || stopping) break;
            }
            return total;
          };
          const auto total = purge([&, each = each](std::size_t n) { return each->purge_batch_launches(cutoff, n); }, 500);
          const auto events = purge([&, each = each](std::size_t n) { return each->purge_events(event_cutoff, n); }, 5000);
          const auto who = cfg.tenants.empty() ? std::string() : "tenant " + tenant + ": ";
          if (total) spdlog::info("retention: {}{} batch launch(es) older than {} days purged", who, total,
                                  cfg.store.launch_retention_days);
          if (events) spdlog::info("retention: {}{} outcome event(s) older than {} days purged", who, events,
                                   cfg.store.event_retention_days);
        }
        next = std::chrono::steady_clock::now() + std::chrono::hours(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });

  // The lease holder's name: this relay, stable across its restarts (so a restart keeps its lease).
  const auto lease_holder = fmt::format("{} {}", cfg.smtp.hostname, std::filesystem::absolute(cfg.spool.path).string());
  http::WebhookSender webhooks(cfg.webhooks, webhook_tls, *store, lease_holder, cfg.spool.path + "/webhooks");
  // Each tenant's webhooks read that tenant's events only: its own store's (SPEC Part 3).
  std::vector<std::unique_ptr<http::WebhookSender>> tenant_webhooks;
  for (const auto& t : tenants) {
    if (t->view.webhooks.empty()) continue;
    tenant_webhooks.push_back(std::make_unique<http::WebhookSender>(t->view.webhooks, webhook_tls, *t->store,
                                                                    lease_holder,
                                                                    cfg.spool.path + "/webhooks-" + t->id));
  }

  // SMTP sessions and HTTP; delivery (with its upstream connections) runs on
  // the queue shards' own threads (deliver-N), the disk work on the disk pool.
  // Each io thread has a context of its own (common/io_threads.hpp).
  io_threads.start();
  io.run();
  io_threads.stop();
  disk.join();
  stopping = true;
  retention.join();
  webhooks.stop();
  for (auto& w : tenant_webhooks) w->stop();
  return 0;
}

}  // namespace unsubrelay::app
