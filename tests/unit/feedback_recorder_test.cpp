// feedback_recorder_test.cpp: recording reports, the feedback metrics and the complaint-rate levels.
#include <gtest/gtest.h>

#include "temp_store.hpp"
#include "unsubrelay/feedback/complaint_rate.hpp"
#include "unsubrelay/feedback/recorder.hpp"

using namespace unsubrelay;
using store::testing_support::TempStore;

TEST(ComplaintRate, LevelsFollowTheBulkSenderLimits) {
  EXPECT_EQ(feedback::rate_level(0), feedback::RateLevel::normal);
  EXPECT_EQ(feedback::rate_level(0.001), feedback::RateLevel::normal);  // "past" 0.1%: strictly above
  EXPECT_EQ(feedback::rate_level(0.0011), feedback::RateLevel::warning);
  EXPECT_EQ(feedback::rate_level(0.003), feedback::RateLevel::warning);
  EXPECT_EQ(feedback::rate_level(0.0031), feedback::RateLevel::error);
}

TEST(FeedbackRecorder, CountsEachReportOnceAndSetsTheGauge) {
  TempStore t("sqlite");
  feedback::FeedbackMetrics metrics;
  feedback::Recorder recorder(*t.store, {1, 0, 0}, metrics);
  const auto uid = *t.store->uid_for("a@x.org");
  ASSERT_TRUE(t.store->record_launch("L1", "100", 1));
  ASSERT_TRUE(t.store->record_sends({{"L1", uid, "Q", "", store::SendStatus::delivered, 1000, "250"}}));
  store::Feedback hard{"a@x.org", uid, "L1", "100", store::FeedbackKind::hard_bounce, "5.1.1", "no such user",
                       "dsn", 1010, "dsn:k1"};
  const auto first = recorder.record(hard, "Q1");
  ASSERT_TRUE(first && first->suppressed);
  EXPECT_TRUE(recorder.record(hard, "Q2")->duplicate);
  store::Feedback complaint{"a@x.org", uid, "L1", "100", store::FeedbackKind::complaint, "abuse", "", "arf", 1020,
                            "arf:k2"};
  ASSERT_TRUE(recorder.record(complaint, "Q3"));
  feedback::ComplaintRateWatch watch(*t.store, metrics);
  watch.check(1100);
  EXPECT_EQ(watch.level(), feedback::RateLevel::error);  // 1 complaint for 1 delivered copy
  const auto text = metrics.prometheus();
  EXPECT_NE(text.find("unsubrelay_feedback_total{kind=\"hard_bounce\",source=\"dsn\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("unsubrelay_feedback_total{kind=\"complaint\",source=\"arf\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("unsubrelay_complaint_rate 1\n"), std::string::npos);
  EXPECT_NE(text.find("unsubrelay_sent_after_optout_total 0\n"), std::string::npos);
  watch.check(1100 + 86400);  // the window has moved past both
  EXPECT_EQ(watch.level(), feedback::RateLevel::normal);
  EXPECT_NE(metrics.prometheus().find("unsubrelay_complaint_rate 0\n"), std::string::npos);
}

// Issue 22: an unverified report is kept and counted under its own kind, and is no complaint.
TEST(FeedbackRecorder, UnverifiedReportsAreCountedButAreNoComplaint) {
  TempStore t("sqlite");
  feedback::FeedbackMetrics metrics;
  feedback::Recorder recorder(*t.store, {1, 0, 0}, metrics);
  const auto uid = *t.store->uid_for("a@x.org");
  ASSERT_TRUE(t.store->record_launch("L1", "100", 1));
  ASSERT_TRUE(t.store->record_sends({{"L1", uid, "Q", "", store::SendStatus::delivered, 1000, "250"}}));
  const store::UnverifiedReport forged{"203.0.113.9", "Q9", "arf", "address_only", "Feedback-Type: abuse", 1010};
  ASSERT_TRUE(recorder.record_unverified(forged, "Q9"));
  ASSERT_TRUE(recorder.record_unverified(forged, "Q9"));  // each copy is kept and counted: nothing to de-duplicate on
  feedback::ComplaintRateWatch watch(*t.store, metrics);
  watch.check(1100);
  EXPECT_EQ(watch.level(), feedback::RateLevel::normal);
  const auto text = metrics.prometheus();
  EXPECT_NE(text.find("unsubrelay_feedback_total{kind=\"unverified\",source=\"arf\"} 2\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("kind=\"complaint\""), std::string::npos);
  EXPECT_NE(text.find("unsubrelay_complaint_rate 0\n"), std::string::npos);
  EXPECT_NE(text.find("unsubrelay_feedback_forwards_total{result=\"limited\"} 0\n"), std::string::npos);
  EXPECT_EQ(t.store->unverified_tally()->total, 2u);
}

// SPEC Part 3: with tenants, each tenant's counts and complaint rate carry its label.
TEST(FeedbackRecorder, EachTenantHasItsOwnCountsAndRate) {
  TempStore acme_store("sqlite"), beta_store("sqlite");
  feedback::FeedbackMetrics metrics;
  feedback::Recorder acme(*acme_store.store, {1, 0, 0}, metrics, "acme");
  const auto uid = *acme_store.store->uid_for("a@x.org");
  ASSERT_TRUE(acme_store.store->record_launch("L1", "100", 1));
  ASSERT_TRUE(acme_store.store->record_sends({{"L1", uid, "Q", "", store::SendStatus::delivered, 1000, "250"}}));
  ASSERT_TRUE(acme.record({"a@x.org", uid, "L1", "100", store::FeedbackKind::complaint, "abuse", "", "arf", 1020,
                           "arf:k2"}, "Q3"));
  feedback::ComplaintRateWatch acme_rate(*acme_store.store, metrics, "acme"), beta_rate(*beta_store.store, metrics, "beta");
  acme_rate.check(1100);
  beta_rate.check(1100);
  const auto text = metrics.prometheus();
  EXPECT_NE(text.find("unsubrelay_feedback_total{tenant=\"acme\",kind=\"complaint\",source=\"arf\"} 1\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("unsubrelay_complaint_rate{tenant=\"acme\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("unsubrelay_complaint_rate{tenant=\"beta\"} 0\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("unsubrelay_complaint_rate 0\n"), std::string::npos) << text;
}
