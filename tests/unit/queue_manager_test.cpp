// queue_manager_test.cpp: the queue manager against fake upstreams: which copy
// goes where, what is recorded in the spool, and when a message leaves it.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "unsubrelay/delivery/queue_manager.hpp"
#include "unsubrelay/delivery/queue_shards.hpp"

using namespace unsubrelay;
namespace fs = std::filesystem;
namespace asio = boost::asio;

namespace {

/// Records each copy handed to it and answers with a fixed status.
class FakeUpstream final : public delivery::Upstream {
 public:
  explicit FakeUpstream(delivery::DeliveryStatus answer, std::string reply = "250 2.0.0 Ok")
      : answer_(answer), reply_(std::move(reply)) {}
  asio::awaitable<std::vector<delivery::RecipientResult>> deliver(delivery::OutboundCopy copy) override {
    std::lock_guard lock(mutex_);
    for (const auto& r : copy.recipients) got.push_back({r, std::string(copy.content)});
    co_return std::vector<delivery::RecipientResult>(copy.recipients.size(), {answer_, reply_, "fake", {}});
  }
  std::size_t concurrency() const override { return 4; }
  std::vector<std::pair<std::string, std::string>> copies() {
    std::lock_guard lock(mutex_);
    return got;
  }

 private:
  delivery::DeliveryStatus answer_;
  std::string reply_;
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::string>> got;
};

/// Holds every copy until opened, one copy at a time; counts what it was given.
class GateUpstream final : public delivery::Upstream {
 public:
  asio::awaitable<std::vector<delivery::RecipientResult>> deliver(delivery::OutboundCopy copy) override {
    ++held;
    asio::steady_timer poll(co_await asio::this_coro::executor);
    while (!open) {
      poll.expires_after(std::chrono::milliseconds(5));
      co_await poll.async_wait(asio::use_awaitable);
    }
    ++delivered;
    co_return std::vector<delivery::RecipientResult>(copy.recipients.size(),
                                                     {delivery::DeliveryStatus::sent, "250 2.0.0 Ok", "gate", {}});
  }
  std::size_t concurrency() const override { return 1; }
  std::atomic<bool> open{false};
  std::atomic<int> held{0};
  std::atomic<int> delivered{0};
};

/// Answers every copy after a delay, concurrency copies at a time; records
/// the recipients in the order their copies were handed to it.
class SlowUpstream final : public delivery::Upstream {
 public:
  SlowUpstream(std::chrono::milliseconds delay, std::size_t concurrency) : delay_(delay), concurrency_(concurrency) {}
  asio::awaitable<std::vector<delivery::RecipientResult>> deliver(delivery::OutboundCopy copy) override {
    {
      std::lock_guard lock(mutex_);
      for (const auto& r : copy.recipients) order_.push_back(r);
    }
    asio::steady_timer wait(co_await asio::this_coro::executor, delay_);
    co_await wait.async_wait(asio::use_awaitable);
    co_return std::vector<delivery::RecipientResult>(copy.recipients.size(),
                                                     {delivery::DeliveryStatus::sent, "250 2.0.0 Ok", "slow", {}});
  }
  std::size_t concurrency() const override { return concurrency_; }
  std::vector<std::string> order() {
    std::lock_guard lock(mutex_);
    return order_;
  }
  std::size_t count() {
    std::lock_guard lock(mutex_);
    return order_.size();
  }

