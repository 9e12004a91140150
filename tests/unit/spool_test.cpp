// spool_test.cpp: queue file format, commit, recovery, state logs.
#include <gtest/gtest.h>

#include "temp_dir.hpp"

#include <filesystem>
#include <fstream>

#include "unsubrelay/spool/spool.hpp"

using namespace unsubrelay::spool;
using namespace unsubrelay;
namespace fs = std::filesystem;

namespace {

using testing_support::TempDir;

QueueEnvelope envelope() {
  return QueueEnvelope{1700000000, "192.0.2.1", "client.test", "", true, "a@example.com",
                       {"b@example.org", "c@example.org"}};
}

}  // namespace

TEST(QueueFile, RoundTrip) {
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  const auto file = encode_envelope(envelope()) + content + encode_trailer(content.size());
  std::string why;
  const auto parsed = parse_queue_file(file, std::string_view(file).substr(file.size() - trailer_size), file.size(), &why);
  ASSERT_TRUE(parsed) << why;
  EXPECT_EQ(parsed->envelope.sender, "a@example.com");
  EXPECT_EQ(parsed->envelope.recipients.size(), 2u);
  EXPECT_TRUE(parsed->envelope.body_8bit);
  EXPECT_EQ(parsed->envelope.arrival, 1700000000);
  EXPECT_EQ(file.substr(parsed->content_offset, parsed->content_length), content);
  EXPECT_EQ(parsed->envelope.tenant, "");  // no N record: the tenant "default"
}

TEST(QueueFile, TenantRoundTrips) {
  auto e = envelope();
  e.tenant = "acme";
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  const auto file = encode_envelope(e) + content + encode_trailer(content.size());
  EXPECT_NE(file.find("\nN acme\n"), std::string::npos);
  const auto parsed = parse_queue_file(file, std::string_view(file).substr(file.size() - trailer_size), file.size(), nullptr);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->envelope.tenant, "acme");
  EXPECT_EQ(parsed->envelope.recipients.size(), 2u);
}

TEST(QueueFile, EveryTruncationIsDetected) {
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  const auto file = encode_envelope(envelope()) + content + encode_trailer(content.size());
  for (std::size_t len = 0; len < file.size(); ++len) {
    const std::string_view cut(file.data(), len);
    const auto tail = len >= trailer_size ? cut.substr(len - trailer_size) : std::string_view();
    EXPECT_FALSE(parse_queue_file(cut, tail, len, nullptr)) << "length " << len;
  }
}

TEST(StateLog, LastStateWinsAndFragmentsAreIgnored) {
  const auto s = parse_state_log("D 1 100\nF 2 500 451 try later\nB 0 200\nD 9 1\nD 0",
                                 std::vector<RecipientStatus>(3, RecipientStatus::pending));
  ASSERT_EQ(s.recipients.size(), 3u);
  EXPECT_EQ(s.recipients[0], RecipientStatus::bounced);  // the fragment "D 0" is ignored
  EXPECT_EQ(s.recipients[1], RecipientStatus::delivered);
  EXPECT_EQ(s.recipients[2], RecipientStatus::pending);
  EXPECT_EQ(s.attempts, 2u);
  EXPECT_EQ(s.next_try, 500);
  EXPECT_EQ(s.last_reason, "451 try later");
}

TEST(Spool, CommitLoadAndRemove) {
  TempDir dir;
  Spool spool(dir.path.string());
  ASSERT_EQ(spool.init(), "");
  std::string err;
  auto writer = spool.create(envelope(), &err);
  ASSERT_TRUE(writer) << err;
  const std::string big(200000, 'x');  // larger than the write buffer
  EXPECT_EQ(writer->append("Subject: y\r\n\r\n"), "");
  EXPECT_EQ(writer->append(big), "");
  EXPECT_TRUE(spool.list_ids().empty());  // not visible before commit
  ASSERT_EQ(writer->commit(), "");
  const auto id = writer->id();
  EXPECT_TRUE(Spool::valid_id(id));
  ASSERT_EQ(spool.list_ids(), std::vector<std::string>{id});
  auto open = spool.open(id, &err);
  ASSERT_TRUE(open) << err;
  EXPECT_EQ(open->content(), "Subject: y\r\n\r\n" + big);
  EXPECT_EQ(open->mark(1, RecipientStatus::delivered), "");
  EXPECT_EQ(open->sync(), "");
  EXPECT_EQ(spool.mark_deferred(open->message, 1, 99, "451 later\r\ninjected"), "");
  auto m = spool.load(id, &err);
  ASSERT_TRUE(m) << err;
  EXPECT_EQ(m->state.recipients[0], RecipientStatus::pending);
  EXPECT_EQ(m->state.recipients[1], RecipientStatus::delivered);
  EXPECT_EQ(m->state.last_reason, "451 later  injected");
  EXPECT_TRUE(m->has_state_log);
  EXPECT_TRUE(spool.remove(id));
  EXPECT_TRUE(spool.list_ids().empty());
  EXPECT_FALSE(spool.remove(id));
  EXPECT_FALSE(spool.remove("../../etc/passwd"));
}

// smtp.tenant_header: the tenant is known after DATA; the slot written at
// create is filled in place before the commit, and a file whose slot was
// never filled is never committed (it would have been "default"'s).
TEST(Spool, TenantSlotIsFilledBeforeTheCommit) {
  TempDir dir;
  Spool spool(dir.path.string());
  ASSERT_EQ(spool.init(), "");
  auto e = envelope();
  e.tenant_slot = true;
  std::string err;
  auto unnamed = spool.create(e, &err);
  ASSERT_TRUE(unnamed) << err;
  EXPECT_EQ(unnamed->append("Subject: y\r\n\r\nbody\r\n"), "");
  EXPECT_NE(unnamed->commit(), "");
  EXPECT_TRUE(spool.list_ids().empty());

  auto writer = spool.create(e, &err);
  ASSERT_TRUE(writer) << err;
  EXPECT_EQ(writer->append("Subject: y\r\n\r\nbody\r\n"), "");
  EXPECT_NE(writer->set_tenant(std::string(33, 'a')), "");  // wider than the slot
  EXPECT_NE(writer->set_tenant("a b"), "");
  ASSERT_EQ(writer->set_tenant("acme"), "");
  EXPECT_NE(writer->set_tenant("beta"), "");  // once
  ASSERT_EQ(writer->commit(), "");
  auto m = spool.load(writer->id(), &err);
  ASSERT_TRUE(m) << err;
  EXPECT_EQ(m->envelope.tenant, "acme");
  EXPECT_EQ(m->envelope.recipients.size(), 2u);
  auto open = spool.open(writer->id(), &err);
  ASSERT_TRUE(open) << err;
  EXPECT_EQ(open->content(), "Subject: y\r\n\r\nbody\r\n");
}

// Postfix-style marks: each recipient's outcome is one byte in the queue file
// itself, the file stays valid, and a state log from older versions still counts.
TEST(Spool, RecipientsAreMarkedInPlace) {
  TempDir dir;
  Spool spool(dir.path.string());
  ASSERT_EQ(spool.init(), "");
  auto env = envelope();
  env.recipients.push_back("d@example.org");
  auto writer = spool.create(env, nullptr);
  ASSERT_EQ(writer->append("Subject: z\r\n\r\nbody\r\n"), "");
  ASSERT_EQ(writer->commit(), "");
  const auto id = writer->id();
  {
    auto open = spool.open(id);
    ASSERT_TRUE(open);
    EXPECT_EQ(open->mark(0, RecipientStatus::delivered), "");
    EXPECT_EQ(open->mark(2, RecipientStatus::bounced), "");
    EXPECT_NE(open->mark(3, RecipientStatus::delivered), "");  // no such recipient
  }
  std::ifstream in(dir.path / "messages" / id, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(file.find("\nD b@example.org\nR c@example.org\nX d@example.org\nM\n"), std::string::npos) << file;
  auto m = spool.load(id);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->envelope.recipients, (std::vector<std::string>{"b@example.org", "c@example.org", "d@example.org"}));
  EXPECT_EQ(m->state.recipients, (std::vector<RecipientStatus>{RecipientStatus::delivered, RecipientStatus::pending,
                                                                RecipientStatus::bounced}));
  EXPECT_FALSE(m->has_state_log);  // no second file for a message
  std::ofstream(dir.path / "state" / id) << "D 1 100\n";  // a spool written by an older version
  EXPECT_EQ(spool.open(id)->message.state.recipients[1], RecipientStatus::delivered);
  EXPECT_EQ(spool.recover().queued, std::vector<std::string>{id});
}

