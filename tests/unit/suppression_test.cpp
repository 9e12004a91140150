// suppression_test.cpp: the suppression list and bounces/complaints, on every store backend.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <fmt/format.h>

#include "temp_store.hpp"
#include "unsubrelay/store/store.hpp"

using namespace unsubrelay::store;
using testing_support::backends;
using testing_support::TempStore;
namespace config = unsubrelay::config;

namespace {

Suppression entry(Scope scope, std::string value, std::string reason) {
  return {"a@x.org", scope, std::move(value), std::move(reason), "test", 100, 0};
}

Feedback bounce(FeedbackKind kind, std::string launch, std::string key, long long time, std::string uid = "") {
  Feedback f;
  f.address = "A@X.org";
  f.uid = std::move(uid);
  f.launch_list_id = std::move(launch);
  f.email_id = "100";
  f.kind = kind;
  f.status = kind == FeedbackKind::hard_bounce ? "5.1.1" : "4.2.2";
  f.diagnostic = "smtp; 550 5.1.1 no such user";
  f.source = "dsn";
  f.time = time;
  f.dedup_key = std::move(key);
  return f;
}

class SuppressionStoreTest : public testing_support::BackendTest {};

}  // namespace

TEST(Suppression, WhichEntryStopsACopy) {
  const CopyKind campaign_100{true, "100", ""}, campaign_200{true, "200", ""}, transactional{false, "", ""};
  const std::vector<Suppression> unsubscribed{entry(Scope::campaign, "100", "unsubscribe")};
  // Part 1's modes: global widens a campaign's unsubscribe to every campaign.
  EXPECT_TRUE(applicable(unsubscribed, campaign_200, config::Suppression::global));
  EXPECT_TRUE(applicable(unsubscribed, campaign_100, config::Suppression::campaign));
  EXPECT_FALSE(applicable(unsubscribed, campaign_200, config::Suppression::campaign));
  EXPECT_FALSE(applicable(unsubscribed, campaign_100, config::Suppression::off));
  EXPECT_FALSE(applicable(unsubscribed, transactional, config::Suppression::global));
  // A complaint stops every campaign, never transactional mail.
  const std::vector<Suppression> complained{entry(Scope::campaigns, "", "complaint")};
  EXPECT_TRUE(applicable(complained, campaign_200, config::Suppression::campaign));
  EXPECT_FALSE(applicable(complained, transactional, config::Suppression::global));
  // A bounce stops all mail, whatever the mode, and is the entry named.
  const std::vector<Suppression> both{entry(Scope::campaigns, "", "complaint"), entry(Scope::all_mail, "", "hard_bounce")};
  EXPECT_EQ(applicable(both, transactional, config::Suppression::off)->reason, "hard_bounce");
  EXPECT_EQ(applicable(both, campaign_100, config::Suppression::global)->reason, "hard_bounce");
  // Topics: only copies of that topic.
  const std::vector<Suppression> topic{entry(Scope::topic, "offers", "manual")};
  EXPECT_TRUE(applicable(topic, CopyKind{true, "1", "offers"}, config::Suppression::global));
  EXPECT_FALSE(applicable(topic, CopyKind{true, "1", "news"}, config::Suppression::global));
  EXPECT_FALSE(applicable(topic, campaign_100, config::Suppression::global));
  EXPECT_EQ(parse_scope("all"), Scope::all_mail);
  EXPECT_FALSE(parse_scope("everything"));
}

