// store_test.cpp: the SQLite backend behind the Store interface.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <atomic>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>

#include <pqxx/pqxx>

#include "temp_store.hpp"
#include "unsubrelay/store/group_commit.hpp"
#include "unsubrelay/store/store.hpp"

using namespace unsubrelay::store;
using testing_support::backends;
using testing_support::TempStore;

namespace {

class StoreTest : public testing_support::BackendTest {};

}  // namespace

TEST_P(StoreTest, UidsAreRandomStableAndCaseInsensitive) {
  TempStore t(GetParam());
  const auto a = t.store->uid_for("Alice@Example.org");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size(), 22u);
  EXPECT_EQ(t.store->uid_for("alice@example.org"), a);
  EXPECT_NE(t.store->uid_for("bob@example.org"), a);
  EXPECT_EQ(t.store->address_of(*a), std::optional<std::string>("alice@example.org"));
  EXPECT_FALSE(t.store->address_of("nobody"));
}

TEST_P(StoreTest, EventsDecideSuppression) {
  TempStore t(GetParam());
  const auto uid = *t.store->uid_for("a@example.org");
  EXPECT_EQ(t.store->unsubscribed(uid, ""), std::optional<bool>(false));
  ASSERT_TRUE(t.store->record_event({uid, "100", "L1", Action::unsubscribe, "one-click", 10, "192.0.2.1", "UA"}));
  EXPECT_EQ(t.store->unsubscribed(uid, ""), std::optional<bool>(true));      // global
  EXPECT_EQ(t.store->unsubscribed(uid, "100"), std::optional<bool>(true));   // that campaign
  EXPECT_EQ(t.store->unsubscribed(uid, "200"), std::optional<bool>(false));  // another campaign
  ASSERT_TRUE(t.store->record_event({uid, "100", "L1", Action::resubscribe, "page", 11, "", ""}));
  EXPECT_EQ(t.store->unsubscribed(uid, ""), std::optional<bool>(false));
}

// The send-time check: one call for a whole recipient list, today's rules
// (latest event wins; campaign scope; nothing for transactional mail or off).
TEST_P(StoreTest, CheckSuppressionDecidesAWholeListInOneCall) {
  TempStore t(GetParam());
  const auto uids = *t.store->uids_for({"a@x.org", "b@x.org", "c@x.org", "d@x.org"});
  ASSERT_TRUE(t.store->record_event({uids[0], "100", "L1", Action::unsubscribe, "one-click", 10, "", ""}));
  ASSERT_TRUE(t.store->record_event({uids[1], "200", "L2", Action::unsubscribe, "page", 11, "", ""}));
  ASSERT_TRUE(t.store->record_event({uids[2], "100", "L1", Action::unsubscribe, "api", 12, "", ""}));
  ASSERT_TRUE(t.store->record_event({uids[2], "100", "L1", Action::resubscribe, "page", 13, "", ""}));
  std::vector<SendRecipient> list;
  for (int i = 0; i < 4; ++i) list.push_back({std::string(1, static_cast<char>('a' + i)) + "@x.org", uids[i]});
  list.push_back(list[0]);  // the same contact twice gets the same verdict
  auto suppressed = [&](const SendScope& scope) {
    const auto v = t.store->check_suppression(scope, list);
    std::vector<bool> out;
    if (!v) return out;
    for (const auto& x : *v) {
      out.push_back(x.suppressed);
      if (x.suppressed) {
        EXPECT_EQ(x.reason, "unsubscribed");
      }
    }
    return out;
  };
  using unsubrelay::config::Suppression;
  EXPECT_EQ(suppressed({true, "100", "L1", "", Suppression::global}), (std::vector<bool>{true, true, false, false, true}));
  EXPECT_EQ(suppressed({true, "100", "L1", "", Suppression::campaign}),
            (std::vector<bool>{true, false, false, false, true}));
  EXPECT_EQ(suppressed({true, "200", "L2", "", Suppression::campaign}),
            (std::vector<bool>{false, true, false, false, false}));
  EXPECT_EQ(suppressed({true, "100", "L1", "", Suppression::off}), (std::vector<bool>(5, false)));
  EXPECT_EQ(suppressed({false, "", "", "", Suppression::global}), (std::vector<bool>(5, false)));  // transactional
  EXPECT_EQ(t.store->check_suppression({true, "100", "L1", "", Suppression::global}, {})->size(), 0u);
}

