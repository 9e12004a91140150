// suppression_list_test.cpp: managing the suppression list (list, add, lift,
// import) on every store backend, and the paging cursor.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <map>
#include <set>
#include <utility>

#include "temp_store.hpp"
#include "unsubrelay/store/suppression_list.hpp"
#include "unsubrelay/suppression/manage.hpp"

using namespace unsubrelay::store;
using testing_support::backends;
using testing_support::TempStore;
namespace sup = unsubrelay::suppression;

namespace {

Suppression manual(const std::string& address, long long created, const std::string& topic = "") {
  return {address, topic.empty() ? Scope::campaigns : Scope::topic, topic, "manual", "api", created, 0};
}

class SuppressionListTest : public testing_support::BackendTest {};

/// Makes every write of a suppression for `address` fail, as a store error would.
void refuse_address(const TempStore& t, const std::string& backend, const std::string& address) {
  if (backend == "postgresql") {
    pqxx::connection c(t.pg_url());
    pqxx::work w(c);
    w.exec("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.address = " + w.quote(address) +
           " THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql");
    w.exec("CREATE TRIGGER refuse BEFORE INSERT ON suppressions FOR EACH ROW EXECUTE FUNCTION refuse()");
    w.commit();
    return;
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(t.sqlite_path().c_str(), &db), SQLITE_OK);
  const auto sql = "CREATE TRIGGER refuse BEFORE INSERT ON suppressions WHEN NEW.address = '" + address +
                   "' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END";
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

}  // namespace

TEST(SuppressionCursor, RoundTripsAndRefusesGarbage) {
  const auto c = encode_cursor(manual("a@x.org", 42, "offers"));
  const auto k = decode_cursor(c);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->created, 42);
  EXPECT_EQ(k->address, "a@x.org");
  EXPECT_EQ(k->scope, "topic");
  EXPECT_EQ(k->scope_value, "offers");
  EXPECT_FALSE(decode_cursor("zz"));
  EXPECT_FALSE(decode_cursor("abc"));
  EXPECT_FALSE(decode_cursor("41"));  // "A": one field
  EXPECT_FALSE(decode_cursor(std::string(5000, 'a')));
}

TEST_P(SuppressionListTest, AddRecordsAnEventOnlyWhenNewAndLiftRecordsOne) {
  TempStore t(GetParam());
  auto& s = *t.store;
  EXPECT_EQ(s.add_suppressions({manual("A@X.org", 100), manual("b@x.org", 100, "offers")}, 100), 2u);
  EXPECT_EQ(s.add_suppressions({manual("a@x.org", 100)}, 101), 0u);  // renewed, nothing new
  auto events = *s.events_since(0, 0, 100);
  ASSERT_EQ(events.size(), 2u);
  // The events of one batch share its time; their order is the store's (uid order).
  if (events[0].event.topic == "offers") std::swap(events[0], events[1]);
  EXPECT_EQ(events[1].event.topic, "offers");
  EXPECT_EQ(events[1].event.source, "api");
  EXPECT_EQ(*s.address_of(events[0].event.uid), "a@x.org");
  EXPECT_EQ(*s.address_of(events[1].event.uid), "b@x.org");

  auto page = *s.list_suppressions({"a@x.org", 0, "", 100}, 200);
  ASSERT_EQ(page.entries.size(), 1u);
  EXPECT_EQ(page.entries[0].scope, Scope::campaigns);

  EXPECT_EQ(s.lift_suppressions("b@x.org", "news", "api", 200), 0u);  // other topic: nothing
  EXPECT_EQ(s.lift_suppressions("B@x.org", "offers", "api", 200), 1u);
  EXPECT_EQ(s.lift_suppressions("b@x.org", "", "api", 201), 0u);
  EXPECT_TRUE(s.list_suppressions({"b@x.org", 0, "", 100}, 300)->entries.empty());
  events = *s.events_since(0, 0, 100);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].event.action, Action::resubscribe);
  EXPECT_EQ(events[2].event.topic, "offers");
  // The send-time check sees what the management calls did.
  const auto verdicts = s.check_suppression({true, "9", "L", "", unsubrelay::config::Suppression::global},
                                            {{"a@x.org", ""}, {"b@x.org", ""}});
  ASSERT_TRUE(verdicts);
  EXPECT_TRUE((*verdicts)[0].suppressed);
  EXPECT_FALSE((*verdicts)[1].suppressed);
}

