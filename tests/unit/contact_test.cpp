// contact_test.cpp: personal data (store/contact.hpp): the keyed hash of an
// erased address, and show / erase on every store backend.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "../../src/store/compaction.hpp"
#include "temp_store.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/token/token.hpp"

using namespace unsubrelay::store;
using testing_support::backends;
using testing_support::TempStore;
namespace config = unsubrelay::config;
namespace token = unsubrelay::token;

namespace {

token::KeySet keys(std::vector<token::Key> list) {
  std::vector<std::string> errors;
  auto set = token::KeySet::from_keys(std::move(list), errors);
  EXPECT_TRUE(set) << (errors.empty() ? "" : errors.front());
  return *set;
}

const token::Key k1{"K1", std::string(32, 'a')};
const token::Key k2{"k2", std::string(32, 'b')};

SendScope campaign(const std::string& email_id) {
  return {true, email_id, "L1", "", config::Suppression::global};
}

class ContactStoreTest : public testing_support::BackendTest {};

}  // namespace

TEST(ErasureKeys, HashIsKeyedStableAndCaseInsensitive) {
  const ErasureKeys one(keys({k1})), other(keys({k2}));
  const auto h = one.hash("Bob@Example.org");
  EXPECT_EQ(h, one.hash("bob@example.org"));
  EXPECT_TRUE(h.starts_with("erased:k1:")) << h;  // lower case: the store folds what it keeps
  EXPECT_EQ(h.size(), std::string("erased:k1:").size() + 64);
  EXPECT_EQ(h.find("bob"), std::string::npos);
  EXPECT_NE(h, other.hash("bob@example.org"));
  EXPECT_NE(h, one.hash("bob2@example.org"));
  EXPECT_TRUE(ErasureKeys::is_hash(h));
  EXPECT_FALSE(ErasureKeys::is_hash("bob@example.org"));
  EXPECT_EQ(ErasureKeys::key_id(h), "k1");
  // Every key of a rotated set is tried; the first one hashes.
  const ErasureKeys rotated(keys({k2, k1}));
  EXPECT_EQ(rotated.forms("bob@example.org"), (std::vector<std::string>{other.hash("bob@example.org"), h}));
  EXPECT_EQ(rotated.hash("bob@example.org"), other.hash("bob@example.org"));
  EXPECT_TRUE(ErasureKeys().forms("bob@example.org").empty());
}

TEST_P(ContactStoreTest, ShowEraseAndStaySuppressed) {
  TempStore t(GetParam());
  auto& s = *t.store;
  s.set_erasure_keys(ErasureKeys(keys({k1})));
  const auto uid = s.uid_for("Bob@Example.org");
  ASSERT_TRUE(uid);
  ASSERT_TRUE(s.record_launch("L1", "100", 1000));
  ASSERT_TRUE(s.record_sends({{"L1", *uid, "QID1", "up-1", SendStatus::delivered, 1001, "250 ok <bob@example.org>"}}));
  Event e{*uid, "100", "L1", Action::unsubscribe, "one-click", 1002, "192.0.2.7", "SecretAgent/1.0"};
  ASSERT_TRUE(s.record_event(e));

  const auto shown = s.contact("BOB@example.org");
  ASSERT_TRUE(shown) << s.last_error();
  EXPECT_EQ(shown->uid, *uid);
  ASSERT_EQ(shown->sends.size(), 1u);
  EXPECT_EQ(shown->sends[0].email_id, "100");
  EXPECT_EQ(shown->sends[0].queue_id, "QID1");
  ASSERT_EQ(shown->events.size(), 1u);
  EXPECT_EQ(shown->events[0].user_agent, "SecretAgent/1.0");
  EXPECT_EQ(shown->events[0].ip, "192.0.2.7");
  ASSERT_EQ(shown->suppressions.size(), 1u);

  const auto erased = s.erase("bob@example.org", "api", 2000);
  ASSERT_TRUE(erased) << s.last_error();
  EXPECT_TRUE(erased->found);
  EXPECT_EQ(erased->uid, *uid);
  EXPECT_EQ(erased->kept, 1u);
  EXPECT_EQ(erased->events, 1u);
  EXPECT_TRUE(erased->compacted) << erased->compact_note;
  EXPECT_TRUE(s.contact("bob@example.org")->empty());
  EXPECT_FALSE(s.address_of(*uid));
  // Idempotent: nothing is held any more.
  EXPECT_FALSE(s.erase("bob@example.org", "api", 2001)->found);

  // The send-time check still stops it, flagged so that no contact is made again.
  const auto verdicts = s.check_suppression(campaign("200"), {{"BOB@example.org", ""}, {"carol@example.org", ""}});
  ASSERT_TRUE(verdicts);
  EXPECT_TRUE((*verdicts)[0].suppressed);
  EXPECT_TRUE((*verdicts)[0].erased);
  EXPECT_FALSE((*verdicts)[1].suppressed);
  const auto single = s.suppressions_of("bob@example.org", 2002);
  ASSERT_TRUE(single);
  ASSERT_EQ(single->size(), 1u);
  EXPECT_TRUE(ErasureKeys::is_hash((*single)[0].address));

  // The events keep no IP or user agent; the erase event names the uid only.
  const auto events = s.events_since(0, 0, 100);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].event.user_agent, "");
  EXPECT_EQ((*events)[0].event.ip, "");
  EXPECT_EQ((*events)[1].event.action, Action::erase);
  EXPECT_EQ((*events)[1].event.uid, *uid);
  EXPECT_EQ((*events)[1].event.source, "api");
}

