// queue_manager.hpp: schedules spooled messages for delivery (Postfix's qmgr).
//
// It keeps the set of queued messages in memory, delivers the due ones
// through the upstream with at most upstream.concurrency() copies in flight,
// records each recipient's outcome in its queue file, retries deferrals with
// exponential backoff and bounces what is refused or too old. All of its state
// lives on one strand; enqueue() may be called from any thread. Several of
// them, each on its own thread with its own share of the queue ids, deliver
// in parallel (queue_shards.hpp).
#pragma once

#include <atomic>
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <string_view>
#include <vector>

#include <utility>  // before Asio, see upstream.hpp
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include "unsubrelay/common/offload.hpp"
#include "unsubrelay/delivery/fair_queue.hpp"
#include "unsubrelay/delivery/retry.hpp"
#include "unsubrelay/delivery/upstream.hpp"
#include "unsubrelay/mime/rewriter.hpp"
#include "unsubrelay/spool/spool.hpp"
#include "unsubrelay/store/group_commit.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/tenant/counters.hpp"

namespace unsubrelay::delivery {

class FeedbackHooks;

/// Logs what `queue delete` requests did (spool::Spool::apply_requests): at
/// start-up (run.cpp) and in the relay's upkeep. Returns the ids deleted.
std::vector<std::string> log_applied_requests(spool::Spool::AppliedRequests applied);

/// Upstream latency per copy, as a Prometheus histogram (seconds).
struct LatencyHistogram {
  static constexpr double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  std::atomic<std::uint64_t> buckets[std::size(bounds)]{};
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> sum_micros{0};
  void observe(double seconds);
  std::string prometheus(const char* name) const;
};

struct QueueCounters {
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> deferred{0};
  std::atomic<std::uint64_t> bounced{0};
  std::atomic<std::uint64_t> copies_rendered{0};
  std::atomic<std::uint64_t> suppressed{0};
  LatencyHistogram upstream_latency;
};

/// A queue manager as shard index of count (QueueShards): it keeps the queue ids
/// it owns, hands others (the bounces it queues) to route, and shares
/// counters and the store's group commit with its siblings. A manager given
/// no counters or recorder (alone, or in tests) has its own.
struct ShardLink {
  std::size_t index = 0;
  std::size_t count = 1;
  std::function<void(const std::string& id)> route;  // enqueue on the owning shard
  std::function<void()> flush_all;                   // `queue flush` seen: every shard flushes
  QueueCounters* counters = nullptr;
  store::DeliveryRecorder* recorder = nullptr;
};

/// One tenant's campaign handling (SPEC Part 3): its rewriter (keys, links,
/// DKIM), its store, its feedback hooks (VERP domain), and the header fields
/// its copies get when they lack them (tenants[].ses).
struct TenantDelivery {
  const mime::Rewriter* rewriter = nullptr;
  store::Store* store = nullptr;
  store::DeliveryRecorder* recorder = nullptr;
  config::Suppression suppression = config::Suppression::global;
  FeedbackHooks* feedback = nullptr;
  std::vector<std::pair<std::string, std::string>> added_fields;
  tenant::Counters* counters = nullptr;  // this tenant's share of the queue counters (/metrics), or none
  store::Store* shared = nullptr;        // suppression: shared: the installation-wide list, also honoured
  /// tenants[].upstream: its own connection pool, one per delivery shard (by
  /// shard index); empty: the shard's. Its copies still share the shard's copy slots.
  std::vector<Upstream*> upstreams;
};
/// Tenant id -> its delivery; a message of a tenant missing here waits (451) in the queue.
using TenantTable = std::map<std::string, TenantDelivery, std::less<>>;

class QueueManager {
 public:
  /// Campaign handling (rewriting, suppression, launch records) needs both
  /// rewriter and store; without them copies are the message as spooled.
  /// disk: the pool that runs spool and store work (fsyncs), off the network threads.
  QueueManager(boost::asio::io_context& io, boost::asio::thread_pool& disk, const spool::Spool& spool,
               Upstream& upstream, RetryPolicy retry, std::string hostname, const mime::Rewriter* rewriter = nullptr,
               store::Store* store = nullptr, config::Suppression suppression = config::Suppression::global,
               ShardLink shard = {});

  /// Where mail for this relay itself goes instead of the upstream, as Postfix
  /// hands it to its local transport (COORD.md design decision 3: DSNs and ARF
  /// reports to the feedback processor). A recipient accepts() says yes to is
  /// handed, unchanged and unsuppressed, to transport. Set before start().
  struct LocalTransport {
    std::function<bool(std::string_view recipient)> accepts;
    Upstream* transport = nullptr;
  };
  void set_local_transport(LocalTransport local) { local_ = std::move(local); }
  /// The feedback loop (issue 12, feedback_hooks.hpp): VERP senders, in-session
  /// bounce classification, soft bounces on expiry, sent_after_optout. Set before start().
  void set_feedback(FeedbackHooks* hooks) {
    feedback_ = hooks;
    default_.feedback = hooks;
  }
  /// SPEC Part 3: the tenants' deliveries, read by every attempt (not copied;
  /// it outlives the manager). Without it every message is the constructor's. Set before start().
  void set_tenants(const TenantTable* tenants) { tenants_ = tenants; }
  /// Each tenant's share of delivery when tenants compete (tenants[].limits.delivery_weight;
  /// 1 when absent; "" and "default" are one tenant): fair_queue.hpp. Set before start().
  void set_tenant_weights(const std::map<std::string, unsigned>& weights) { weights_ = TenantWeights(weights); }

  /// Which shard of count owns a queue id.
  static std::size_t shard_of(const std::string& id, std::size_t count);
  /// `queue flush`: everything this manager owns is due now.
  void flush();

  /// Starts the scheduler with the messages found at start-up.
  void start(const std::vector<std::string>& recovered);
  /// A message was just committed to the spool: deliver it now, from memory
  /// when the SMTP session handed over its content (spool::QueueWriter::opened).
  void enqueue(std::string id, std::unique_ptr<spool::OpenMessage> opened = nullptr);
  /// Stops scheduling and waits for the deliveries in flight to finish.
  boost::asio::awaitable<void> drain();
  /// A drain has begun: no new attempt starts (any thread may ask).
  bool stopping() const { return stopping_; }

  const QueueCounters& counters() const { return *counters_; }

 private:
  struct Entry {
    long long next_try = 0;
    std::shared_ptr<spool::OpenMessage> opened;  // content still in memory, for the first attempt
    std::optional<std::string> tenant;           // from the queue file; unknown until read
    bool ready = false;                          // in ready_
    bool in_flight = false;
    bool classifying = false;                    // in unclassified_: its tenant is being read
  };
  struct Attempt;      // one delivery attempt of one message (queue_attempt.cpp)
  struct CopyOutcome;  // what happened to one recipient's copy

  boost::asio::awaitable<void> schedule_loop();
  void make_due(const std::string& id, Entry& entry);
  boost::asio::awaitable<void> classify_loop();  // the tenants of unclassified_, read on the disk pool
  void schedule_at(const std::string& id, long long when);
  void start_due();
  boost::asio::awaitable<void> deliver(std::string id);  // attempt(), with a safety net

