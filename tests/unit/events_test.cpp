// events_test.cpp: a copy's outcome events in the store (issue 26), the
// readers' filter, JSON and gap rule (http/event_stream.hpp), both backends.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "temp_store.hpp"
#include "unsubrelay/delivery/outcome_event.hpp"
#include "unsubrelay/http/event_stream.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/token/token.hpp"

using namespace unsubrelay;
using store::Action;
using store::testing_support::backends;
using store::testing_support::TempStore;

namespace {

class EventsTest : public store::testing_support::BackendTest {};

store::ErasureKeys erasure_keys() {
  std::vector<std::string> errors;
  return store::ErasureKeys(*token::KeySet::from_keys({{"k1", std::string(32, 'a')}}, errors));
}

store::Send send_with(const std::string& uid, store::SendStatus status, Action action, long long time,
                      const std::string& reply) {
  store::Send s{"L1", uid, "Q1", "", status, time, reply};
  store::Event e;
  e.uid = uid;
  e.email_id = "E1";
  e.launch_list_id = "L1";
  e.action = action;
  e.source = "smtp";
  e.time = time;
  e.queue_id = "Q1";
  e.copy = 3;
  e.detail = reply;
  s.event = e;
  return s;
}

std::vector<Action> actions(const std::vector<store::StoredEvent>& events) {
  std::vector<Action> out;
  for (const auto& e : events) out.push_back(e.event.action);
  return out;
}

}  // namespace

TEST_P(EventsTest, OutcomesRideOnTheSendRecordAndOnlyTheFirstDeferralIsKept) {
  TempStore t(GetParam());
  const auto uid = *t.store->uid_for("a@example.org");
  ASSERT_TRUE(t.store->record_sends({send_with(uid, store::SendStatus::deferred, Action::deferred, 10, "451 4.2.2")}));
  ASSERT_TRUE(t.store->record_sends({send_with(uid, store::SendStatus::deferred, Action::deferred, 20, "451 4.2.2")}));
  ASSERT_TRUE(t.store->record_sends({send_with(uid, store::SendStatus::delivered, Action::delivered, 30, "250 ok")}));
  const auto events = *t.store->events_since(0, 0, 100);
  ASSERT_EQ(actions(events), (std::vector<Action>{Action::deferred, Action::delivered}));
  EXPECT_EQ(events[1].address, "a@example.org");
  EXPECT_EQ(events[1].event.queue_id, "Q1");
  EXPECT_EQ(events[1].event.copy, 3);
  EXPECT_EQ(events[1].event.detail, "250 ok");
  // A contact's record (the personal-data API) still lists subscription events only.
  EXPECT_TRUE(t.store->contact("a@example.org")->events.empty());
}

TEST_P(EventsTest, AGroupCommitsEventsKeepTheirOrderAndTheirBytes) {
  TempStore t(GetParam());
  const auto uids = *t.store->uids_for({"f@example.org", "g@example.org", "h@example.org"});
  const std::string odd = "550 5.7.1 \"quoted\", back\\slash {braces} caf\xc3\xa9";
  std::vector<store::Send> sends;
  for (std::size_t i = 0; i < uids.size(); ++i) {
    sends.push_back(send_with(uids[i], store::SendStatus::bounced, Action::blocked, 60, odd));
    sends.back().event->copy = static_cast<long long>(i);
  }
  ASSERT_TRUE(t.store->record_sends(sends));
  const auto events = *t.store->events_since(0, 0, 100);
  ASSERT_EQ(events.size(), 3u);
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].event.copy, static_cast<long long>(i));
    EXPECT_EQ(events[i].event.uid, uids[i]);
    EXPECT_EQ(events[i].event.detail, odd);
  }
}

TEST_P(EventsTest, FeedbackFromOutsideIsAnEventOnceAndInSessionRefusalsAreNot) {
  TempStore t(GetParam());
  const auto uid = *t.store->uid_for("b@example.org");
  ASSERT_TRUE(t.store->record_sends({{"L1", uid, "Q7", "", store::SendStatus::delivered, 5, "250 ok"}}));
  store::Feedback dsn{"b@example.org", uid, "L1", "E1", store::FeedbackKind::hard_bounce, "5.1.1", "550 gone", "dsn",
                      40, "dsn:1"};
  ASSERT_TRUE(t.store->record_feedback(dsn, {}));
  ASSERT_TRUE(t.store->record_feedback(dsn, {})->duplicate);  // the same report again: no second event
  auto smtp = dsn;
  smtp.source = "smtp";
  smtp.dedup_key = "smtp:Q7:0";
  ASSERT_TRUE(t.store->record_feedback(smtp, {}));  // its event came with the send record
  store::Feedback arf{"b@example.org", "", "L1", "E1", store::FeedbackKind::complaint, "abuse", "", "arf", 50,
                      "arf:1"};
  ASSERT_TRUE(t.store->record_feedback(arf, {}));
  const auto events = *t.store->events_since(0, 0, 100);
  // The complaint, then the opt-out it causes.
  ASSERT_EQ(actions(events), (std::vector<Action>{Action::bounced, Action::complaint, Action::unsubscribe}));
  EXPECT_EQ(events[0].event.kind, "hard");
  EXPECT_EQ(events[0].event.source, "dsn");
  EXPECT_EQ(events[0].event.queue_id, "Q7");
  EXPECT_EQ(events[0].event.copy, -1);
  EXPECT_EQ(events[1].event.status, "abuse");
  EXPECT_EQ(events[1].event.uid, uid);  // found by its address
}

