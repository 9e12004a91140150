// segment_log.hpp: the log under the group-committed spool (issue 25; the
// spool does not use it yet: docs/spool.md, "The segment log").
//
// Today every message costs a file creation, a write, an fsync, a rename and
// a directory fsync before its 250. Here concurrent sessions append their
// messages as records to one shared segment file, and one fdatasync makes a
// whole batch durable: the first caller that waits becomes the leader and
// syncs for everyone whose record was written before it began; callers that
// arrive meanwhile wait for the next sync (RocksDB's WAL group commit, and
// PostgreSQL's commit_delay-free group flush, work the same way). Nobody's
// wait_durable() returns before its own record is on disk, so the promise of
// the 250 does not change.
//
// A record is a 16-byte header and a payload:
//
//   "USG1" | kind (1 byte) | 3 zero bytes | payload length (u32, little endian)
//          | CRC-32C (u32, little endian) of kind, length and payload
//
// Recovery reads a segment from its start and stops at the first record that
// is not whole and intact (scan_records): after a crash or a power cut the
// tail may hold a torn record, zeros, or an arbitrary subset of the unsynced
// writes, and every one of those comes after the last acknowledged record
// (an fdatasync covers every byte written before it). So nothing after the
// first bad record was ever acknowledged, and nothing half-written is read. A
// segment is never appended to after a restart: new records go to a new one,
// so no torn tail ever sits in front of acknowledged records.
//
// A caller that must not block (an SMTP session on a network thread) asks
// when_durable() instead: its callback runs once a sync covers its record. The
// syncs for such callers run as one task at a time on the executor given
// (the disk pool): a task syncs, completes every callback its sync covered,
// and syncs again while callbacks remain, so a burst of sessions costs one
// task and a few syncs, not a blocked thread per message.
//
// After a failed fdatasync the writer refuses everything (the kernel may have
// dropped the dirty pages it failed to write: PostgreSQL's "fsyncgate"); the
// spool then moves on to a new segment.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::spool {

enum class RecordKind : char {
  message = 'M',   // a queue id and its queue file bytes (queue_file.hpp), end record included
  done = 'D',      // a queue id, a recipient index and its outcome (delivered or bounced)
  deferred = 'F',  // a queue id and its state line (attempts, next try, reason)
  removed = 'X',   // a queue id: delivered, bounced or deleted; the message is gone
};

inline constexpr std::string_view record_magic = "USG1";
inline constexpr std::size_t record_header_size = 16;
inline constexpr std::uint32_t max_record_payload = 1u << 30;

/// CRC-32C (Castagnoli), as iSCSI, ext4 and RocksDB use: SSE 4.2 when the CPU has it.
std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc = 0);

/// The bytes of one record.
std::string encode_record(RecordKind kind, std::string_view payload);

struct ScannedRecord {
  RecordKind kind;
  std::uint64_t offset;      // of its header in the segment
  std::string_view payload;  // a view into the scanned bytes
};

struct SegmentScan {
  std::vector<ScannedRecord> records;  // every whole, intact record, in order
  std::uint64_t valid_end = 0;         // where the last of them ends
  std::string stopped;                 // why the scan stopped before the end ("" = it did not)
};

/// The records of a segment's bytes, up to the first that is not whole and intact.
SegmentScan scan_records(std::string_view bytes);

/// Runs a task elsewhere (a thread pool); syncs for when_durable() run there.
using Background = std::function<void(std::function<void()>)>;
/// Told "" once its record is durable, or the error of the sync that failed.
using DurableCallback = std::function<void(const std::string&)>;

/// One segment file being appended to by many threads.
class SegmentWriter : public std::enable_shared_from_this<SegmentWriter> {
 public:
  /// Creates path (it must not exist) and makes its name durable (fsync of its directory).
  static std::unique_ptr<SegmentWriter> create(const std::string& path, std::string* error);
  ~SegmentWriter();
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;

  /// Writes one record (one write call; not yet durable). Returns the ticket
  /// to wait_durable() for (where the record ends), or nullopt and the error.
  std::optional<std::uint64_t> append(RecordKind kind, std::string_view payload, std::string* error);
  /// Returns "" once every record up to ticket is on disk, syncing for every
  /// waiter when no sync is under way; or the error of a failed sync.
  std::string wait_durable(std::uint64_t ticket);
  /// Without blocking: done runs (on the background executor, or here when the
  /// record is already durable or no executor was given) once it is. The
  /// writer must be owned by a shared_ptr (the background task holds one).
  void when_durable(std::uint64_t ticket, DurableCallback done, const Background& background);

  const std::string& path() const { return path_; }
  std::uint64_t size() const;
  /// fdatasync calls made so far (tests, bench/relay_profile.py).
  std::uint64_t syncs() const;
  /// A write could not be undone or a sync failed: this segment takes nothing more.
  bool failed() const;

 private:
  SegmentWriter(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  /// One fdatasync for everything written so far; lock is held on entry and on return.
  void sync_locked(std::unique_lock<std::mutex>& lock);
  /// The background task: syncs while callbacks wait, completing those each sync covered.
  void serve_callbacks();
  /// Takes out the callbacks the durable bytes (or a failure) now answer.
  std::vector<std::pair<DurableCallback, std::string>> answered_locked();
  std::string path_;
  int fd_ = -1;
  mutable std::mutex mutex_;
  std::condition_variable synced_;
  std::uint64_t end_ = 0;      // bytes written
  std::uint64_t durable_ = 0;  // bytes known to be on disk
  bool syncing_ = false;       // a leader is in fdatasync
  bool serving_ = false;       // a background task is serving callbacks_
  std::vector<std::pair<std::uint64_t, DurableCallback>> callbacks_;
  std::uint64_t syncs_ = 0;
  std::string failed_;         // a write or sync failed: nothing more is accepted
};

}  // namespace unsubrelay::spool
