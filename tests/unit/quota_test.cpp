// quota_test.cpp: tenant quotas (issue 24): the store's counts on both
// backends, and tenant::Quotas over them (two relays on one database, a
// window turning, a store that fails).
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <atomic>
#include <thread>

#include "temp_store.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/tenant/quotas.hpp"

using namespace unsubrelay;
using store::QuotaCount;
using store::testing_support::backends;
using store::testing_support::TempStore;

namespace {

class QuotaStore : public store::testing_support::BackendTest {
 protected:
  /// A second store on the same database: another relay of the fleet.
  std::unique_ptr<store::Store> second(const TempStore& t) {
    std::string error;
    auto s = GetParam() == "postgresql" ? store::open_postgresql(t.pg_url(), error) : store::open_sqlite(t.sqlite_path(), error);
    EXPECT_TRUE(s) << error;
    return s;
  }
};

constexpr long long hour = 3600;
constexpr long long day = 86400;
constexpr long long t0 = 1796515200;  // 2026-12-06 00:00:00 UTC: an hour and a day begin

std::vector<tenant::QuotaTenant> acme(store::Store* s, std::uint64_t messages, std::uint64_t recipients) {
  tenant::QuotaTenant t{"acme", {}, s};
  t.limits.messages_per_hour = messages;
  t.limits.recipients_per_day = recipients;
  return {t};
}

}  // namespace

TEST_P(QuotaStore, CountsAddUpPerWindowAndOldWindowsGo) {
  TempStore t(GetParam());
  auto& s = *t.store;
  EXPECT_EQ(s.quota_counts({{"messages", t0, 0}}), std::optional<std::vector<long long>>({0}));
  ASSERT_TRUE(s.add_quota_counts({{"messages", t0, 2}, {"recipients", t0, 5}}, t0 - 2 * day));
  ASSERT_TRUE(s.add_quota_counts({{"messages", t0, 1}, {"messages", t0 + hour, 4}}, t0 - 2 * day));
  EXPECT_EQ(s.quota_counts({{"messages", t0, 0}, {"recipients", t0, 0}, {"messages", t0 + hour, 0}}),
            std::optional<std::vector<long long>>({3, 5, 4}));
  // An add two days later deletes the windows that began before its expire_before.
  ASSERT_TRUE(s.add_quota_counts({{"messages", t0 + 2 * day, 1}}, t0 + hour));
  EXPECT_EQ(s.quota_counts({{"messages", t0, 0}, {"recipients", t0, 0}, {"messages", t0 + hour, 0}}),
            std::optional<std::vector<long long>>({0, 0, 4}));
}