 private:
  std::chrono::milliseconds delay_;
  std::size_t concurrency_;
  std::mutex mutex_;
  std::vector<std::string> order_;
};

/// Where recipient is in order (order.size() when absent).
std::size_t position(const std::vector<std::string>& order, const std::string& recipient) {
  return static_cast<std::size_t>(std::find(order.begin(), order.end(), recipient) - order.begin());
}

/// Waits (sleeping) until done() or the time is up; done()'s last answer.
template <class Done>
bool wait_until(Done done, std::chrono::seconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

/// count upstreams of type U for the shards, and pointers to them for the test.
template <class U, class... Args>
std::vector<std::unique_ptr<delivery::Upstream>> make_upstreams(std::size_t count, std::vector<U*>& out, Args... args) {
  std::vector<std::unique_ptr<delivery::Upstream>> upstreams;
  for (std::size_t i = 0; i < count; ++i) {
    auto up = std::make_unique<U>(args...);
    out.push_back(up.get());
    upstreams.push_back(std::move(up));
  }
  return upstreams;
}

struct Harness {
  fs::path dir;
  spool::Spool spool;
  asio::io_context io;
  asio::thread_pool disk{2};
  Harness() : dir(make_dir()), spool(dir.string()) { EXPECT_EQ(spool.init(), ""); }
  ~Harness() {
    disk.join();
    fs::remove_all(dir);
  }
  static fs::path make_dir() {
    char tmpl[] = "/tmp/unsubrelay-qmgr-XXXXXX";
    return ::mkdtemp(tmpl);
  }
  std::string queue(std::vector<std::string> recipients, const std::string& content, const std::string& tenant = "") {
    return submit(std::move(recipients), content, tenant).first;
  }
  /// As the SMTP session queues a message: committed, and open with its content in memory.
  std::pair<std::string, std::unique_ptr<spool::OpenMessage>> submit(std::vector<std::string> recipients,
                                                                     const std::string& content,
                                                                     const std::string& tenant = "") {
    std::string err;
    auto w = spool.create({static_cast<long long>(std::time(nullptr)), "127.0.0.1", "test", "", false,
                           "s@example.com", std::move(recipients), tenant},
                          &err);
    EXPECT_TRUE(w) << err;
    EXPECT_EQ(w->append(content), "");
    EXPECT_EQ(w->commit(), "");
    return {w->id(), w->opened()};
  }
  /// Runs the relay's loop until done() or 10 s, then drains the queue manager.
  template <class Done>
  void run(delivery::QueueManager& qm, Done done) {
    std::thread loop([this] {
      auto guard = asio::make_work_guard(io);
      io.run();
    });
    wait_until(done, std::chrono::seconds(10));
    asio::co_spawn(io, qm.drain(), asio::use_future).get();
    io.stop();
    loop.join();
  }
};

}  // namespace

// Mail to the relay's own feedback addresses goes to the local transport,
// unchanged; everything else to the upstream; the message then leaves the spool.
TEST(QueueManager, LocalRecipientsGoToTheLocalTransport) {
  Harness h;
  FakeUpstream upstream(delivery::DeliveryStatus::sent), local(delivery::DeliveryStatus::sent);
  delivery::QueueManager qm(h.io, h.disk, h.spool, upstream, {300, 4000, 120}, "relay.test");
  qm.set_local_transport({[](std::string_view r) { return r.starts_with("b+"); }, &local});
  const std::string content = "Subject: hi\r\n\r\nbody\r\n";
  const auto id = h.queue({"a@example.org", "b+TOKEN@bounces.example.com", "c@example.org"}, content);
  qm.start({});
  qm.enqueue(id);
  h.run(qm, [&] { return qm.counters().delivered == 3 && !fs::exists(h.dir / "messages" / id); });
  const auto up = upstream.copies();
  ASSERT_EQ(up.size(), 2u);
  EXPECT_EQ(up[0].second, content);
  ASSERT_EQ(local.copies().size(), 1u);
  EXPECT_EQ(local.copies()[0].first, "b+TOKEN@bounces.example.com");
  EXPECT_EQ(local.copies()[0].second, content);
  EXPECT_FALSE(fs::exists(h.dir / "messages" / id));
}

// A deferred copy keeps the message queued with its delivered marks: the next
// attempt tries only the recipient that waits.
TEST(QueueManager, DeferredRecipientsStayQueuedWithTheirState) {
  Harness h;
  FakeUpstream upstream(delivery::DeliveryStatus::sent), local(delivery::DeliveryStatus::deferred, "451 4.3.0 busy");
  delivery::QueueManager qm(h.io, h.disk, h.spool, upstream, {300, 4000, 120}, "relay.test");
  qm.set_local_transport({[](std::string_view r) { return r.starts_with("b+"); }, &local});
  const auto id = h.queue({"a@example.org", "b+X@bounces.example.com"}, "Subject: x\r\n\r\ny\r\n");
  qm.start({});
  qm.enqueue(id);
  h.run(qm, [&] { return qm.counters().deferred == 1 && qm.counters().delivered == 1; });
  const auto m = h.spool.load(id);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->state.recipients[0], spool::RecipientStatus::delivered);
  EXPECT_EQ(m->state.recipients[1], spool::RecipientStatus::pending);
  EXPECT_EQ(m->state.attempts, 1u);
  EXPECT_EQ(m->state.last_reason, "451 4.3.0 busy");
}