TEST_P(ContactStoreTest, RotationKeepsErasedEntriesWhileTheOldKeyIsListed) {
  TempStore t(GetParam());
  auto& s = *t.store;
  s.set_erasure_keys(ErasureKeys(keys({k1})));
  ASSERT_TRUE(s.suppress({"dan@example.org", Scope::campaigns, "", "complaint", "arf", 10, 0}));
  const auto erased = s.erase("dan@example.org", "cli", 20);
  ASSERT_TRUE(erased && erased->found && erased->kept == 1);
  EXPECT_EQ(erased->uid, "");  // no contact row: the event names the hash
  EXPECT_TRUE(ErasureKeys::is_hash(erase_subject(*erased)));

  s.set_erasure_keys(ErasureKeys(keys({k2, k1})));  // a new signing key, the old one still listed
  EXPECT_TRUE((*s.check_suppression(campaign("1"), {{"dan@example.org", ""}}))[0].suppressed);
  s.set_erasure_keys(ErasureKeys(keys({k2})));  // the old key removed: its hashes no longer match
  EXPECT_FALSE((*s.check_suppression(campaign("1"), {{"dan@example.org", ""}}))[0].suppressed);
}

TEST_P(ContactStoreTest, AnErasedAddressCanBeLiftedByName) {
  TempStore t(GetParam());
  auto& s = *t.store;
  s.set_erasure_keys(ErasureKeys(keys({k1})));
  ASSERT_TRUE(s.suppress({"fay@example.org", Scope::topic, "offers", "manual", "api", 10, 0}));
  ASSERT_TRUE(s.suppress({"fay@example.org", Scope::campaigns, "", "manual", "api", 10, 0}));
  ASSERT_TRUE(s.erase("fay@example.org", "api", 20)->kept == 2);
  EXPECT_EQ(s.lift("Fay@example.org", "offers", "api", 30), 1u);  // one topic's entry
  EXPECT_EQ(s.suppressions_of("fay@example.org", 31)->size(), 1u);
  EXPECT_EQ(s.lift("fay@example.org", "", "cli", 40), 1u);  // the rest
  EXPECT_FALSE((*s.check_suppression(campaign("1"), {{"fay@example.org", ""}}))[0].suppressed);
  EXPECT_EQ(s.lift("fay@example.org", "", "cli", 50), 0u);
  const auto events = s.events_since(0, 0, 100);
  ASSERT_TRUE(events);
  // suppress() records no event: the erase (naming the hash, there was no contact) and the two lifts.
  ASSERT_EQ(events->size(), 3u);
  const auto hash = ErasureKeys(keys({k1})).hash("fay@example.org");
  EXPECT_EQ((*events)[0].event.action, Action::erase);
  EXPECT_EQ((*events)[0].event.uid, hash);
  EXPECT_EQ((*events)[1].event.action, Action::resubscribe);
  EXPECT_EQ((*events)[1].event.topic, "offers");
  EXPECT_EQ((*events)[2].event.uid, hash);
  EXPECT_EQ((*events)[2].event.source, "cli");
  EXPECT_FALSE(s.address_of(hash));  // no contact was made for the hash
}

