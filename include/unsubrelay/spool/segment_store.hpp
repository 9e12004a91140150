// segment_store.hpp: queued messages kept in segment files (issue 25; the
// spool does not use it yet: docs/spool.md, "The segment log").
//
// Messages, their recipients' outcomes, their deferrals and their removal are
// records in the segments of one directory (segment_log.hpp), named by a
// 16-digit sequence number. Recovery reads every segment in order and rebuilds
// the index in memory; new records always go to a new segment.
//
// A segment is deleted when no live message has its M record in it, and only
// when every older segment is deleted too: a segment may hold the outcome
// records of messages in older ones, and deleting it first would forget that
// those recipients were delivered (a duplicate after a restart). A message that
// lives long (deferred for days) would pin every later segment; compact_sparse()
// copies such messages, outcomes folded in, into the active segment.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "unsubrelay/spool/queue_file.hpp"
#include "unsubrelay/spool/segment_log.hpp"

namespace unsubrelay::spool {

/// A queue file's bytes with recipients' outcomes written over their R bytes (nullopt: not a queue file).
std::optional<std::string> folded(std::string queue_file,
                                  const std::vector<std::pair<std::size_t, RecipientStatus>>& marks);

class SegmentStore {
 public:
  /// dir must exist. segment_bytes: when the active segment is this large, the next record starts a new one.
  SegmentStore(std::string dir, std::uint64_t segment_bytes = 64ull << 20);

  struct Recovered {
    std::vector<std::string> ids;    // live messages, oldest first
    std::vector<std::string> notes;  // torn tails and unreadable records, for the log
  };
  /// Reads every segment, rebuilds the index, opens a new active segment.
  /// read_only (`unsubrelay queue list` beside a running relay): writes nothing.
  std::optional<Recovered> open(std::string* error, bool read_only = false);
  bool contains(const std::string& id) const;

  /// Appends a message (its queue file bytes, end record included) and
  /// returns once it is durable: "" or the error (nothing is acknowledged).
  std::string put(const std::string& id, const std::string& queue_file);
  /// put() without blocking: done runs once the message is durable (or with the error), on the
  /// background executor (set_background) or here. An SMTP session awaits it on its own thread.
  void put_async(const std::string& id, const std::string& queue_file, DurableCallback done);
  /// Where put_async's syncs run (the disk pool); unset, put_async blocks as put does.
  void set_background(Background background) { background_ = std::move(background); }
  /// A recipient's outcome (not yet durable: sync()).
  std::string mark(const std::string& id, std::size_t index, RecipientStatus status);
  /// A deferral's state line ("attempts next reason"), durable when it returns.
  std::string defer(const std::string& id, const std::string& state_line);
  /// Makes every record written so far durable.
  std::string sync();
  /// The message is done (delivered, bounced or deleted). Not synced: a crash
  /// before the next sync delivers it again, as with a queue file.
  std::string remove(const std::string& id);

  /// The queue file bytes of a live message with its outcomes folded in (R->D/X), and its last state line.
  struct Message {
    std::string queue_file;
    std::string state_line;
  };
  std::optional<Message> read(const std::string& id, std::string* error) const;
  std::vector<std::string> ids() const;
  /// Live messages (the unsubrelay_spool_messages gauge), without copying their ids.
  std::size_t size() const;

  /// The relay's periodic compaction (segment_admin.cpp): copies the live
  /// messages of the oldest segment forward, one segment at a time, while more
  /// than max_segments are listed and the oldest holds at most max_live_bytes
  /// of live messages. A segment full of live messages (an upstream down for
  /// hours) is left alone: copying it would free nothing, only write the queue
  /// again. Stops when a pass frees nothing. Returns the messages moved.
  std::size_t compact_sparse(std::size_t max_segments, std::uint64_t max_live_bytes);
  std::uint64_t segment_bytes() const { return segment_bytes_; }
  std::size_t segment_count() const;
  std::uint64_t syncs() const;

 private:
  struct Entry {
    std::uint64_t segment = 0;  // where its M record is
    std::uint64_t offset = 0;   // of the payload's queue file bytes
    std::uint64_t length = 0;
    std::vector<std::pair<std::size_t, RecipientStatus>> marks;
    std::string state_line;
  };
  std::string segment_path(std::uint64_t seq) const;
  /// Appends under mutex_ (rotating first when the active segment is full); the writer to wait on.
  std::shared_ptr<SegmentWriter> append(RecordKind kind, const std::string& payload, std::uint64_t* ticket,
                                        std::string* error);
  /// The M record and its index entry; the writer to wait on, or nullptr and the error.
  std::shared_ptr<SegmentWriter> add_message(const std::string& id, const std::string& queue_file,
                                             std::uint64_t* ticket, std::string* error);
  /// After a failed sync: the next record starts a new segment.
  void retire(const std::shared_ptr<SegmentWriter>& writer);
  void apply(const ScannedRecord& r, std::uint64_t segment, std::vector<std::string>& notes);
  void release_segments();
  /// compact_sparse's one step: the live messages of segment seq into the active one; false on an error.
  bool move_forward(std::uint64_t seq, std::size_t& moved);

  std::string dir_;
  std::uint64_t segment_bytes_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> index_;
  std::map<std::uint64_t, std::size_t> live_;  // segment -> messages whose M record is there (every segment listed)
  std::shared_ptr<SegmentWriter> active_;  // shared: a waiter keeps a rotated-away segment alive
  std::uint64_t active_seq_ = 0;
  std::uint64_t retired_syncs_ = 0;
  Background background_;
};

}  // namespace unsubrelay::spool