// Two relays on one database adding at once lose no count.
TEST_P(QuotaStore, ConcurrentAddsFromTwoRelaysAllCount) {
  TempStore t(GetParam());
  auto other = second(t);
  ASSERT_TRUE(other);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (auto* s : {t.store.get(), other.get(), t.store.get(), other.get()}) {
    threads.emplace_back([s, &failures] {
      for (int i = 0; i < 25; ++i) failures += !s->add_quota_counts({{"recipients", t0, 2}, {"messages", t0, 1}}, 0);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0) << t.store->last_error() << " / " << other->last_error();
  EXPECT_EQ(t.store->quota_counts({{"messages", t0, 0}, {"recipients", t0, 0}}),
            std::optional<std::vector<long long>>({100, 200}));
}

TEST_P(QuotaStore, MessagesPerHourRefusesAtMailFromAndANewHourStartsAgain) {
  TempStore t(GetParam());
  long long now = t0 + 10;
  tenant::Quotas q(acme(t.store.get(), 2, 0), [&now] { return now; });
  EXPECT_EQ(q.refusal("acme", 0), "");
  q.accepted("acme", 5);
  q.accepted("acme", 1);
  const auto why = q.refusal("acme", 0);
  EXPECT_NE(why.find("messages_per_hour"), std::string::npos) << why;
  EXPECT_EQ(q.refusal("acme", 7), "");   // RCPT TO: no recipients quota
  EXPECT_EQ(q.refusal("other", 0), "");  // a tenant without limits
  EXPECT_NE(q.prometheus().find("unsubrelay_quota_refusals_total{tenant=\"acme\",quota=\"messages_per_hour\"} 1"),
            std::string::npos)
      << q.prometheus();
  q.sync();  // written: the store holds this hour's 2
  EXPECT_EQ(t.store->quota_counts({{"messages", t0, 0}}), std::optional<std::vector<long long>>({2}));
  EXPECT_NE(q.refusal("acme", 0), "");
  now = t0 + hour;  // the next clock hour
  EXPECT_EQ(q.refusal("acme", 0), "");
}

TEST_P(QuotaStore, RecipientsPerDayRefusesTheRecipientThatPassesIt) {
  TempStore t(GetParam());
  long long now = t0 + 20 * hour;
  tenant::Quotas q(acme(t.store.get(), 0, 3), [&now] { return now; });
  EXPECT_EQ(q.refusal("acme", 3), "");
  EXPECT_NE(q.refusal("acme", 4).find("recipients_per_day"), std::string::npos);
  q.accepted("acme", 2);
  EXPECT_EQ(q.refusal("acme", 0), "");
  EXPECT_EQ(q.refusal("acme", 1), "");
  EXPECT_NE(q.refusal("acme", 2), "");
  q.accepted("acme", 1);
  EXPECT_NE(q.refusal("acme", 0), "");  // nothing left today: refused at MAIL FROM already
  now = t0 + day;                        // the next UTC day
  EXPECT_EQ(q.refusal("acme", 3), "");
}

// Each relay counts what it accepted at once and learns the other's at its next sync().
TEST_P(QuotaStore, TwoRelaysOnOneDatabaseShareTheCount) {
  TempStore t(GetParam());
  auto other = second(t);
  ASSERT_TRUE(other);
  const auto now = [] { return t0 + 30; };
  tenant::Quotas a(acme(t.store.get(), 3, 0), now);
  tenant::Quotas b(acme(other.get(), 3, 0), now);
  a.accepted("acme", 1);
  a.accepted("acme", 1);
  b.accepted("acme", 1);
  EXPECT_EQ(a.refusal("acme", 0), "");  // neither has heard of the other yet
  EXPECT_EQ(b.refusal("acme", 0), "");
  a.sync();
  b.sync();  // b reads 3 (a's 2 and its own)
  EXPECT_NE(b.refusal("acme", 0), "");
  a.sync();  // a reads b's too
  EXPECT_NE(a.refusal("acme", 0), "");
}

// The background thread syncs without being asked.
TEST_P(QuotaStore, StartSyncsOnItsOwnThread) {
  TempStore t(GetParam());
  auto other = second(t);
  ASSERT_TRUE(other);
  tenant::Quotas a(acme(t.store.get(), 1, 0));
  tenant::Quotas b(acme(other.get(), 1, 0));
  a.accepted("acme", 1);
  a.start(std::chrono::milliseconds(20));
  b.start(std::chrono::milliseconds(20));
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (b.refusal("acme", 0).empty() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(b.refusal("acme", 0), "");
}

INSTANTIATE_TEST_SUITE_P(Backends, QuotaStore, testing::ValuesIn(backends()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

// A store that fails refuses nothing by itself: the relay counts on in memory,
// and what it could not write is written once the store is back.
TEST(QuotaOutage, AFailingStoreLetsMailThroughAndCatchesUpLater) {
  TempStore t("sqlite");
  const auto now = [] { return t0 + 40; };
  tenant::Quotas q(acme(t.store.get(), 3, 0), now);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(t.sqlite_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE quota_counts RENAME TO away", nullptr, nullptr, nullptr), SQLITE_OK);
  q.accepted("acme", 1);
  q.sync();  // neither written nor read: logged
  EXPECT_EQ(q.refusal("acme", 0), "");
  q.accepted("acme", 1);
  q.sync();
  EXPECT_EQ(q.refusal("acme", 0), "");
  q.accepted("acme", 1);
  EXPECT_NE(q.refusal("acme", 0), "");  // what this relay accepted still counts: alone, it stays exact
  ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE away RENAME TO quota_counts", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  q.sync();
  EXPECT_EQ(t.store->quota_counts({{"messages", t0, 0}}), std::optional<std::vector<long long>>({3}));
  EXPECT_NE(q.refusal("acme", 0), "");
}
