// feedback_guard_test.cpp: unverified complaints kept bounded and forward
// claims (issue 22), on every store backend.
#include <gtest/gtest.h>

#include "temp_store.hpp"
#include "unsubrelay/store/store.hpp"

using namespace unsubrelay::store;
using testing_support::backends;
using testing_support::TempStore;

namespace {

class FeedbackGuardTest : public testing_support::BackendTest {};

UnverifiedReport unverified(long long time) {
  return {"192.0.2.7", "Q" + std::to_string(time), "arf", "address_only", "Feedback-Type: abuse", time};
}

/// A recorded complaint of launch L1 with this key.
void record(TempStore& t, const std::string& key, const std::string& address) {
  Feedback f{address, "", "L1", "100", FeedbackKind::complaint, "abuse", "", "arf", 50, key};
  ASSERT_TRUE(t.store->record_feedback(f, {}));
}

}  // namespace

TEST_P(FeedbackGuardTest, UnverifiedReportsStayWithinTheirBounds) {
  TempStore t(GetParam());
  const UnverifiedBounds bounds{5, 1000};
  for (long long i = 1; i <= 12; ++i) ASSERT_TRUE(t.store->record_unverified(unverified(100 + i), bounds));
  auto tally = t.store->unverified_tally();
  ASSERT_TRUE(tally);
  EXPECT_EQ(tally->total, 12u);  // the counter keeps every one
  EXPECT_EQ(tally->kept, 5u);    // the table the newest max_rows
  // Rows older than max_age go with the next insert.
  ASSERT_TRUE(t.store->record_unverified(unverified(100 + 12 + 1001), bounds));
  tally = t.store->unverified_tally();
  EXPECT_EQ(tally->total, 13u);
  EXPECT_EQ(tally->kept, 1u);
  // None of it is a complaint: the complaint rate does not see it.
  EXPECT_EQ(t.store->feedback_window(0)->complaints, 0u);
}

TEST_P(FeedbackGuardTest, AReportIsForwardedOnceAndItsOwnRetryMayTryAgain) {
  TempStore t(GetParam());
  record(t, "arf:L1:u1", "a@x.org");
  const std::string sender = "news@example.com";
  EXPECT_EQ(t.store->claim_forward("arf:L1:u1", sender, "Q1:0", 1000, 100), ForwardClaim::forward);
  // Another copy of the same report (mailed twice): never forwarded again.
  EXPECT_EQ(t.store->claim_forward("arf:L1:u1", sender, "Q2:0", 1001, 100), ForwardClaim::duplicate);
  // The first copy's forward was deferred: its own retry forwards it.
  EXPECT_EQ(t.store->claim_forward("arf:L1:u1", sender, "Q1:0", 1300, 100), ForwardClaim::forward);
  t.reopen();  // across a restart
  EXPECT_EQ(t.store->claim_forward("arf:L1:u1", sender, "Q3:0", 90000, 100), ForwardClaim::duplicate);
  EXPECT_EQ(t.store->claim_forward("arf:never-recorded", sender, "Q4:0", 1000, 100), ForwardClaim::duplicate);
}

TEST_P(FeedbackGuardTest, ForwardPerHourIsCountedPerSender) {
  TempStore t(GetParam());
  for (int i = 0; i < 5; ++i) record(t, "k" + std::to_string(i), "a" + std::to_string(i) + "@x.org");
  EXPECT_EQ(t.store->claim_forward("k0", "news@example.com", "Q0:0", 1000, 2), ForwardClaim::forward);
  EXPECT_EQ(t.store->claim_forward("k1", "news@example.com", "Q1:0", 1010, 2), ForwardClaim::forward);
  EXPECT_EQ(t.store->claim_forward("k2", "news@example.com", "Q2:0", 1020, 2), ForwardClaim::limited);
  EXPECT_EQ(t.store->claim_forward("k2", "other@example.com", "Q2:0", 1020, 2), ForwardClaim::forward);
  // An hour after the first forward, one slot is free again.
  EXPECT_EQ(t.store->claim_forward("k3", "news@example.com", "Q3:0", 1000 + 3600, 2), ForwardClaim::forward);
  EXPECT_EQ(t.store->claim_forward("k4", "news@example.com", "Q4:0", 1000 + 3601, 2), ForwardClaim::limited);
}

INSTANTIATE_TEST_SUITE_P(Backends, FeedbackGuardTest, testing::ValuesIn(backends()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });
