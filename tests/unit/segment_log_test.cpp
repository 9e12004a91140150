// segment_log_test.cpp: the group-committed spool's records, their scan after
// a crash, and the segment writer's group commit (spool/segment_log.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "unsubrelay/spool/segment_log.hpp"

using namespace unsubrelay::spool;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/unsubrelay-segment-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

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