TEST_P(StoreTest, LaunchesSendsAndSummary) {
  TempStore t(GetParam());
  ASSERT_TRUE(t.store->record_launch("L1", "100", 1));
  ASSERT_TRUE(t.store->record_launch("L1", "999", 2));  // first record wins
  EXPECT_TRUE(t.store->launch_exists("L1"));
  EXPECT_TRUE(t.store->campaign_exists("100"));
  EXPECT_FALSE(t.store->campaign_exists("999"));
  EXPECT_TRUE(t.store->launch_matches("L1", "100"));
  EXPECT_FALSE(t.store->launch_matches("L1", "999"));
  const auto a = *t.store->uid_for("a@x.org"), b = *t.store->uid_for("b@x.org"), c = *t.store->uid_for("c@x.org"),
             d = *t.store->uid_for("d@x.org");
  ASSERT_TRUE(t.store->record_sends({{"L1", a, "Q", "ses-1", SendStatus::delivered, 5, "250 Ok"},
                                     {"L1", b, "Q", "", SendStatus::deferred, 5, "451"},
                                     {"L1", c, "Q", "", SendStatus::bounced, 5, "550"},
                                     {"L1", d, "Q", "", SendStatus::suppressed, 5, ""}}));
  ASSERT_TRUE(t.store->record_sends({{"L1", b, "Q", "ses-2", SendStatus::delivered, 6, "250 Ok"}}));  // retried
  ASSERT_TRUE(t.store->record_event({a, "100", "L1", Action::unsubscribe, "api", 7, "", ""}));
  ASSERT_TRUE(t.store->record_event({a, "100", "L1", Action::unsubscribe, "page", 8, "", ""}));  // same contact
  const auto s = t.store->summary("100", "L1");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sent, 3u);
  EXPECT_EQ(s->delivered, 2u);
  EXPECT_EQ(s->deferred, 0u);
  EXPECT_EQ(s->bounced, 1u);
  EXPECT_EQ(s->suppressed, 1u);
  EXPECT_EQ(s->unsubscribed, 1u);
  EXPECT_EQ(t.store->summary("100", "")->sent, 3u);
  EXPECT_EQ(t.store->summary("nope", "")->sent, 0u);
}

TEST_P(StoreTest, ReopenKeepsDataAndSchema) {
  TempStore t(GetParam());
  const auto uid = *t.store->uid_for("a@example.org");
  t.reopen();
  EXPECT_EQ(t.store->uid_for("a@example.org"), uid);
  EXPECT_TRUE(t.store->healthy());
}

// Relays of a fleet starting at once against a new database: each migrates
// (PostgreSQL once failed with a unique violation in pg_type on the
// schema_version table that two of them created at the same moment).
TEST_P(StoreTest, StoresOpeningAtOnceOnANewDatabaseAllMigrate) {
  for (int round = 0; round < 3; ++round) {
    TempStore t(GetParam(), false);
    std::vector<std::string> errors(4);
    std::vector<std::thread> openers;
    for (auto& error : errors) {
      openers.emplace_back([&] {
        const auto s = GetParam() == "postgresql" ? open_postgresql(t.pg_url(), error) : open_sqlite(t.sqlite_path(), error);
        if (s && !s->uid_for("a@example.org")) error = s->last_error();
      });
    }
    for (auto& o : openers) o.join();
    for (const auto& error : errors) EXPECT_EQ(error, "");
  }
}