TEST_P(SuppressionStoreTest, UnsubscribeAndResubscribeKeepTheListInStep) {
  TempStore t(GetParam());
  const auto uid = *t.store->uid_for("A@X.org");
  ASSERT_TRUE(t.store->record_event({uid, "100", "L1", Action::unsubscribe, "one-click", 10, "", ""}));
  auto list = t.store->suppressions_for({"a@X.ORG", "nobody@x.org"}, 20);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().address, "a@x.org");
  EXPECT_EQ(list->front().scope, Scope::campaign);
  EXPECT_EQ(list->front().scope_value, "100");
  EXPECT_EQ((list->front().reason + "/" + list->front().source), "unsubscribe/one-click");
  EXPECT_EQ(list->front().created, 10);
  // Again later: the first opt-out's time is the evidence that stays.
  ASSERT_TRUE(t.store->record_event({uid, "100", "L2", Action::unsubscribe, "page", 30, "", ""}));
  EXPECT_EQ(t.store->suppressions_for({"a@x.org"}, 40)->front().created, 10);
  // suppression: campaign resubscribes one campaign; the entry is lifted (expired), not deleted.
  ASSERT_TRUE(t.store->record_event({uid, "200", "L3", Action::unsubscribe, "page", 50, "", ""}));
  Event resub{uid, "100", "L1", Action::resubscribe, "page", 60, "", ""};
  resub.resubscribe_scope = "100";
  ASSERT_TRUE(t.store->record_event(resub));
  list = t.store->suppressions_for({"a@x.org"}, 70);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().scope_value, "200");
  EXPECT_EQ(t.store->unsubscribed(uid, "100"), std::optional<bool>(false));
  EXPECT_EQ(t.store->unsubscribed(uid, "200"), std::optional<bool>(true));
  // suppression: global resubscribes everything a campaign list held.
  ASSERT_TRUE(t.store->suppress({"a@x.org", Scope::campaigns, "", "manual", "manual", 75, 0}));
  ASSERT_TRUE(t.store->suppress({"a@x.org", Scope::all_mail, "", "hard_bounce", "dsn", 75, 0}));
  ASSERT_TRUE(t.store->record_event({uid, "300", "L4", Action::resubscribe, "page", 80, "", ""}));
  list = t.store->suppressions_for({"a@x.org"}, 90);
  ASSERT_EQ(list->size(), 1u);  // the bounce stays: a resubscribe does not make the address work
  EXPECT_EQ(list->front().scope, Scope::all_mail);
  EXPECT_EQ(t.store->unsubscribed(uid, ""), std::optional<bool>(false));
}

// The preference form's changes are one record_events() call: every event
// with its entry, or (when one fails) none. The database itself fails the
// second change here (a trigger), after the first was written.
TEST_P(SuppressionStoreTest, RecordEventsSavesAllOrNothing) {
  TempStore t(GetParam());
  const auto uid = *t.store->uid_for("pat@x.org");
  auto change = [&](Action action, std::string topic) {
    Event e{uid, "100", "L1", action, "page", 10, "", ""};
    e.topic = std::move(topic);
    return e;
  };
  const std::vector<Event> form{change(Action::unsubscribe, "news"), change(Action::unsubscribe, "offers")};
  auto sql = [&](const std::string& statement) {
    if (GetParam() == "postgresql") {
      pqxx::connection c(t.pg_url());
      pqxx::nontransaction(c).exec(statement);
      return;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(t.sqlite_path().c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, statement.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  sql(GetParam() == "postgresql"
          ? "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$; "
            "CREATE TRIGGER fail BEFORE INSERT ON events FOR EACH ROW WHEN (NEW.topic = 'offers') EXECUTE FUNCTION fail()"
          : "CREATE TRIGGER fail BEFORE INSERT ON events WHEN NEW.topic = 'offers' BEGIN SELECT RAISE(ABORT, 'injected'); END");
  EXPECT_FALSE(t.store->record_events(form));
  EXPECT_EQ(t.store->suppressions_for({"pat@x.org"}, 20)->size(), 0u);  // not even the first change's entry
  EXPECT_EQ(t.store->events_since(0, 0, 10)->size(), 0u);
  sql(GetParam() == "postgresql" ? "DROP TRIGGER fail ON events" : "DROP TRIGGER fail");
  ASSERT_TRUE(t.store->record_events(form));
  EXPECT_EQ(t.store->suppressions_for({"pat@x.org"}, 20)->size(), 2u);
  const auto events = *t.store->events_since(0, 0, 10);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event.topic, "news");
  EXPECT_EQ(events[1].event.topic, "offers");
  EXPECT_TRUE(t.store->record_events({}));  // nothing to save
}

TEST_P(SuppressionStoreTest, ExpiredEntriesDoNotApplyAndRenewalNeverShortens) {
  TempStore t(GetParam());
  ASSERT_TRUE(t.store->suppress({"b@x.org", Scope::all_mail, "", "hard_bounce", "dsn", 100, 200}));
  EXPECT_EQ(t.store->suppressions_for({"b@x.org"}, 150)->size(), 1u);
  EXPECT_EQ(t.store->suppressions_for({"b@x.org"}, 200)->size(), 0u);
  ASSERT_TRUE(t.store->suppress({"b@x.org", Scope::all_mail, "", "hard_bounce", "dsn", 150, 0}));  // until lifted
  ASSERT_TRUE(t.store->suppress({"b@x.org", Scope::all_mail, "", "soft_bounce", "dsn", 160, 300}));
  const auto list = t.store->suppressions_for({"b@x.org"}, 10000);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().expires, 0);
  EXPECT_EQ(list->front().created, 100);
}

TEST_P(SuppressionStoreTest, AThousandAddressesInOneLookup) {
  TempStore t(GetParam());
  std::vector<std::string> addresses;
  for (int i = 0; i < 1000; ++i) addresses.push_back(fmt::format("R{}@x.org", i));
  for (int i = 0; i < 1000; i += 100) {
    ASSERT_TRUE(t.store->suppress({fmt::format("r{}@x.org", i), Scope::campaigns, "", "import", "import", 1, 0}));
  }
  const auto list = t.store->suppressions_for(addresses, 2);
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 10u);
  // Lists between the cached statements' widths (SQLite pads them by repeating the
  // last address): each entry once, whichever place it has.
  for (const std::size_t n : {1u, 3u, 5u, 100u, 257u, 401u}) {
    const std::vector<std::string> first(addresses.begin(), addresses.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_EQ(t.store->suppressions_for(first, 2)->size(), (n + 99) / 100) << n;
    std::vector<std::string> last(addresses.begin() + 1, addresses.begin() + static_cast<std::ptrdiff_t>(n));
    last.push_back("R900@x.org");
    EXPECT_EQ(t.store->suppressions_for(last, 2)->size(), (n - 1) / 100 + 1) << n;
  }
}

TEST_P(SuppressionStoreTest, HardBouncesSuppressAllMailAtTheLimitAndCountOnce) {
  TempStore t(GetParam());
  const FeedbackPolicy policy{2, 0, 86400};
  auto first = t.store->record_feedback(bounce(FeedbackKind::hard_bounce, "L1", "dsn:1", 1000), policy);
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->duplicate);
  EXPECT_EQ(first->count, 1u);
  EXPECT_FALSE(first->suppressed);
  // The same report again (an SNS retry, a DSN mailed twice): counted once.
  auto again = t.store->record_feedback(bounce(FeedbackKind::hard_bounce, "L1", "dsn:1", 1001), policy);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->duplicate);
  // The same launch through another channel (SES and a DSN) is still one bounce.
  EXPECT_EQ(t.store->record_feedback(bounce(FeedbackKind::hard_bounce, "L1", "ses:1", 1002), policy)->count, 1u);
  auto second = t.store->record_feedback(bounce(FeedbackKind::hard_bounce, "L2", "dsn:2", 1003), policy);
  EXPECT_EQ(second->count, 2u);
  ASSERT_TRUE(second->suppressed);
  EXPECT_EQ(second->suppressed->scope, Scope::all_mail);
  EXPECT_EQ(second->suppressed->expires, 1003 + 86400);
  const auto list = t.store->suppressions_for({"a@x.org"}, 2000);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().reason, "hard_bounce");
  EXPECT_TRUE(applicable(*list, CopyKind{false, "", ""}, config::Suppression::off));
  // After the suppression expired, counting starts over.
  const auto later = 1003 + 86400 + 10;
  EXPECT_EQ(t.store->record_feedback(bounce(FeedbackKind::hard_bounce, "L3", "dsn:3", later), policy)->count, 1u);
  EXPECT_TRUE(t.store->suppressions_for({"a@x.org"}, later)->empty());
}