// One batch as an import makes it: new entries, one already there (same or
// another reason), the same key twice, a lifted one, an address that already
// has a contact, two entries of one new address. Events only for what became active.
TEST_P(SuppressionListTest, ABatchRecordsWhatBecameActiveOnce) {
  TempStore t(GetParam());
  auto& s = *t.store;
  ASSERT_EQ(s.add_suppressions({manual("a@x.org", 100), manual("l@x.org", 100)}, 100), 2u);
  ASSERT_EQ(s.lift_suppressions("l@x.org", "", "api", 150), 1u);
  const auto carol = *s.uid_for("c@x.org");  // a contact from an earlier send
  const std::vector<Suppression> batch = {manual("a@x.org", 200), manual("b@x.org", 200),
                                          manual("B@X.ORG", 201),  manual("l@x.org", 200),
                                          manual("c@x.org", 200), manual("d@x.org", 200, "offers"),
                                          manual("d@x.org", 200)};
  EXPECT_EQ(s.add_suppressions(batch, 200), 5u);  // b, l (again), c, d twice
  auto events = *s.events_since(0, 0, 100);
  ASSERT_EQ(events.size(), 8u);  // a, l, l lifted, then the five
  std::map<std::string, std::vector<Event>> by_address;
  for (std::size_t i = 3; i < events.size(); ++i) by_address[*s.address_of(events[i].event.uid)].push_back(events[i].event);
  ASSERT_EQ(by_address.size(), 4u);
  EXPECT_EQ(by_address["b@x.org"].size(), 1u);
  EXPECT_EQ(by_address["l@x.org"].size(), 1u);
  ASSERT_EQ(by_address["c@x.org"].size(), 1u);
  EXPECT_EQ(by_address["c@x.org"][0].uid, carol);
  ASSERT_EQ(by_address["d@x.org"].size(), 2u);
  EXPECT_EQ(by_address["d@x.org"][0].action, Action::unsubscribe);
  EXPECT_EQ(by_address["d@x.org"][0].topic + by_address["d@x.org"][1].topic, "offers");
  EXPECT_EQ(s.list_suppressions({"d@x.org", 0, "", 10}, 300)->entries.size(), 2u);

  EXPECT_EQ(s.add_suppressions(batch, 300), 0u);  // idempotent
  auto renewed = manual("a@x.org", 300);
  renewed.reason = "complaint";
  EXPECT_EQ(s.add_suppressions({renewed}, 300), 0u);
  EXPECT_EQ(s.events_since(0, 0, 100)->size(), 8u);
  const auto a = s.list_suppressions({"a@x.org", 0, "", 10}, 300)->entries;
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].reason, "complaint");
  EXPECT_EQ(a[0].created, 100);  // the first opt-out's time stays
}

TEST_P(SuppressionListTest, PagingVisitsEveryEntryOnceInOrder) {
  TempStore t(GetParam());
  std::vector<Suppression> batch;
  for (int i = 0; i < 25; ++i) batch.push_back(manual("p" + std::to_string(i) + "@x.org", 1000 + i % 3));
  ASSERT_EQ(t.store->add_suppressions(batch, 2000), 25u);
  std::vector<std::string> seen;
  SuppressionQuery q{"", 1001, "", 7};
  for (int pages = 0; pages < 10; ++pages) {
    const auto page = t.store->list_suppressions(q, 3000);
    ASSERT_TRUE(page);
    for (const auto& e : page->entries) seen.push_back(e.address);
    if (page->next_cursor.empty()) break;
    q.cursor = page->next_cursor;
  }
  EXPECT_EQ(seen.size(), 16u);  // created 1001 and 1002 only
  std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), seen.size());
}