// Sharded delivery: every message goes to the shard its queue id hashes to,
// each shard on its own thread with its own upstream; every recipient gets
// exactly one copy and every message leaves the spool.
TEST(QueueShards, EveryMessageIsDeliveredOnceByTheShardThatOwnsIt) {
  Harness h;
  std::vector<FakeUpstream*> fakes;
  auto upstreams = make_upstreams(2, fakes, delivery::DeliveryStatus::sent);
  std::vector<std::vector<std::pair<std::string, std::string>>> per_shard;
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    ids.push_back(h.queue({"a" + std::to_string(i) + "@example.org", "b" + std::to_string(i) + "@example.org"},
                          "Subject: s\r\n\r\nbody " + std::to_string(i) + "\r\n"));
  }
  {
    delivery::QueueShards shards(std::move(upstreams), h.disk, h.spool, {300, 4000, 120}, "relay.test");
    ASSERT_EQ(shards.size(), 2u);
    // Half the messages were found at start-up, half arrive afterwards.
    shards.start(std::vector<std::string>(ids.begin(), ids.begin() + 20));
    for (std::size_t i = 20; i < ids.size(); ++i) shards.enqueue(ids[i]);
    wait_until([&] { return shards.counters().delivered >= 80 && h.spool.list_ids().empty(); },
               std::chrono::seconds(20));
    asio::io_context io;
    auto drained = asio::co_spawn(io, shards.drain(), asio::use_future);
    io.run();
    drained.get();
    EXPECT_EQ(shards.counters().delivered, 80u);
    // The upstreams belong to the shards: read what they got before the shards go.
    for (auto* f : fakes) per_shard.push_back(f->copies());
  }
  EXPECT_TRUE(h.spool.list_ids().empty());
  std::set<std::string> recipients;
  std::size_t copies = 0;
  for (const auto& got : per_shard) {
    EXPECT_FALSE(got.empty()) << "one shard delivered nothing";
    for (const auto& [rcpt, content] : got) {
      recipients.insert(rcpt);
      ++copies;
    }
  }
  EXPECT_EQ(copies, 80u);
  EXPECT_EQ(recipients.size(), 80u);
  // Each message went through the shard its id hashes to.
  for (std::size_t s = 0; s < per_shard.size(); ++s) {
    for (const auto& [rcpt, content] : per_shard[s]) {
      const auto n = std::stoul(content.substr(content.find("body ") + 5));
      EXPECT_EQ(delivery::QueueManager::shard_of(ids[n], 2), s) << rcpt;
    }
  }
}