TEST_P(ContactStoreTest, FeedbackRowsAreAnonymised) {
  TempStore t(GetParam());
  auto& s = *t.store;
  s.set_erasure_keys(ErasureKeys(keys({k1})));
  Feedback f;
  f.address = "eve@example.org";
  f.kind = FeedbackKind::hard_bounce;
  f.status = "5.1.1";
  f.diagnostic = "550 5.1.1 <eve@example.org>: no such user";
  f.source = "dsn";
  f.time = 50;
  f.dedup_key = "dsn:eve@example.org:1";
  ASSERT_TRUE(s.record_feedback(f, FeedbackPolicy{1, 0, 0}));
  const auto shown = s.contact("eve@example.org");
  ASSERT_TRUE(shown);
  ASSERT_EQ(shown->feedback.size(), 1u);
  const auto erased = s.erase("eve@example.org", "api", 60);
  ASSERT_TRUE(erased && erased->found);
  EXPECT_EQ(erased->feedback, 1u);
  EXPECT_EQ(erased->kept, 1u);  // the hard bounce's all-mail entry
  EXPECT_TRUE(s.contact("eve@example.org")->empty());
  const auto verdicts = s.check_suppression(SendScope{}, {{"eve@example.org", ""}});  // transactional mail too
  EXPECT_TRUE((*verdicts)[0].suppressed);
}

TEST_P(ContactStoreTest, NothingHeldIsNotFound) {
  TempStore t(GetParam());
  t.store->set_erasure_keys(ErasureKeys(keys({k1})));
  EXPECT_TRUE(t.store->contact("nobody@example.org")->empty());
  EXPECT_FALSE(t.store->erase("nobody@example.org", "api", 1)->found);
  EXPECT_EQ(t.store->events_since(0, 0, 10)->size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ContactStoreTest, testing::ValuesIn(backends()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

// Erasures that come while a compaction runs wait, and one next pass serves
// them all: never two passes at once, never one per erasure.
TEST(Compactions, OnePassAtATimeSharedByTheErasuresThatWaited) {
  Compactions c;
  std::atomic<int> running{0}, passes{0}, most{0};
  std::promise<void> release;
  auto released = release.get_future().share();
  std::vector<Compactions::Batch> batches(3);
  const auto pass = [&](const Compactions::Batch& b) {
    const int now = ++running;
    most = std::max(most.load(), now);
    batches[static_cast<std::size_t>(passes++)] = b;
    released.wait();
    --running;
    return std::string(b.tables.count("bad") ? "bad: failed" : "");
  };
  std::thread first([&] { EXPECT_EQ(c.after({"events"}, 7, pass), ""); });
  while (c.waiting() < 1 || passes.load() < 1) std::this_thread::yield();
  std::vector<std::thread> later;
  for (const char* table : {"sends", "contacts", "feedback"}) {
    later.emplace_back([&, table] { EXPECT_EQ(c.after({table}, 9, pass), ""); });
  }
  while (c.waiting() < 4) std::this_thread::yield();  // all three queued behind the running pass
  release.set_value();
  first.join();
  for (auto& t : later) t.join();
  EXPECT_EQ(passes.load(), 2);
  EXPECT_EQ(most.load(), 1);
  EXPECT_EQ(batches[0].tables, std::set<std::string>{"events"});
  EXPECT_EQ(batches[1].tables, (std::set<std::string>{"contacts", "feedback", "sends"}));
  EXPECT_EQ(batches[1].horizon, 9);
  EXPECT_EQ(c.waiting(), 0u);
  EXPECT_EQ(c.after({"bad"}, 1, pass), "bad: failed");  // a failed pass's reason reaches its erasure
}