// The SMTP session's content is handed over in memory within the bound, and
// the bound is given back when the message is done with; past it, nothing is kept.
TEST(Spool, ContentKeptInMemoryWithinTheBound) {
  TempDir dir;
  Spool spool(dir.path.string(), 1000);
  ASSERT_EQ(spool.init(), "");
  auto small = spool.create(envelope(), nullptr);
  ASSERT_EQ(small->append("Subject: s\r\n\r\n"), "");
  ASSERT_EQ(small->append(std::string(500, 's')), "");
  EXPECT_EQ(spool.budget().used(), 514u);
  auto big = spool.create(envelope(), nullptr);
  ASSERT_EQ(big->append(std::string(600, 'b')), "");  // 514 + 600 > 1000: read back later instead
  EXPECT_EQ(spool.budget().used(), 514u);
  EXPECT_EQ(big->content(), std::string(600, 'b'));  // from the file
  ASSERT_EQ(small->commit(), "");
  ASSERT_EQ(big->commit(), "");
  EXPECT_FALSE(big->opened());
  auto opened = small->opened();
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->content(), "Subject: s\r\n\r\n" + std::string(500, 's'));
  EXPECT_EQ(opened->message.id, small->id());
  EXPECT_EQ(opened->message.envelope.recipients.size(), 2u);
  small.reset();
  EXPECT_EQ(spool.budget().used(), 514u);  // held by the open message now
  EXPECT_EQ(opened->mark(1, RecipientStatus::delivered), "");  // opens the committed file
  EXPECT_EQ(opened->sync(), "");
  EXPECT_EQ(spool.load(opened->message.id)->state.recipients[1], RecipientStatus::delivered);
  EXPECT_TRUE(spool.remove(opened->message));
  opened.reset();
  EXPECT_EQ(spool.budget().used(), 0u);
  big.reset();
  EXPECT_EQ(spool.budget().used(), 0u);
}

TEST(Spool, AbortedWriterLeavesNothing) {
  TempDir dir;
  Spool spool(dir.path.string());
  spool.init();
  {
    auto writer = spool.create(envelope(), nullptr);
    writer->append("partial");
  }  // destroyed without commit
  EXPECT_TRUE(fs::is_empty(dir.path / "incoming"));
  EXPECT_TRUE(spool.list_ids().empty());
}

TEST(Spool, RecoveryDropsIncomingAndQuarantinesDamage) {
  TempDir dir;
  Spool spool(dir.path.string());
  spool.init();
  auto w = spool.create(envelope(), nullptr);
  w->append("never finished");
  auto good = spool.create(envelope(), nullptr);
  good->append("fine\r\n");
  ASSERT_EQ(good->commit(), "");
  std::ofstream(dir.path / "messages" / "0000000000000001") << "UNSUBRELAY-QUEUE 1\nT 1\nS a@b.c\nR d@e.f\nM\nhalf";
  std::ofstream(dir.path / "state" / "00000000000000FF") << "D 0 1\n";
  const auto report = spool.recover();
  EXPECT_EQ(report.queued, std::vector<std::string>{good->id()});
  EXPECT_EQ(report.incomplete_removed, 1u);
  ASSERT_EQ(report.quarantined.size(), 1u);
  EXPECT_TRUE(fs::exists(dir.path / "corrupt" / "0000000000000001"));
  EXPECT_FALSE(fs::exists(dir.path / "state" / "00000000000000FF"));
}

TEST(Spool, FlushRequest) {
  TempDir dir;
  Spool spool(dir.path.string());
  spool.init();
  EXPECT_FALSE(spool.take_flush_request());
  EXPECT_EQ(spool.request_flush(), "");
  EXPECT_TRUE(spool.take_flush_request());
  EXPECT_FALSE(spool.take_flush_request());
}
