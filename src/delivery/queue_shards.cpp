// queue_shards.cpp: queue managers on their own threads, the queue split by id.
#include "unsubrelay/delivery/queue_shards.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <exception>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

#include "unsubrelay/common/poll.hpp"

namespace unsubrelay::delivery {

namespace asio = boost::asio;

namespace {
std::string what(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}
}  // namespace

QueueShards::QueueShards(std::vector<std::unique_ptr<Upstream>> upstreams, asio::thread_pool& disk,
                         const spool::Spool& spool, RetryPolicy retry, const std::string& hostname,
                         const mime::Rewriter* rewriter, store::Store* store, config::Suppression suppression)
    : recorder_(rewriter && store ? std::make_unique<store::DeliveryRecorder>(*store) : nullptr) {
  const auto count = upstreams.size();
  for (std::size_t i = 0; i < count; ++i) {
    auto shard = std::make_unique<Shard>();
    shard->upstream = std::move(upstreams[i]);
    ShardLink link{i, count, [this](const std::string& id) { enqueue(id); },
                   [this] {
                     for (auto& s : shards_) s->manager->flush();
                   },
                   &counters_, recorder_.get()};
    shard->manager = std::make_unique<QueueManager>(shard->io, disk, spool, *shard->upstream, retry, hostname,
                                                    rewriter, store, suppression, std::move(link));
    shards_.push_back(std::move(shard));
  }
}

QueueShards::~QueueShards() {
  for (auto& s : shards_) {
    s->work.reset();
    s->io.stop();
  }
  for (auto& s : shards_) {
    if (s->thread.joinable()) s->thread.join();
  }
}

void QueueShards::set_local_transport(std::function<bool(std::string_view recipient)> accepts,
                                      const std::function<std::unique_ptr<Upstream>(Upstream& upstream)>& make) {
  for (auto& s : shards_) {
    s->local = make(*s->upstream);
    s->manager->set_local_transport({accepts, s->local.get()});
  }
}

void QueueShards::set_feedback(FeedbackHooks* hooks) {
  for (auto& s : shards_) s->manager->set_feedback(hooks);
}

void QueueShards::set_tenant_weights(const std::map<std::string, unsigned>& weights) {
  for (auto& s : shards_) s->manager->set_tenant_weights(weights);
}

std::vector<std::unique_ptr<Upstream>> make_shard_upstreams(const config::Upstream& settings, std::size_t shards,
                                                            const std::string& helo_name, const config::Tls& tls,
                                                            std::string& error) {
  std::vector<std::unique_ptr<Upstream>> out;
  for (std::size_t i = 0; i < shards; ++i) {
    const auto per_shard = shard_settings(settings, shards, i);
    auto upstream = settings.kind == config::UpstreamKind::directory
                        ? make_directory_upstream(per_shard, &error)
                        : make_smtp_upstream(per_shard, helo_name, &error, tls);
    if (!upstream) return {};
    out.push_back(std::move(upstream));
  }
  return out;
}

void QueueShards::set_tenants(const TenantTable* tenants) {
  for (auto& s : shards_) s->manager->set_tenants(tenants);
}

void QueueShards::start(const std::vector<std::string>& recovered) {
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    auto& s = shards_[i];
    s->manager->start(recovered);  // each keeps the ids it owns
    s->thread = std::thread([io = &s->io] { io->run(); });
    // Named, so top -H and /proc/PID/task/*/comm show each shard's CPU.
    ::pthread_setname_np(s->thread.native_handle(), fmt::format("deliver-{}", i).c_str());
  }
}

void QueueShards::enqueue(std::string id, std::unique_ptr<spool::OpenMessage> opened) {
  auto& shard = *shards_[QueueManager::shard_of(id, shards_.size())];
  shard.manager->enqueue(std::move(id), std::move(opened));
}

asio::awaitable<void> QueueShards::drain() {
  // Every shard stops and waits for its own deliveries at the same time: with
  // a slow upstream, shutdown takes one shard's drain, not the sum of them.
  // The shards' completions only count down (they run on the shards' threads
  // and must not hold anything of the caller's executor, which may be gone
  // when their frames are destroyed); the caller polls, as a shard does.
  auto left = std::make_shared<std::atomic<std::size_t>>(shards_.size());
  for (auto& s : shards_) {
    asio::co_spawn(s->io, s->manager->drain(), [left](std::exception_ptr e) {
      if (e) spdlog::error("queue drain: {}", what(e));
      --*left;
    });
  }
  // Named: no temporaries in a co_await's full expression (g++ 12 destroys them twice).
  const auto executor = co_await asio::this_coro::executor;
  const auto all_drained = [left] { return *left == 0; };
  co_await poll_until(executor, all_drained);
}

bool QueueShards::stopping() const {
  return std::all_of(shards_.begin(), shards_.end(), [](const auto& s) { return s->manager->stopping(); });
}

config::Upstream shard_settings(const config::Upstream& settings, std::size_t count, std::size_t index) {
  auto out = settings;
  count = std::max<std::size_t>(count, 1);
  // The first max_connections % count shards take one more: the shares add up to max_connections.
  const auto share = settings.max_connections / count + (index < settings.max_connections % count ? 1 : 0);
  out.max_connections = std::max<std::size_t>(1, share);
  out.max_messages_per_second = settings.max_messages_per_second / static_cast<double>(count);
  return out;
}

std::size_t shard_count(const config::Upstream& settings) {
  std::size_t n = settings.delivery_threads;
  if (n == 0) n = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 8);
  return std::clamp<std::size_t>(n, 1, std::max<std::size_t>(settings.max_connections, 1));
}

}  // namespace unsubrelay::delivery