TEST_P(SuppressionStoreTest, SoftBouncesCountInARowUntilADelivery) {
  TempStore t(GetParam());
  const auto uid = *t.store->uid_for("a@x.org");
  const FeedbackPolicy policy{1, 3, 0};
  for (const auto* launch : {"L1", "L2", "L3", "L4"}) ASSERT_TRUE(t.store->record_launch(launch, "100", 1));
  auto send = [&](const char* launch, long long time) {
    ASSERT_TRUE(t.store->record_sends({{launch, uid, "Q", "", SendStatus::delivered, time, "250 ok"}}));
  };
  send("L1", 100);
  EXPECT_EQ(t.store->record_feedback(bounce(FeedbackKind::soft_bounce, "L1", "s1", 110, uid), policy)->count, 1u);
  send("L2", 200);
  EXPECT_EQ(t.store->record_feedback(bounce(FeedbackKind::soft_bounce, "L2", "s2", 210, uid), policy)->count, 2u);
  // L3 is delivered and no bounce names it: the row is broken.
  send("L3", 300);
  send("L4", 400);
  EXPECT_EQ(t.store->record_feedback(bounce(FeedbackKind::soft_bounce, "L4", "s4", 410, uid), policy)->count, 1u);
  // A bounce for L3 arrives late: L1..L4 all bounced, four in a row.
  const auto late = t.store->record_feedback(bounce(FeedbackKind::soft_bounce, "L3", "s3", 420, uid), policy);
  EXPECT_EQ(late->count, 4u);
  ASSERT_TRUE(late->suppressed);
  EXPECT_EQ(late->suppressed->reason, "soft_bounce");
  EXPECT_EQ(late->suppressed->expires, 0);
  // Blocked never suppresses, and soft bounces add nothing once suppressed.
  auto blocked = bounce(FeedbackKind::blocked, "L4", "b4", 430, uid);
  EXPECT_FALSE(t.store->record_feedback(blocked, policy)->suppressed);
  const auto summary = t.store->summary("100", "");
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->soft_bounced, 1u);  // one contact
  EXPECT_EQ(summary->blocked, 1u);
  EXPECT_EQ(summary->hard_bounced, 0u);
}