// SIGTERM stops every shard at once: while one shard waits for its copy in
// flight, the others start nothing new (drained one after another, they went
// on delivering their backlog meanwhile).
TEST(QueueShards, EveryShardStopsSchedulingWhenTheDrainStarts) {
  Harness h;
  std::vector<GateUpstream*> gates;
  auto upstreams = make_upstreams(2, gates);
  std::vector<std::string> ids;
  std::size_t owned[2] = {0, 0};
  while (owned[0] < 5 || owned[1] < 5) {  // a backlog on each shard
    ids.push_back(h.queue({"r" + std::to_string(ids.size()) + "@example.org"}, "Subject: s\r\n\r\nb\r\n"));
    ++owned[delivery::QueueManager::shard_of(ids.back(), 2)];
  }
  delivery::QueueShards shards(std::move(upstreams), h.disk, h.spool, {300, 4000, 120}, "relay.test");
  shards.start(ids);
  wait_until([&] { return gates[0]->held >= 1 && gates[1]->held >= 1; }, std::chrono::seconds(20));
  // EXPECT, not ASSERT, from here: whatever fails, the gates open and the drain
  // finishes before the shards go (no attempt left suspended in a gate).
  EXPECT_EQ(gates[0]->held, 1);  // one copy in flight per shard, the rest queued behind it
  EXPECT_EQ(gates[1]->held, 1);
  asio::io_context io;
  auto drained = asio::co_spawn(io, shards.drain(), asio::use_future);
  std::thread loop([&io] { io.run(); });
  EXPECT_TRUE(wait_until([&] { return shards.stopping(); }, std::chrono::seconds(20)))
      << "the drain did not reach every shard";
  for (auto* g : gates) g->open = true;
  EXPECT_EQ(drained.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  loop.join();
  EXPECT_EQ(gates[0]->delivered, 1);
  EXPECT_EQ(gates[1]->delivered, 1);
  EXPECT_EQ(h.spool.list_ids().size(), ids.size() - 2);  // the rest stays queued for the next start
}

TEST(QueueShards, EachShardGetsItsShareOfTheUpstreamLimits) {
  config::Upstream u;
  u.max_connections = 200;
  u.max_messages_per_second = 14;
  const auto s = delivery::shard_settings(u, 2, 1);
  EXPECT_EQ(s.max_connections, 100u);
  EXPECT_DOUBLE_EQ(s.max_messages_per_second, 7);
  u.max_connections = 5;  // the shares add up to max_connections
  EXPECT_EQ(delivery::shard_settings(u, 2, 0).max_connections, 3u);
  EXPECT_EQ(delivery::shard_settings(u, 2, 1).max_connections, 2u);
  u.max_connections = 1;  // never zero connections for a shard
  EXPECT_EQ(delivery::shard_settings(u, 2, 1).max_connections, 1u);
  u.delivery_threads = 4;  // never more shards than connections
  EXPECT_EQ(delivery::shard_count(u), 1u);
  u.max_connections = 10;
  EXPECT_EQ(delivery::shard_count(u), 4u);
  u.delivery_threads = 0;  // one per core, 1 to 8
  EXPECT_GE(delivery::shard_count(u), 1u);
  EXPECT_LE(delivery::shard_count(u), 8u);
}

// SPEC Part 3, fairness: tenant a's backlog of single-recipient messages
// behind a slow upstream does not delay tenant b's new message by its length.
// a's messages are queued without their content (their tenant is read from
// the queue file, as for the messages found at start-up); b's as the SMTP
// session queues it. In one FIFO, b's copy would be the 201st.
TEST(QueueManager, ATenantsBacklogDoesNotDelayAnotherTenantsMessage) {
  Harness h;
  SlowUpstream upstream(std::chrono::milliseconds(10), 2);
  delivery::QueueManager qm(h.io, h.disk, h.spool, upstream, {300, 4000, 120}, "relay.test");
  const delivery::TenantTable tenants{{"a", {}}, {"b", {}}};  // configured, without campaign handling
  qm.set_tenants(&tenants);
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.push_back(h.queue({"a" + std::to_string(i) + "@example.org"}, "Subject: a\r\n\r\nx\r\n", "a"));
  qm.start({});
  for (const auto& id : ids) qm.enqueue(id);
  std::size_t before = 0;
  h.run(qm, [&] {
    if (before == 0 && upstream.count() >= 10) {  // a's backlog is being delivered: b submits
      before = upstream.count();
      auto [id, opened] = h.submit({"b@example.org"}, "Subject: b\r\n\r\ny\r\n", "b");
      qm.enqueue(id, std::move(opened));
    }
    return qm.counters().delivered == 201;
  });
  ASSERT_EQ(qm.counters().delivered, 201u);
  const auto order = upstream.order();
  ASSERT_GE(before, 10u);
  // b's copy waits for a copy slot (2 in flight) and one turn of a's: a few
  // copies, never a's 190 left. The slack covers a's copies started between
  // the count above and the strand taking b's message.
  EXPECT_LE(position(order, "b@example.org"), before + 10) << "b's message started after a's backlog";
  EXPECT_TRUE(h.spool.list_ids().empty());
}

// The messages found at start-up are scheduled by tenant once their envelopes
// are read, with the weights (tenants[].limits.delivery_weight) given: a
// weight of 3 takes three copies for each one of a tenant of weight 1 while
// both wait, and the one left alone takes the rest.
TEST(QueueManager, RecoveredMessagesAreScheduledByTenantWithTheirWeights) {
  Harness h;
  SlowUpstream upstream(std::chrono::milliseconds(1), 1);  // one copy at a time: the order is the schedule
  delivery::QueueManager qm(h.io, h.disk, h.spool, upstream, {300, 4000, 120}, "relay.test");
  const delivery::TenantTable tenants{{"a", {}}};
  qm.set_tenants(&tenants);
  qm.set_tenant_weights({{"a", 3}, {"default", 1}});
  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i) ids.push_back(h.queue({"a" + std::to_string(i) + "@example.org"}, "Subject: a\r\n\r\nx\r\n", "a"));
  for (int i = 0; i < 60; ++i) ids.push_back(h.queue({"d" + std::to_string(i) + "@example.org"}, "Subject: d\r\n\r\nx\r\n"));
  qm.start(ids);  // every "default" message found after every one of a's
  h.run(qm, [&] { return qm.counters().delivered == 120; });
  ASSERT_EQ(qm.counters().delivered, 120u);
  const auto order = upstream.order();
  ASSERT_EQ(order.size(), 120u);
  int a = 0;
  for (std::size_t i = 0; i < 80; ++i) a += order[i][0] == 'a';
  EXPECT_EQ(a, 60) << "a's 60 copies among the first 80 (3:1)";
  EXPECT_EQ(position(order, "d0@example.org"), 3u) << "default's first copy after a's first turn";
  // Each tenant's messages in the order they were found.
  EXPECT_LT(position(order, "a0@example.org"), position(order, "a1@example.org"));
  EXPECT_LT(position(order, "d58@example.org"), position(order, "d59@example.org"));
}
