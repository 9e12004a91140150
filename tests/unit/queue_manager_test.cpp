// queue_manager_test.cpp: the queue manager against fake upstreams: which copy
// goes where, what is recorded in the spool, and when a message leaves it.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "unsubrelay/delivery/queue_manager.hpp"

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
  std::string queue(std::vector<std::string> recipients, const std::string& content) {
    std::string err;
    auto w = spool.create({static_cast<long long>(std::time(nullptr)), "127.0.0.1", "test", "", false, "s@example.com", std::move(recipients)}, &err);
    EXPECT_TRUE(w) << err;
    EXPECT_EQ(w->append(content), "");
    EXPECT_EQ(w->commit(), "");
    return w->id();
  }
  /// Runs the relay's loop until done() or 10 s, then drains the queue manager.
  template <class Done>
  void run(delivery::QueueManager& qm, Done done) {
    std::thread loop([this] {
      auto guard = asio::make_work_guard(io);
      io.run();
    });
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
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