TEST_P(EventsTest, RetentionPurgesOldOutcomesAndKeepsOptOuts) {
  TempStore t(GetParam());
  const auto uid = *t.store->uid_for("c@example.org");
  ASSERT_TRUE(t.store->record_event({uid, "E1", "L1", Action::unsubscribe, "one-click", 10, "", ""}));
  ASSERT_TRUE(t.store->record_sends({send_with(uid, store::SendStatus::delivered, Action::delivered, 10, "250")}));
  auto later = send_with(uid, store::SendStatus::delivered, Action::delivered, 1000, "250");
  later.launch_list_id = later.event->launch_list_id = "L2";
  ASSERT_TRUE(t.store->record_sends({later}));
  EXPECT_EQ(t.store->purge_events(500, 100), std::optional<std::size_t>(1));
  EXPECT_EQ(actions(*t.store->events_since(0, 0, 100)),
            (std::vector<Action>{Action::unsubscribe, Action::delivered}));
}

TEST_P(EventsTest, AnErasureLeavesNoAddressOrReplyInTheEvents) {
  TempStore t(GetParam());
  t.store->set_erasure_keys(erasure_keys());
  const auto uid = *t.store->uid_for("d@example.org");
  ASSERT_TRUE(t.store->record_sends(
      {send_with(uid, store::SendStatus::bounced, Action::bounced, 10, "550 5.1.1 <d@example.org> unknown")}));
  ASSERT_TRUE(t.store->erase("d@example.org", "api", 20));
  const auto events = *t.store->events_since(0, 0, 100);
  ASSERT_EQ(actions(events), (std::vector<Action>{Action::bounced, Action::erase}));
  EXPECT_EQ(events[0].address, "");
  EXPECT_EQ(events[0].event.detail, "");
  // A late DSN naming the erased contact's uid is recorded as a row, but makes no event.
  ASSERT_TRUE(t.store->record_feedback({"d@example.org", uid, "L1", "E1", store::FeedbackKind::hard_bounce, "5.1.1",
                                        "550 <d@example.org>", "dsn", 30, "dsn:late"}, {}));
  EXPECT_EQ(t.store->events_since(0, 0, 100)->size(), 2u);
}