TEST_P(SuppressionStoreTest, ComplaintUnsubscribesFromAllCampaignsWithAnEvent) {
  TempStore t(GetParam());
  ASSERT_TRUE(t.store->record_launch("L1", "100", 1, "batch", "news@example.com"));
  const auto uid = *t.store->uid_for("a@x.org");
  ASSERT_TRUE(t.store->record_sends({{"L1", uid, "Q", "ses-77", SendStatus::delivered, 5, "250 Ok ses-77"}}));
  EXPECT_EQ(t.store->launch_sender("L1"), std::optional<std::string>("news@example.com"));
  EXPECT_EQ(t.store->launch_sender("nope"), std::optional<std::string>(""));
  const auto copies = t.store->sent_copies("ses-77");
  ASSERT_TRUE(copies);
  ASSERT_EQ(copies->size(), 1u);
  EXPECT_EQ(copies->front().address, "a@x.org");
  EXPECT_EQ(copies->front().email_id, "100");
  EXPECT_TRUE(t.store->sent_copies("")->empty());

  Feedback c{"a@x.org", uid, "L1", "100", FeedbackKind::complaint, "abuse", "", "arf", 50, "arf:<m1@isp>"};
  const auto out = t.store->record_feedback(c, {});
  ASSERT_TRUE(out);
  ASSERT_TRUE(out->suppressed);
  EXPECT_EQ(out->suppressed->scope, Scope::campaigns);
  EXPECT_EQ(t.store->unsubscribed(uid, "999"), std::optional<bool>(true));
  // The complaint's own event (issue 26), then the opt-out it causes.
  const auto events = t.store->events_since(0, 0, 10);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ(events->front().event.action, Action::complaint);
  EXPECT_EQ(events->back().event.source, "complaint");
  EXPECT_EQ(events->back().event.launch_list_id, "L1");
  const auto s = t.store->summary("100", "L1");
  EXPECT_EQ(s->complaints, 1u);
  EXPECT_DOUBLE_EQ(s->complaint_rate(), 1.0);
  const auto window = t.store->feedback_window(0);
  EXPECT_EQ(window->complaints, 1u);
  EXPECT_EQ(window->delivered, 1u);
  EXPECT_EQ(t.store->feedback_window(51)->complaints, 0u);
  // A complaint that names nobody is kept and counted, and changes nothing.
  Feedback nobody{"", "", "", "", FeedbackKind::complaint, "abuse", "", "arf", 60, "arf:<m2@isp>"};
  EXPECT_FALSE(t.store->record_feedback(nobody, {})->suppressed);
}

TEST_P(SuppressionStoreTest, SentAfterOptoutIsCountedPerLaunch) {
  TempStore t(GetParam());
  ASSERT_TRUE(t.store->record_launch("L1", "100", 1));
  const auto a = *t.store->uid_for("a@x.org"), b = *t.store->uid_for("b@x.org");
  Send raced{"L1", a, "Q", "", SendStatus::delivered, 5, "250"};
  raced.after_optout = true;
  ASSERT_TRUE(t.store->record_sends({raced, {"L1", b, "Q", "", SendStatus::delivered, 5, "250"}}));
  EXPECT_EQ(t.store->summary("100", "L1")->sent_after_optout, 1u);
}