TEST_P(SuppressionListTest, ImporterStreamsBatchesAndReportsBadRows) {
  TempStore t(GetParam());
  std::string csv = "email,reason,topic\n";
  for (int i = 0; i < 6000; ++i) csv += "u" + std::to_string(i) + "@x.org,complaint,\n";
  csv += "broken,manual,\nz@x.org,hard_bounce,\nq@x.org,manual,gardening\n";
  sup::Importer importer(*t.store, {"offers"}, "import", 5000, 1000);  // seven batches
  for (std::size_t at = 0; at < csv.size(); at += 777) ASSERT_TRUE(importer.push(std::string_view(csv).substr(at, 777)));
  const auto r = importer.finish();
  EXPECT_TRUE(r.ok()) << r.fatal << r.store_error;
  EXPECT_EQ(r.rows, 6001u);
  EXPECT_EQ(r.added, 6001u);
  EXPECT_EQ(r.bad_rows, 2u);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].line, 6002u);
  EXPECT_EQ(r.errors[1].line, 6004u);
  const auto z = t.store->list_suppressions({"z@x.org", 0, "", 10}, 6000)->entries;
  ASSERT_EQ(z.size(), 1u);
  EXPECT_EQ(z[0].scope, Scope::all_mail);
  EXPECT_EQ(z[0].source, "import");
  sup::Importer again(*t.store, {"offers"}, "import", 5001, 1000);
  again.push(csv);
  EXPECT_EQ(again.finish().added, 0u);
}

// An import whose input stops short (the HTTP client stalled or went away)
// keeps its complete rows and never the record it was reading.
TEST_P(SuppressionListTest, AnAbandonedImportKeepsCompleteRowsOnly) {
  TempStore t(GetParam());
  sup::Importer importer(*t.store, {}, "import", 5000, 2);
  std::string csv = "email\na@x.org\nb@x.org\nc@x.org\n";
  for (int i = 0; i < 100; ++i) csv += "f" + std::to_string(i) + "@x.org\n";  // past the 1 KiB the format is told from
  ASSERT_TRUE(importer.push(csv + "partial@x.org"));
  const auto r = importer.abandon("the client stopped sending");
  EXPECT_EQ(r.rows, 103u);
  EXPECT_EQ(r.fatal, "the client stopped sending");
  const auto held = [&](const std::string& a) {
    return !t.store->list_suppressions({a, 0, "", 10}, 6000)->entries.empty();
  };
  EXPECT_TRUE(held("a@x.org"));
  EXPECT_TRUE(held("c@x.org"));
  EXPECT_FALSE(held("partial@x.org"));
}

// When a batch fails, the report names its rows and the import stops; on
// PostgreSQL a batch already handed to the other writer is still applied.
TEST_P(SuppressionListTest, ImporterNamesTheRowsAStoreFailureLeftOut) {
  TempStore t(GetParam());
  refuse_address(t, GetParam(), "u2499@x.org");  // good row 2500: the third batch of 1,000
  std::string csv = "email\n";
  for (int i = 0; i < 3500; ++i) csv += "u" + std::to_string(i) + "@x.org\n";
  sup::Importer importer(*t.store, {}, "import", 5000, 1000);
  importer.push(csv);
  const auto r = importer.finish();
  EXPECT_FALSE(r.ok());
  const bool two_writers = t.store->import_writers() == 2;
  const std::string lost = two_writers ? "good rows 2001-3000, and any good row after 3500"  // batch 4 was in flight
                                       : "good rows 2001-3000, and any good row after 3000";
  EXPECT_NE(r.store_error.find("not applied: " + lost), std::string::npos) << r.store_error;
  EXPECT_NE(r.store_error.find("refused by the test"), std::string::npos) << r.store_error;
  EXPECT_EQ(r.rows, two_writers ? 2500u : 2000u);
  const auto held = [&](int i) {
    return !t.store->list_suppressions({"u" + std::to_string(i) + "@x.org", 0, "", 10}, 6000)->entries.empty();
  };
  EXPECT_TRUE(held(0));
  EXPECT_TRUE(held(1999));
  EXPECT_FALSE(held(2000));
  EXPECT_FALSE(held(2999));
  EXPECT_EQ(held(3000), two_writers);
  EXPECT_EQ(held(3499), two_writers);
}

INSTANTIATE_TEST_SUITE_P(Backends, SuppressionListTest, testing::ValuesIn(backends()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });
