// segment_log_test.cpp: the group-committed spool's records, their scan after
// a crash, and the segment writer's group commit (spool/segment_log.hpp).
#include <gtest/gtest.h>

#include "temp_dir.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "unsubrelay/spool/segment_log.hpp"
#include "unsubrelay/spool/segment_store.hpp"
#include "unsubrelay/spool/spool.hpp"

using namespace unsubrelay::spool;
using namespace unsubrelay;
namespace fs = std::filesystem;

namespace {

using testing_support::TempDir;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string three_records() {
  return encode_record(RecordKind::message, "0123456789ABCDEF" + std::string(300, 'm')) +
         encode_record(RecordKind::done, "0123456789ABCDEF 0 D") + encode_record(RecordKind::removed, "0123456789ABCDEF");
}

}  // namespace

TEST(SegmentLog, Crc32cIsCastagnoli) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the check value of CRC-32C
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("56789", crc32c("1234")), crc32c("123456789"));  // incremental
  const std::string odd(1001, 'x');  // past the 8-byte steps of the SSE 4.2 path
  EXPECT_EQ(crc32c(odd), crc32c(std::string_view(odd).substr(500), crc32c(std::string_view(odd).substr(0, 500))));
}

TEST(SegmentLog, RecordsRoundTrip) {
  const auto bytes = three_records();
  const auto scan = scan_records(bytes);
  ASSERT_EQ(scan.records.size(), 3u);
  EXPECT_EQ(scan.stopped, "");
  EXPECT_EQ(scan.valid_end, bytes.size());
  EXPECT_EQ(scan.records[0].kind, RecordKind::message);
  EXPECT_EQ(scan.records[0].payload.size(), 316u);
  EXPECT_EQ(scan.records[1].payload, "0123456789ABCDEF 0 D");
  EXPECT_EQ(scan.records[2].kind, RecordKind::removed);
  EXPECT_EQ(scan.records[2].offset, bytes.size() - record_header_size - 16);
}

// A crash or a power cut leaves any prefix of the unsynced tail: every one is
// read as the whole records before it, never as half a record.
TEST(SegmentLog, EveryTornTailStopsAtTheLastWholeRecord) {
  const auto bytes = three_records();
  const std::vector<std::size_t> ends{0, scan_records(bytes).records[1].offset, scan_records(bytes).records[2].offset,
                                      bytes.size()};
  for (std::size_t len = 0; len <= bytes.size(); ++len) {
    const auto scan = scan_records(std::string_view(bytes).substr(0, len));
    std::size_t whole = 0;
    while (whole + 1 < ends.size() && ends[whole + 1] <= len) ++whole;
    ASSERT_EQ(scan.records.size(), whole) << "length " << len;
    EXPECT_EQ(scan.valid_end, ends[whole]) << "length " << len;
    EXPECT_EQ(scan.stopped.empty(), len == ends[whole]) << "length " << len;
  }
}

// Zeros (a file extended but not written) or any flipped bit stop the scan there.
TEST(SegmentLog, DamageStopsTheScan) {
  const auto bytes = three_records();
  const auto second = scan_records(bytes).records[1].offset;
  EXPECT_EQ(scan_records(bytes.substr(0, second) + std::string(4096, '\0')).records.size(), 1u);
  for (std::size_t i = second; i < second + record_header_size + 20; ++i) {
    auto damaged = bytes;
    damaged[i] ^= 0x01;
    const auto scan = scan_records(damaged);
    EXPECT_EQ(scan.records.size(), 1u) << "bit flipped at " << i;
    EXPECT_EQ(scan.valid_end, second);
    EXPECT_FALSE(scan.stopped.empty());
  }
}

// One sync makes every record written before it durable; a waiter whose
// record is already covered does not sync again.
TEST(SegmentLog, OneSyncCoversEveryRecordWrittenBeforeIt) {
  TempDir dir;
  std::string err;
  auto w = SegmentWriter::create((dir.path / "0000000000000001.seg").string(), &err);
  ASSERT_TRUE(w) << err;
  std::vector<std::uint64_t> tickets;
  for (int i = 0; i < 3; ++i) tickets.push_back(*w->append(RecordKind::removed, "0123456789ABCDEF", &err));
  EXPECT_EQ(w->syncs(), 0u);
  EXPECT_EQ(w->wait_durable(tickets[2]), "");
  EXPECT_EQ(w->syncs(), 1u);
  EXPECT_EQ(w->wait_durable(tickets[0]), "");
  EXPECT_EQ(w->syncs(), 1u);
  EXPECT_EQ(scan_records(read_all(w->path())).records.size(), 3u);
  EXPECT_FALSE(SegmentWriter::create(w->path(), &err));  // never appended to again after a restart
}

// Many sessions at once: each returns only when its record is durable, and
// they share syncs (fewer syncs than records; with 16 writers on 2 cores the
// leader's fdatasync always finds others waiting).
TEST(SegmentLog, ConcurrentWritersShareSyncs) {
  TempDir dir;
  std::string err;
  auto w = SegmentWriter::create((dir.path / "0000000000000002.seg").string(), &err);
  ASSERT_TRUE(w) << err;
  constexpr int writers = 16, each = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < writers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) {
        std::string e;
        const auto ticket = w->append(RecordKind::message, std::string(16, 'A' + t) + std::string(2000, 'x'), &e);
        if (!ticket || !w->wait_durable(*ticket).empty()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  const auto scan = scan_records(read_all(w->path()));
  EXPECT_EQ(scan.records.size(), static_cast<std::size_t>(writers * each));
  EXPECT_EQ(scan.stopped, "");
  EXPECT_LT(w->syncs(), static_cast<std::uint64_t>(writers * each)) << "no sync was shared";
  std::printf("segment group commit: %d records, %llu fdatasync\n", writers * each,
              static_cast<unsigned long long>(w->syncs()));
}

// when_durable: a writer that must not block (an SMTP session) hands a
// callback over; the background task syncs once for all records written
// before its sync, answers them, and syncs again only while others wait.
// Nobody is answered before its record is on disk: each callback checks that
// a sync had covered its record's end when it ran.
TEST(SegmentLog, CallbacksAreAnsweredAfterASharedSync) {
  TempDir dir;
  std::string err;
  std::shared_ptr<SegmentWriter> w = SegmentWriter::create((dir.path / "0000000000000003.seg").string(), &err);
  ASSERT_TRUE(w) << err;
  std::mutex tasks_mutex;
  std::vector<std::thread> tasks;
  const Background background = [&](std::function<void()> task) {
    std::lock_guard lock(tasks_mutex);
    tasks.emplace_back(std::move(task));
  };
  constexpr int writers = 8, each = 40;
  std::atomic<int> answered{0}, early{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < writers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) {
        std::string e;
        const auto before = w->syncs();
        const auto ticket = w->append(RecordKind::message, std::string(16, 'a' + t) + std::string(1000, 'y'), &e);
        if (!ticket) {
          ++failures;
          continue;
        }
        w->when_durable(*ticket, [&, before](const std::string& error) {
          if (!error.empty()) ++failures;
          if (w->syncs() == before) ++early;  // no sync since the append: answered too soon
          ++answered;
        }, background);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 2000 && answered < writers * each; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  {
    std::lock_guard lock(tasks_mutex);
    for (auto& t : tasks) t.join();
  }
  EXPECT_EQ(answered, writers * each);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(early, 0);
  EXPECT_LT(w->syncs(), static_cast<std::uint64_t>(writers * each)) << "no sync was shared";
  EXPECT_EQ(scan_records(read_all(w->path())).records.size(), static_cast<std::size_t>(writers * each));
  std::printf("segment callbacks: %d records, %llu fdatasync, %zu background task(s)\n", writers * each,
              static_cast<unsigned long long>(w->syncs()), tasks.size());
}

namespace {

std::string queue_file(const std::string& content, std::vector<std::string> recipients) {
  QueueEnvelope e{1700000000, "192.0.2.1", "client.test", "", false, "a@example.com", std::move(recipients)};
  return encode_envelope(e) + content + encode_trailer(content.size());
}

std::size_t files_in(const fs::path& dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

}  // namespace

// Messages, outcomes, deferrals and removals survive a restart as the index
// they were; outcomes come back folded into the queue file bytes.
TEST(SegmentStore, ARestartRebuildsTheQueue) {
  TempDir dir;
  std::string err;
  {
    SegmentStore s(dir.path.string());
    ASSERT_TRUE(s.open(&err)) << err;
    EXPECT_EQ(s.put("0000000000000001", queue_file("Subject: one\r\n\r\n1\r\n", {"x@a.org", "y@a.org"})), "");
    EXPECT_EQ(s.put("0000000000000002", queue_file("Subject: two\r\n\r\n2\r\n", {"z@a.org"})), "");
    EXPECT_EQ(s.put("0000000000000003", queue_file("Subject: three\r\n\r\n3\r\n", {"w@a.org"})), "");
    EXPECT_NE(s.put("0000000000000003", queue_file("x", {"w@a.org"})), "");  // ids are unique
    EXPECT_EQ(s.mark("0000000000000001", 1, RecipientStatus::delivered), "");
    EXPECT_EQ(s.defer("0000000000000001", "F 1 1700000600 451 4.4.1 try later"), "");
    EXPECT_EQ(s.remove("0000000000000002"), "");
    EXPECT_EQ(s.sync(), "");
  }
  SegmentStore again(dir.path.string());
  const auto recovered = again.open(&err);
  ASSERT_TRUE(recovered) << err;
  EXPECT_EQ(recovered->ids, (std::vector<std::string>{"0000000000000001", "0000000000000003"}));
  EXPECT_TRUE(recovered->notes.empty());
  const auto one = again.read("0000000000000001", &err);
  ASSERT_TRUE(one) << err;
  EXPECT_EQ(one->state_line, "F 1 1700000600 451 4.4.1 try later");
  const auto parsed = parse_queue_file(one->queue_file, std::string_view(one->queue_file).substr(
                                           one->queue_file.size() - trailer_size), one->queue_file.size(), &err);
  ASSERT_TRUE(parsed) << err;
  EXPECT_EQ(parsed->marks, (std::vector<RecipientStatus>{RecipientStatus::pending, RecipientStatus::delivered}));
  EXPECT_FALSE(again.read("0000000000000002", &err));
}

// A torn tail (a power cut in the middle of an unsynced record) loses only that record.
TEST(SegmentStore, ATornTailLosesOnlyWhatWasNeverAcknowledged) {
  TempDir dir;
  std::string err;
  fs::path segment;
  {
    SegmentStore s(dir.path.string());
    ASSERT_TRUE(s.open(&err)) << err;
    ASSERT_EQ(s.put("00000000000000A1", queue_file("Subject: kept\r\n\r\nk\r\n", {"x@a.org"})), "");
    segment = *fs::directory_iterator(dir.path);
  }
  const auto whole = encode_record(RecordKind::message, "00000000000000A2" + queue_file("torn", {"y@a.org"}));
  std::ofstream(segment, std::ios::binary | std::ios::app) << whole.substr(0, whole.size() - 3);
  SegmentStore again(dir.path.string());
  const auto recovered = again.open(&err);
  ASSERT_TRUE(recovered) << err;
  EXPECT_EQ(recovered->ids, std::vector<std::string>{"00000000000000A1"});
  ASSERT_EQ(recovered->notes.size(), 1u);
  EXPECT_NE(recovered->notes[0].find("never acknowledged"), std::string::npos);
  EXPECT_EQ(again.put("00000000000000A3", queue_file("after", {"z@a.org"})), "");  // into a new segment
  SegmentStore third(dir.path.string());
  EXPECT_EQ(third.open(&err)->ids, (std::vector<std::string>{"00000000000000A1", "00000000000000A3"}));
}

/// After compaction: a store opened again over dir holds only id; its message as read back.
std::optional<SegmentStore::Message> reopened_alone(const fs::path& dir, const std::string& id) {
  std::string err;
  SegmentStore again(dir.string());
  const auto recovered = again.open(&err);
  EXPECT_TRUE(recovered) << err;
  if (!recovered) return std::nullopt;
  EXPECT_EQ(recovered->ids, std::vector<std::string>{id});
  auto m = again.read(id, &err);
  EXPECT_TRUE(m) << err;
  return m;
}

// Segments go oldest first, once nothing needs them; a long-deferred message
// that pins old segments is copied forward by compact_sparse(), outcomes included.
TEST(SegmentStore, SegmentsAreDeletedInOrderAndCompacted) {
  TempDir dir;
  std::string err;
  SegmentStore s(dir.path.string(), 512);  // about one message per segment
  ASSERT_TRUE(s.open(&err)) << err;
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(fmt::format("{:016X}", i + 1));
    ASSERT_EQ(s.put(ids.back(), queue_file("Subject: x\r\n\r\n" + std::string(400, 'x') + "\r\n", {"a@b.c", "d@e.f"})),
              "");
  }
  EXPECT_GE(s.segment_count(), 6u);
  ASSERT_EQ(s.mark(ids[0], 0, RecipientStatus::delivered), "");  // the oldest stays (deferred for days)
  for (std::size_t i = 1; i < ids.size(); ++i) ASSERT_EQ(s.remove(ids[i]), "");
  EXPECT_GE(s.segment_count(), 6u) << "a newer segment went before an older one";
  EXPECT_EQ(s.compact_sparse(2, UINT64_MAX), 1u);
  EXPECT_LE(s.segment_count(), 2u);
  EXPECT_LE(files_in(dir.path), 2u);
  const auto m = reopened_alone(dir.path, ids[0]);
  ASSERT_TRUE(m);
  const auto parsed = parse_queue_file(m->queue_file, std::string_view(m->queue_file).substr(
                                           m->queue_file.size() - trailer_size), m->queue_file.size(), &err);
  ASSERT_TRUE(parsed) << err;
  EXPECT_EQ(parsed->marks[0], RecipientStatus::delivered);
  EXPECT_EQ(parsed->marks[1], RecipientStatus::pending);
}

// The relay's compaction (Spool::compact_segments): a store whose segments
// are full of live messages is left alone (copying frees nothing), a pass
// that frees nothing ends it, and a sparse oldest segment is copied forward.
TEST(SegmentStore, CompactSparseMovesOnlyWhatFreesSpace) {
  const auto fill = [](SegmentStore& s, std::vector<std::string>& ids) {
    for (int i = 0; i < 6; ++i) {
      ids.push_back(fmt::format("{:016X}", i + 1));
      ASSERT_EQ(s.put(ids.back(), queue_file("Subject: x\r\n\r\n" + std::string(400, 'x') + "\r\n", {"a@b.c"})),
                "");
    }
  };
  std::string err;
  {
    TempDir dir;
    SegmentStore s(dir.path.string(), 512);  // one message per segment: copies never pack
    ASSERT_TRUE(s.open(&err)) << err;
    std::vector<std::string> ids;
    fill(s, ids);
    const auto before = s.segment_count();
    EXPECT_EQ(s.compact_sparse(2, 100), 0u);  // every oldest segment holds ~450 live bytes
    EXPECT_EQ(s.segment_count(), before);
    s.compact_sparse(2, 1 << 20);  // "sparse" by this bound, but each copy starts a segment: it must end
    EXPECT_LE(s.segment_count(), before + 1);
    EXPECT_EQ(s.ids().size(), 6u);
  }
  TempDir dir;
  SegmentStore s(dir.path.string(), 512);
  ASSERT_TRUE(s.open(&err)) << err;
  std::vector<std::string> ids;
  fill(s, ids);
  ASSERT_EQ(s.defer(ids[0], "F 1 99 451 later"), "");  // deferred for long; every later one is done
  for (std::size_t i = 1; i < ids.size(); ++i) ASSERT_EQ(s.remove(ids[i]), "");
  EXPECT_GE(s.segment_count(), 6u);
  EXPECT_EQ(s.compact_sparse(2, 2048), 1u);
  EXPECT_LE(s.segment_count(), 2u);
  const auto m = reopened_alone(dir.path, ids[0]);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->state_line, "F 1 99 451 later");
}

// spool.format: segments through the Spool the relay uses: small messages
// become records (no file), a large one a queue file; both are listed,
// loaded, opened, marked, deferred, recovered and removed alike.
TEST(SegmentSpool, SmallMessagesAreRecordsLargeOnesFiles) {
  TempDir dir;
  std::string err;
  const auto envelope = [] {
    return QueueEnvelope{1700000000, "192.0.2.1", "client.test", "", false, "a@example.com",
                         {"b@example.org", "c@example.org"}};
  };
  std::string small_id, large_id;
  {
    Spool spool(dir.path.string());
    spool.use_segments(4096);
    ASSERT_EQ(spool.init(), "");
    ASSERT_EQ(spool.recover().error, "");
    auto small = spool.create(envelope(), &err);
    ASSERT_TRUE(small) << err;
    EXPECT_EQ(small->append("Subject: small\r\n\r\nhi\r\n"), "");
    EXPECT_TRUE(fs::is_empty(dir.path / "incoming"));  // nothing on disk before the commit
    ASSERT_EQ(small->commit(), "");
    small_id = small->id();
    EXPECT_TRUE(spool.in_segment(small_id));
    EXPECT_TRUE(fs::is_empty(dir.path / "messages"));
    auto large = spool.create(envelope(), &err);
    ASSERT_TRUE(large) << err;
    EXPECT_EQ(large->append("Subject: large\r\n\r\n"), "");
    EXPECT_EQ(large->append(std::string(5000, 'x') + "\r\n"), "");  // past 4096: a queue file after all
    ASSERT_EQ(large->commit(), "");
    large_id = large->id();
    EXPECT_FALSE(spool.in_segment(large_id));
    EXPECT_TRUE(fs::exists(dir.path / "messages" / large_id));
    const auto handed = small->opened();  // the memory hand-over marks into the segment
    ASSERT_TRUE(handed);
    EXPECT_EQ(handed->mark(0, RecipientStatus::delivered), "");
    EXPECT_EQ(handed->sync(), "");
    auto loaded = spool.load(small_id, &err);
    ASSERT_TRUE(loaded) << err;
    EXPECT_EQ(spool.mark_deferred(*loaded, 1, 1700000300, "451 4.4.1 later"), "");
  }
  Spool spool(dir.path.string());
  spool.use_segments(4096);
  const auto recovered = spool.recover();
  ASSERT_EQ(recovered.error, "");
  auto ids = recovered.queued;
  std::sort(ids.begin(), ids.end());
  auto both = std::vector<std::string>{small_id, large_id};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(ids, both);
  EXPECT_EQ(spool.list_ids(), both);
  auto open = spool.open(small_id, &err);
  ASSERT_TRUE(open) << err;
  EXPECT_EQ(open->content(), "Subject: small\r\n\r\nhi\r\n");
  EXPECT_EQ(open->message.state.recipients[0], RecipientStatus::delivered);
  EXPECT_EQ(open->message.state.recipients[1], RecipientStatus::pending);
  EXPECT_EQ(open->message.state.attempts, 1u);
  EXPECT_EQ(open->message.state.last_reason, "451 4.4.1 later");
  EXPECT_TRUE(spool.remove(open->message));
  EXPECT_EQ(spool.list_ids(), std::vector<std::string>{large_id});
  // A second reader (`queue list` beside the relay) sees the queue and writes nothing.
  Spool reader(dir.path.string());
  reader.use_segments(4096, true);
  const auto before = files_in(dir.path / "segments");
  EXPECT_EQ(reader.recover().error, "");
  EXPECT_EQ(reader.list_ids(), std::vector<std::string>{large_id});
  EXPECT_EQ(files_in(dir.path / "segments"), before);
}

// Past spool.memory_limit_mb a small message is still one segment record (no
// queue file); only its first attempt reads it back instead of taking it from memory.
TEST(SegmentSpool, OverTheMemoryBoundAMessageIsStillARecord) {
  TempDir dir;
  std::string err;
  Spool spool(dir.path.string(), 16);  // 16 bytes of memory for hand-overs
  spool.use_segments(4096);
  ASSERT_EQ(spool.init(), "");
  ASSERT_EQ(spool.recover().error, "");
  auto w = spool.create(QueueEnvelope{1700000000, "192.0.2.1", "client.test", "", false, "a@example.com",
                                      {"b@example.org"}}, &err);
  ASSERT_TRUE(w) << err;
  EXPECT_EQ(w->append("Subject: over the bound\r\n\r\n"), "");
  EXPECT_EQ(w->append("body\r\n"), "");
  EXPECT_EQ(w->content(), "Subject: over the bound\r\n\r\nbody\r\n");  // the content checks after DATA
  ASSERT_EQ(w->commit(), "");
  EXPECT_TRUE(spool.in_segment(w->id()));
  EXPECT_TRUE(fs::is_empty(dir.path / "incoming"));
  EXPECT_TRUE(fs::is_empty(dir.path / "messages"));
  EXPECT_EQ(w->opened(), nullptr);  // not in memory: read back
  EXPECT_EQ(spool.budget().used(), 0u);
  auto open = spool.open(w->id(), &err);
  ASSERT_TRUE(open) << err;
  EXPECT_EQ(open->content(), "Subject: over the bound\r\n\r\nbody\r\n");
}

// Messages being received for segment records while the hand-over budget is
// spent are held against the intake bound: past it, the next one becomes a
// queue file, so many sessions sending at once cannot grow memory without limit.
// A commit gives its bytes back.
TEST(SegmentSpool, TheIntakeBoundTurnsTheNextMessageIntoAFile) {
  TempDir dir;
  std::string err;
  Spool spool(dir.path.string(), 0, 100);  // no hand-over memory; 100 bytes held for intake
  spool.use_segments(4096);
  ASSERT_EQ(spool.init(), "");
  ASSERT_EQ(spool.recover().error, "");
  const QueueEnvelope e{1700000000, "192.0.2.1", "client.test", "", false, "a@example.com", {"b@example.org"}};
  auto first = spool.create(e, &err);
  ASSERT_TRUE(first) << err;
  EXPECT_EQ(first->append("Subject: one\r\n\r\n" + std::string(60, 'a') + "\r\n"), "");  // 78 bytes held
  auto second = spool.create(e, &err);
  ASSERT_TRUE(second) << err;
  EXPECT_EQ(second->append("Subject: two\r\n\r\n" + std::string(60, 'b') + "\r\n"), "");  // over 100: a file
  EXPECT_EQ(spool.budget().held(), 78u);
  ASSERT_EQ(second->commit(), "");
  EXPECT_FALSE(spool.in_segment(second->id()));
  EXPECT_TRUE(fs::exists(dir.path / "messages" / second->id()));
  ASSERT_EQ(first->commit(), "");
  EXPECT_TRUE(spool.in_segment(first->id()));
  EXPECT_EQ(spool.budget().held(), 0u);  // given back at the commit
  auto third = spool.create(e, &err);
  ASSERT_TRUE(third) << err;
  EXPECT_EQ(third->append("Subject: three\r\n\r\nc\r\n"), "");
  ASSERT_EQ(third->commit(), "");
  EXPECT_TRUE(spool.in_segment(third->id()));
  auto open = spool.open(second->id(), &err);  // the file holds the whole message
  ASSERT_TRUE(open) << err;
  EXPECT_EQ(open->content(), "Subject: two\r\n\r\n" + std::string(60, 'b') + "\r\n");
  {
    auto abandoned = spool.create(e, &err);  // a session that ends in DATA gives its bytes back too
    ASSERT_TRUE(abandoned) << err;
    EXPECT_EQ(abandoned->append("Subject: gone\r\n\r\n"), "");
    EXPECT_GT(spool.budget().held(), 0u);
  }
  EXPECT_EQ(spool.budget().held(), 0u);
}

// smtp.tenant_header with segments: the tenant is set before the commit encodes the envelope.
TEST(SegmentSpool, TheTenantSlotNeedsNoFile) {
  TempDir dir;
  std::string err;
  Spool spool(dir.path.string());
  spool.use_segments(4096);
  ASSERT_EQ(spool.init(), "");
  ASSERT_EQ(spool.recover().error, "");
  QueueEnvelope e{1700000000, "192.0.2.1", "client.test", "", false, "a@acme.example", {"b@example.org"}};
  e.tenant_slot = true;
  auto unnamed = spool.create(e, &err);
  ASSERT_TRUE(unnamed) << err;
  EXPECT_EQ(unnamed->append("Subject: x\r\n\r\nx\r\n"), "");
  EXPECT_NE(unnamed->commit(), "");
  auto w = spool.create(e, &err);
  ASSERT_TRUE(w) << err;
  EXPECT_EQ(w->append("Subject: x\r\n\r\nx\r\n"), "");
  ASSERT_EQ(w->set_tenant("acme"), "");
  ASSERT_EQ(w->commit(), "");
  auto m = spool.load(w->id(), &err);
  ASSERT_TRUE(m) << err;
  EXPECT_EQ(m->envelope.tenant, "acme");
  EXPECT_EQ(spool.list_ids().size(), 1u);
}