TEST_P(StoreTest, LaunchListsEventsAndRetention) {
  TempStore t(GetParam());
  ASSERT_TRUE(t.store->record_launch("old-batch", "100", 1000));
  ASSERT_TRUE(t.store->record_launch("old-event", "100", 1000, "on-event"));
  ASSERT_TRUE(t.store->record_launch("new-batch", "200", 9000));
  const auto uid = *t.store->uid_for("a@x.org");
  ASSERT_TRUE(t.store->record_sends({{"old-batch", uid, "Q", "", SendStatus::delivered, 1000, ""},
                                     {"old-event", uid, "Q", "", SendStatus::delivered, 1000, ""}}));
  ASSERT_TRUE(t.store->record_event({uid, "100", "old-batch", Action::unsubscribe, "page", 1500, "", ""}));
  auto all = t.store->launches("", "");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ(all->front().launch_list_id, "new-batch");  // newest first
  EXPECT_EQ(t.store->launches("100", "")->size(), 2u);
  EXPECT_EQ(t.store->launches("", "old-event")->front().kind, "on-event");

  EXPECT_EQ(t.store->purge_batch_launches(5000, 500), std::optional<std::size_t>(1));
  EXPECT_EQ(t.store->purge_batch_launches(5000, 500), std::optional<std::size_t>(0));
  EXPECT_FALSE(t.store->launch_exists("old-batch"));
  EXPECT_TRUE(t.store->launch_exists("old-event"));  // on-event launches are kept
  EXPECT_TRUE(t.store->launch_exists("new-batch"));
  EXPECT_EQ(t.store->summary("100", "old-event")->delivered, 1u);
  // Subscription events are kept, and suppression still holds.
  const auto events = t.store->events_since(0, 0, 10);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(events->front().event.source, "page");
  EXPECT_EQ(t.store->events_since(1501, 0, 10)->size(), 0u);
  EXPECT_EQ(t.store->unsubscribed(uid, ""), std::optional<bool>(true));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, testing::ValuesIn(backends()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

TEST_P(StoreTest, UidsForAListInOneTransaction) {
  TempStore t(GetParam());
  const auto existing = *t.store->uid_for("b@x.org");
  const auto uids = t.store->uids_for({"a@x.org", "B@x.org", "c@x.org", "a@x.org"});
  ASSERT_TRUE(uids);
  ASSERT_EQ(uids->size(), 4u);
  EXPECT_EQ((*uids)[1], existing);
  EXPECT_EQ((*uids)[0], (*uids)[3]);
  EXPECT_NE((*uids)[0], (*uids)[2]);
  EXPECT_EQ(t.store->uid_for("c@x.org"), (*uids)[2]);
}

// Group commit: 16 threads asking at once share transactions, each gets its
// own answers, and the same contact seen by two deliveries gets one uid.
TEST_P(StoreTest, GroupCommitSharesTransactionsAndKeepsAnswersApart) {
  TempStore t(GetParam());
  DeliveryRecorder recorder(*t.store);
  ASSERT_TRUE(t.store->record_launch("L1", "100", 1000));
  constexpr int kThreads = 16;
  constexpr int kRounds = 20;
  std::vector<std::vector<std::string>> got(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int n = 0; n < kThreads; ++n) {
    threads.emplace_back([&, n] {
      for (int r = 0; r < kRounds; ++r) {
        const std::vector<std::string> mine{fmt::format("t{}r{}@x.org", n, r), "shared@x.org"};
        const auto uids = recorder.uids_for(mine);
        if (!uids || uids->size() != 2) {
          ++failures;
          continue;
        }
        got[n].push_back((*uids)[0]);
        got[n].push_back((*uids)[1]);
        std::vector<Send> sends;
        for (const auto& uid : *uids) sends.push_back({"L1", uid, "Q", "", SendStatus::delivered, 1000, "250 ok"});
        if (!recorder.record_sends(sends)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const auto shared = *t.store->uid_for("shared@x.org");
  std::set<std::string> own;
  for (int n = 0; n < kThreads; ++n) {
    ASSERT_EQ(got[n].size(), 2u * kRounds);
    for (int r = 0; r < kRounds; ++r) {
      EXPECT_EQ(got[n][2 * r], *t.store->uid_for(fmt::format("t{}r{}@x.org", n, r)));
      EXPECT_EQ(got[n][2 * r + 1], shared);
      own.insert(got[n][2 * r]);
    }
  }
  EXPECT_EQ(own.size(), static_cast<std::size_t>(kThreads * kRounds));
  // One send row per contact and launch: every own contact plus the shared one.
  EXPECT_EQ(t.store->summary("100", "L1")->delivered, kThreads * kRounds + 1u);
  // Fewer transactions than requests: callers arriving together were committed together.
  EXPECT_LT(recorder.transactions(), 2u * kThreads * kRounds);
  EXPECT_GT(recorder.transactions(), 0u);
}

TEST(GroupCommit, AFailedTransactionFailsEveryCallerInIt) {
  GroupCommit<int, int> doubling([](const std::vector<int>& in, std::vector<int>& out) {
    for (int v : in) {
      if (v < 0) return false;
      out.push_back(2 * v);
    }
    return true;
  });
  EXPECT_EQ(doubling.run({1, 2, 3}), (std::optional<std::vector<int>>(std::vector<int>{2, 4, 6})));
  EXPECT_FALSE(doubling.run({4, -1}));
  EXPECT_EQ(doubling.run({}), (std::optional<std::vector<int>>(std::vector<int>{})));
  EXPECT_EQ(doubling.batches(), 3u);
  GroupCommit<int, int> throwing([](const std::vector<int>&, std::vector<int>&) -> bool {
    throw std::runtime_error("backend exploded");
  });
  EXPECT_FALSE(throwing.run({1}));
  EXPECT_FALSE(throwing.run({2}));  // the next caller is not stuck behind a leader that never finished
}

// The delivery path's form: callers do not wait; a caller arriving while
// another commits is answered from the committing thread's next transaction.
TEST(GroupCommit, AsynchronousCallersAreAnsweredByWhoeverCommits) {
  std::mutex gate;  // held by the test: a transaction cannot finish
  std::atomic<bool> entered{false};
  GroupCommit<int, int> doubling([&](const std::vector<int>& in, std::vector<int>& out) {
    entered = true;
    std::lock_guard hold(gate);
    for (int v : in) {
      if (v < 0) return false;
      out.push_back(2 * v);
    }
    return true;
  });
  std::vector<std::optional<std::vector<int>>> got(4);
  std::unique_lock held(gate);
  std::thread leader([&] { doubling.run_async({1}, [&](auto r) { got[0] = std::move(r); }); });
  while (!entered) std::this_thread::yield();
  // The leader is committing {1}: these return at once, not answered yet.
  doubling.run_async({2, 3}, [&](auto r) { got[1] = std::move(r); });
  doubling.run_async({-1}, [&](auto r) { got[2] = std::move(r); });
  EXPECT_FALSE(got[1].has_value());
  held.unlock();
  leader.join();  // the leader committed everything queued before it returned
  EXPECT_EQ(got[0], (std::optional<std::vector<int>>(std::vector<int>{2})));
  EXPECT_FALSE(got[1].has_value());  // in one transaction with -1: failed together
  EXPECT_FALSE(got[2].has_value());
  EXPECT_EQ(doubling.batches(), 2u);
  // A callback that throws does not stop the commits after it.
  doubling.run_async({5}, [](auto) { throw std::runtime_error("callback exploded"); });
  doubling.run_async({6}, [&](auto r) { got[3] = std::move(r); });
  EXPECT_EQ(got[3], (std::optional<std::vector<int>>(std::vector<int>{12})));
  EXPECT_EQ(doubling.run({7}), (std::optional<std::vector<int>>(std::vector<int>{14})));
}

// Fleet coordination: one holder at a time, renewals, take-over after expiry,
// and cursors shared through the store.
TEST_P(StoreTest, LeasesAndCursors) {
  TempStore t(GetParam());
  EXPECT_TRUE(t.store->take_lease("webhook A", "relay-1", 1000, 30));
  EXPECT_FALSE(t.store->take_lease("webhook A", "relay-2", 1010, 30));  // held until 1030
  EXPECT_TRUE(t.store->take_lease("webhook A", "relay-1", 1020, 30));   // renewed until 1050
  EXPECT_FALSE(t.store->take_lease("webhook A", "relay-2", 1040, 30));
  EXPECT_TRUE(t.store->take_lease("webhook B", "relay-2", 1040, 30));   // another name, another lease
  EXPECT_TRUE(t.store->take_lease("webhook A", "relay-2", 1051, 30));   // relay-1 stopped renewing
  EXPECT_FALSE(t.store->take_lease("webhook A", "relay-1", 1060, 30));

  EXPECT_EQ(t.store->cursor("webhook A"), std::optional<long long>(-1));
  EXPECT_TRUE(t.store->set_cursor("webhook A", 41));
  EXPECT_TRUE(t.store->set_cursor("webhook A", 42));
  EXPECT_EQ(t.store->cursor("webhook A"), std::optional<long long>(42));
  EXPECT_EQ(t.store->cursor("webhook B"), std::optional<long long>(-1));
  t.reopen();
  EXPECT_EQ(t.store->cursor("webhook A"), std::optional<long long>(42));
  EXPECT_FALSE(t.store->take_lease("webhook A", "relay-1", 1070, 30));  // leases survive a restart too
}