TEST_P(EventsTest, ReadEventsFiltersAndMovesPastWhatItSkipped) {
  TempStore t(GetParam());
  const auto uid = *t.store->uid_for("e@example.org");
  const long long now = 100000;
  for (int i = 0; i < 5; ++i) {
    auto s = send_with(uid, store::SendStatus::delivered, Action::delivered, now - 100, "250");
    s.launch_list_id = s.event->launch_list_id = "L" + std::to_string(i);
    ASSERT_TRUE(t.store->record_sends({s}));
  }
  ASSERT_TRUE(t.store->record_event({uid, "E1", "L1", Action::unsubscribe, "api", now - 100, "", ""}));
  const auto page = http::read_events(*t.store, http::EventFilter::subscription(), 0, 0, 10, now);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->next, page->events[0].id);
  const auto two = http::read_events(*t.store, http::EventFilter::all(), 0, 0, 2, now);
  ASSERT_EQ(two->events.size(), 2u);
  EXPECT_EQ(two->next, two->events[1].id);
  EXPECT_TRUE(http::read_events(*t.store, http::EventFilter::all(), 0, page->next, 10, now)->events.empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, EventsTest, testing::ValuesIn(backends()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(EventFilter, NamesAreCheckedAndAbsentMeansSubscriptionEvents) {
  std::string why;
  const auto f = http::EventFilter::parse("bounced,complaint", why);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->wants(Action::bounced));
  EXPECT_FALSE(f->wants(Action::unsubscribe));
  EXPECT_FALSE(http::EventFilter::parse("bounced,bogus", why));
  EXPECT_NE(why.find("bogus"), std::string::npos);
  EXPECT_FALSE(http::EventFilter::parse(",", why));
  EXPECT_TRUE(http::EventFilter::subscription().wants(Action::erase));
  EXPECT_FALSE(http::EventFilter::subscription().wants(Action::delivered));
}

TEST(EventJson, SubscriptionEventsKeepTheirFieldsAndOutcomesHaveTheirs) {
  store::StoredEvent s{7, {"u1", "E1", "L1", Action::unsubscribe, "page", 5, "192.0.2.1", "UA"}, "a@x.org"};
  const auto sub = http::event_json(s, true);
  EXPECT_EQ(sub.size(), 11u);  // action source time uid email email_id launch_list_id ip user_agent topic id
  EXPECT_FALSE(sub.contains("queue_id"));
  s.event.action = Action::bounced;
  s.event.kind = "soft";
  s.event.status = "4.4.7";
  s.event.detail = "expired";
  const auto bounce = http::event_json(s, false);
  EXPECT_EQ(bounce["bounce_type"], "soft");
  EXPECT_EQ(bounce["diagnostic"], "expired");
  EXPECT_TRUE(bounce["copy"].is_null());
  EXPECT_FALSE(bounce.contains("ip"));
  EXPECT_FALSE(bounce.contains("id"));
}

TEST(EventStream, AReaderStopsBeforeAnOpenGap) {
  std::vector<store::StoredEvent> page(3);
  page[0].id = 11, page[1].id = 13, page[2].id = 14;
  const auto open = [](long long, const store::StoredEvent&) { return true; };
  const auto closed = [](long long, const store::StoredEvent&) { return false; };
  EXPECT_EQ(http::settled_count(page, 10, open), 1u);
  EXPECT_EQ(http::settled_count(page, 10, closed), 3u);
  EXPECT_EQ(http::settled_count(page, 9, open), 0u);
}

TEST(OutcomeEvent, RefusalsAreHardBouncesOrBlocked) {
  const delivery::CampaignCopy copy{"Q1", 2, "a@x.org", "u1", "L1", "E1"};
  const auto hard = delivery::copy_event(copy, "", {delivery::DeliveryStatus::bounced, "550 5.1.1 gone", "mx", ""},
                                         "", "global", 9);
  EXPECT_EQ(hard.action, Action::bounced);
  EXPECT_EQ(hard.kind, "hard");
  EXPECT_EQ(hard.status, "5.1.1");
  EXPECT_EQ(hard.copy, 2);
  const auto blocked = delivery::copy_event(copy, "", {delivery::DeliveryStatus::bounced, "554 no", "mx", ""}, "",
                                            "global", 9);
  EXPECT_EQ(blocked.action, Action::blocked);
  const auto suppressed = delivery::copy_event(copy, "news", {delivery::DeliveryStatus::sent, "250", "none", ""},
                                               "unsubscribed", "campaign", 9);
  EXPECT_EQ(suppressed.action, Action::suppressed);
  EXPECT_EQ(suppressed.kind, "campaign");
  EXPECT_EQ(suppressed.topic, "news");
  const auto sent = delivery::copy_event(copy, "", {delivery::DeliveryStatus::sent, "250 Ok 0100abc", "ses", "0100abc"},
                                         "", "global", 9);
  EXPECT_EQ(sent.upstream_id, "0100abc");
}

TEST(EventConfig, AReceiverNamesKnownEventsAndItsBatches) {
  const auto secret = std::filesystem::temp_directory_path() / "unsubrelay-events-test-secret";
  { std::ofstream(secret) << "s\n"; }
  const auto yaml = [&](const std::string& more) {
    return "webhooks:\n  - {url: \"http://127.0.0.1:9/h\", secret_file: \"" + secret.string() + "\"" + more + "}\n";
  };
  const auto plain = config::load_text(yaml(""));
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain.config.webhooks[0].events.empty());  // subscription events, as before
  EXPECT_EQ(plain.config.webhooks[0].batch_size, 1u);     // one object per POST, as before
  const auto chosen = config::load_text(yaml(", events: [bounced, complaint], batch_size: 100, batch_ms: 50"));
  ASSERT_TRUE(chosen.ok());
  EXPECT_EQ(chosen.config.webhooks[0].events, (std::vector<std::string>{"bounced", "complaint"}));
  EXPECT_EQ(chosen.config.webhooks[0].batch_size, 100u);
  const auto bad = config::load_text(yaml(", events: [bounced, bogus], batch_size: 5000"));
  ASSERT_EQ(bad.errors.size(), 2u);
  EXPECT_EQ(bad.errors[0].path, "webhooks[0].batch_size");
  EXPECT_NE(bad.errors[1].message.find("unknown event \"bogus\""), std::string::npos);
  EXPECT_EQ(config::load_text("store: {event_retention_days: 7}\n").config.store.event_retention_days, 7u);
}