// Part 1 stores hold their opt-outs as events only: opening one with this
// version fills the suppression list from each contact's latest event per campaign.
TEST(SuppressionMigration, EventsOfAPart1StoreBecomeEntries) {
  TempStore t("sqlite", false);
  std::filesystem::create_directories(t.dir / "var");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(t.sqlite_path().c_str(), &db), SQLITE_OK);
  const char* part1 = R"(
    CREATE TABLE schema_version (version BIGINT NOT NULL); INSERT INTO schema_version VALUES (1), (2);
    CREATE TABLE contacts (uid TEXT PRIMARY KEY, address TEXT NOT NULL UNIQUE, created BIGINT NOT NULL);
    CREATE TABLE launches (launch_list_id TEXT PRIMARY KEY, email_id TEXT NOT NULL, created BIGINT NOT NULL,
                           kind TEXT NOT NULL DEFAULT 'batch');
    CREATE TABLE sends (launch_list_id TEXT NOT NULL, uid TEXT NOT NULL, queue_id TEXT NOT NULL,
                        upstream_id TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, updated BIGINT NOT NULL,
                        last_reply TEXT NOT NULL DEFAULT '', PRIMARY KEY (launch_list_id, uid));
    CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL, email_id TEXT NOT NULL,
                         launch_list_id TEXT NOT NULL, action TEXT NOT NULL, source TEXT NOT NULL,
                         time BIGINT NOT NULL, ip TEXT NOT NULL DEFAULT '', user_agent TEXT NOT NULL DEFAULT '');
    CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires BIGINT NOT NULL);
    CREATE TABLE cursors (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
    INSERT INTO contacts VALUES ('u1', 'a@x.org', 1), ('u2', 'b@x.org', 1);
    INSERT INTO events (uid, email_id, launch_list_id, action, source, time) VALUES
      ('u1', '100', 'L1', 'unsubscribe', 'one-click', 10),
      ('u1', '200', 'L2', 'unsubscribe', 'page', 11),
      ('u1', '200', 'L2', 'resubscribe', 'page', 12),
      ('u2', '100', 'L1', 'unsubscribe', 'mailto', 13);)";
  ASSERT_EQ(sqlite3_exec(db, part1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
  t.reopen();
  const auto list = t.store->suppressions_for({"a@x.org", "b@x.org"}, 100);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  for (const auto& e : *list) {
    EXPECT_EQ(e.scope, Scope::campaign);
    EXPECT_EQ(e.scope_value, "100");
    EXPECT_EQ(e.reason, "unsubscribe");
  }
  EXPECT_EQ(t.store->unsubscribed("u1", "200"), std::optional<bool>(false));
  EXPECT_EQ(t.store->unsubscribed("u1", ""), std::optional<bool>(true));
}

TEST(SuppressionMigration, EventsOfAPart1PostgresqlStoreBecomeEntries) {
  UNSUBRELAY_REQUIRE(std::getenv("UNSUBRELAY_TEST_PG_URL"),
                     "no test PostgreSQL: UNSUBRELAY_TEST_PG_URL is unset (scripts/test-postgres.sh sets it)");
  TempStore t("postgresql", false);
  {
    pqxx::connection c(t.pg_url());
    pqxx::work w(c);
    w.exec(R"(
      CREATE TABLE schema_version (version BIGINT PRIMARY KEY); INSERT INTO schema_version VALUES (1), (2);
      CREATE TABLE contacts (uid TEXT PRIMARY KEY, address TEXT NOT NULL UNIQUE, created BIGINT NOT NULL);
      CREATE TABLE launches (launch_list_id TEXT PRIMARY KEY, email_id TEXT NOT NULL, created BIGINT NOT NULL,
                             kind TEXT NOT NULL DEFAULT 'batch');
      CREATE TABLE sends (launch_list_id TEXT NOT NULL, uid TEXT NOT NULL, queue_id TEXT NOT NULL,
                          upstream_id TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, updated BIGINT NOT NULL,
                          last_reply TEXT NOT NULL DEFAULT '', PRIMARY KEY (launch_list_id, uid));
      CREATE TABLE events (id BIGSERIAL PRIMARY KEY, uid TEXT NOT NULL, email_id TEXT NOT NULL,
                           launch_list_id TEXT NOT NULL, action TEXT NOT NULL, source TEXT NOT NULL,
                           time BIGINT NOT NULL, ip TEXT NOT NULL DEFAULT '', user_agent TEXT NOT NULL DEFAULT '');
      CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires BIGINT NOT NULL);
      CREATE TABLE cursors (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
      INSERT INTO contacts VALUES ('u1', 'a@x.org', 1);
      INSERT INTO events (uid, email_id, launch_list_id, action, source, time) VALUES
        ('u1', '100', 'L1', 'unsubscribe', 'one-click', 10), ('u1', '200', 'L2', 'unsubscribe', 'page', 11),
        ('u1', '200', 'L2', 'resubscribe', 'page', 12);)");
    w.commit();
  }
  t.reopen();
  const auto list = t.store->suppressions_for({"a@x.org"}, 100);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().scope_value, "100");
  EXPECT_EQ(list->front().source, "one-click");
  EXPECT_EQ(list->front().created, 10);
}

INSTANTIATE_TEST_SUITE_P(Backends, SuppressionStoreTest, testing::ValuesIn(backends()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });
