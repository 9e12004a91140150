// queue_shards.hpp: delivery on several threads, the queue sharded by queue id.
//
// One queue manager on one strand kept every copy of every message on one
// core. Here each of upstream.delivery_threads managers has its own thread
// and io_context (no cross-thread hand-off per copy), its own upstream
// connections (a share of upstream.max_connections and of
// max_messages_per_second) and the queue ids that hash to it. They share the
// spool, the disk pool, the counters and the store's group commit. A message
// is handed to its shard once, when it is queued; everything after that stays
// on the shard's thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <utility>  // before Asio, see upstream.hpp
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "unsubrelay/delivery/queue_manager.hpp"

namespace unsubrelay::delivery {

class QueueShards {
 public:
  /// One shard per upstream; upstreams[i] serves shard i only.
  QueueShards(std::vector<std::unique_ptr<Upstream>> upstreams, boost::asio::thread_pool& disk,
              const spool::Spool& spool, RetryPolicy retry, const std::string& hostname,
              const mime::Rewriter* rewriter = nullptr, store::Store* store = nullptr,
              config::Suppression suppression = config::Suppression::global);
  ~QueueShards();  // stops and joins the shards' threads

  /// The local transport (QueueManager::set_local_transport), one per shard:
  /// make(shard's upstream) builds the shard's own, so what it forwards goes out
  /// on the shard's thread and connection pool. Set before start().
  void set_local_transport(std::function<bool(std::string_view recipient)> accepts,
                           const std::function<std::unique_ptr<Upstream>(Upstream& upstream)>& make);
  /// The feedback loop's hooks, shared by every shard (their store work runs on the disk pool).
  void set_feedback(FeedbackHooks* hooks);
  /// The tenants' delivery weights (QueueManager::set_tenant_weights), for every shard. Set before start().
  void set_tenant_weights(const std::map<std::string, unsigned>& weights);
  /// SPEC Part 3: every tenant's delivery (queue_manager.hpp); set before start().
  void set_tenants(const TenantTable* tenants);
  /// Starts the threads, each manager with its share of the messages found at start-up.
  void start(const std::vector<std::string>& recovered);
  /// A message was just committed to the spool: its shard delivers it now.
  void enqueue(std::string id, std::unique_ptr<spool::OpenMessage> opened = nullptr);
  /// Stops scheduling and waits for every shard's deliveries in flight (the
  /// shards drain at the same time).
  boost::asio::awaitable<void> drain();

  /// Every shard has begun its drain: none starts a new attempt.
  bool stopping() const;
  const QueueCounters& counters() const { return counters_; }
  std::size_t size() const { return shards_.size(); }

 private:
  struct Shard {
    boost::asio::io_context io{1};  // one thread: no locking between its handlers
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::unique_ptr<Upstream> upstream;
    std::unique_ptr<Upstream> local;  // the shard's local transport, if any
    std::unique_ptr<QueueManager> manager;
    std::thread thread;
  };

  QueueCounters counters_;
  std::unique_ptr<store::DeliveryRecorder> recorder_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

/// The upstream settings of shard index of count: its share of max_connections
/// (the shares add up to it; at least one each) and of max_messages_per_second.
config::Upstream shard_settings(const config::Upstream& settings, std::size_t count, std::size_t index);

/// One upstream (connection pool) per shard, each with its share of the
/// limits; empty, and error set, when one cannot be made.
std::vector<std::unique_ptr<Upstream>> make_shard_upstreams(const config::Upstream& settings, std::size_t shards,
                                                            const std::string& helo_name, const config::Tls& tls,
                                                            std::string& error);

/// How many shards: upstream.delivery_threads (0: one per core, 1 to 8), never
/// more than max_connections.
std::size_t shard_count(const config::Upstream& settings);

}  // namespace unsubrelay::delivery