  // The steps of one attempt (queue_attempt.cpp), in order.
  boost::asio::awaitable<void> attempt(std::string id);
  void prepare(Attempt& a);                // disk pool: the next three
  bool load(Attempt& a);                   //   queue file, state, content
  void plan_campaign(Attempt& a);          //   render plan, launch record, send scope
  void look_up_recipients(Attempt& a);     //   suppression verdicts, one store call; whose uids to look up
  void look_up_uids(Attempt& a, Resume resume);  // disk pool: the uids, in the group commit; then resume
  bool honour_shared_list(Attempt& a, const std::vector<store::SendRecipient>& recipients);
  boost::asio::awaitable<void> send_copies(Attempt& a);
  boost::asio::awaitable<void> deliver_copy(Attempt& a, std::size_t i);
  boost::asio::awaitable<CopyOutcome> copy_outcome(Attempt& a, std::size_t i);
  OutboundCopy render_copy(const Attempt& a, std::size_t i, std::string& rendered);
  boost::asio::awaitable<RecipientResult> send_copy(Upstream& via, OutboundCopy copy);
  void record_outcome(Attempt& a, std::size_t i, const CopyOutcome& outcome);
  /// The delivery of a message's tenant ("" = default); nullptr: not configured here.
  const TenantDelivery* tenant_of(const std::string& id) const;
  boost::asio::awaitable<void> finish(Attempt& a);
  void expire_deferred(Attempt& a, long long now);
  void settle(Attempt& a, long long now, unsigned attempts, long long next, Resume resume);  // disk pool
  void settle_spool(Attempt& a, long long now, unsigned attempts, long long next);  // after the sends' commit

  /// When a message that failed its attempts-th attempt at now is tried again.
  long long retry_at(long long now, unsigned attempts) const;
  boost::asio::awaitable<void> acquire_copy_slot(const std::string& tenant);
  void release_copy_slot();
  /// Queues a DSN to the sender; its queue id, or "" (none sent).
  std::string queue_bounce(const spool::QueuedMessage& message, const std::vector<struct FailedRecipient>& failed,
                           std::string_view content, long long now);
  void rescan();
  /// Shard 0, once a second (disk pool): `queue delete` requests, segment compaction.
  boost::asio::awaitable<void> upkeep();
  bool owns(const std::string& id) const { return shard_.count <= 1 || shard_of(id, shard_.count) == shard_.index; }

  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;
  Strand strand_;
  boost::asio::thread_pool& disk_;
  const spool::Spool& spool_;
  Upstream& upstream_;
  LocalTransport local_;
  FeedbackHooks* feedback_ = nullptr;
  RetryPolicy retry_;
  std::string hostname_;
  const mime::Rewriter* rewriter_;
  store::Store* store_;
  config::Suppression suppression_;
  ShardLink shard_;
  std::unique_ptr<store::DeliveryRecorder> own_recorder_;  // only without a shard's
  store::DeliveryRecorder* recorder_ = nullptr;
  TenantDelivery default_;                 // the constructor's rewriter and store: tenant "default"
  const TenantTable* tenants_ = nullptr;
  boost::asio::steady_timer wake_;
  TenantWeights weights_;
  // Copy slots: at most upstream.concurrency() copies in flight; a freed slot
  // goes straight to the next waiter in fair order between tenants (its timer
  // is cancelled), one wake-up per slot.
  std::size_t copies_in_flight_ = 0;
  FairQueue<boost::asio::steady_timer*> slot_waiters_{weights_};
  // The queue: every message this manager owns; the due ones in arrival order
  // per tenant, served fairly between tenants; the deferred ones by next try.
  // O(log n) per message, whatever the backlog. A message whose tenant is not
  // known yet (found at start-up, or queued without its content) waits in
  // unclassified_ until its queue file's envelope has been read.
  std::unordered_map<std::string, Entry> entries_;
  FairQueue<std::string> ready_{weights_};
  std::deque<std::string> unclassified_;
  bool classifying_ = false;  // classify_loop() runs
  bool upkeep_ = false;       // upkeep() runs on the disk pool (drain waits for it)
  long long polled_at_ = -1;  // the second of the last flush-request check and upkeep (shard 0)
  std::multimap<long long, std::string> waiting_;
  std::size_t in_flight_ = 0;  // messages being attempted
  std::atomic<bool> stopping_{false};  // written on the strand only
  std::unique_ptr<QueueCounters> own_counters_;  // only without a shard's
  QueueCounters* counters_ = nullptr;
};

}  // namespace unsubrelay::delivery
