// spool.hpp: the durable queue on disk.
//
//   SPOOL/incoming/ID   being written; never acknowledged; removed at start-up
//   SPOOL/messages/ID   acknowledged (250 sent); delivered until done; each
//                       recipient's outcome is marked in it in place
//   SPOOL/state/ID      append-only log of deferrals (attempts, next try, reason)
//   SPOOL/corrupt/ID    damaged queue files, kept for the operator, never sent
//   SPOOL/flush         present = "retry every deferred message now" (queue flush)
//   SPOOL/segments/     group-committed segment files (spool.format: segments)
//   SPOOL/requests/     delete-ID: `queue delete` of a segment message, carried
//                       out by the running relay (the segments' only writer)
//
// As in OpenSMTPD's queue_fs.c, a message is written under incoming/ and
// renamed into messages/ in one step; as in Postfix, the file ends in an
// end record and is fsynced, and the directory is fsynced after the rename,
// before the SMTP server may answer 250.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/spool/queue_file.hpp"
#include "unsubrelay/spool/segment_store.hpp"

namespace unsubrelay::spool {

/// The bound on message content held in memory, shared by the SMTP sessions
/// that keep what they receive and the queue manager that delivers it from
/// memory on its first attempt (spool.memory_limit_mb). Past it, content is
/// read back from the queue file instead: slower, never lost.
///
/// With segments a message up to spool.segment_max_kb is whole in memory until
/// its commit even when the hand-over budget is spent: those bytes are held
/// against a second bound (intake), so that many sessions sending at once
/// (strangers too: bounces and unsubscribe mail come from anyone) cannot grow
/// the relay's memory without limit; past it a message becomes a queue file.
class ContentBudget {
 public:
  ContentBudget(std::size_t limit, std::size_t intake_limit) : limit_(limit), intake_limit_(intake_limit) {}
  bool reserve(std::size_t bytes) { return take(used_, limit_, bytes); }
  void release(std::size_t bytes) { used_ -= bytes; }
  std::size_t used() const { return used_; }
  std::size_t limit() const { return limit_; }
  /// Content received for a segment record and not reserved above, until its commit.
  bool hold(std::size_t bytes) { return take(held_, intake_limit_, bytes); }
  void unhold(std::size_t bytes) { held_ -= bytes; }
  std::size_t held() const { return held_; }

 private:
  static bool take(std::atomic<std::size_t>& counter, std::size_t limit, std::size_t bytes);
  std::atomic<std::size_t> used_{0};
  std::atomic<std::size_t> held_{0};
  std::size_t limit_;
  std::size_t intake_limit_;
};

struct QueuedMessage;
class OpenMessage;

/// One message being received; streams content to incoming/ID.
class QueueWriter {
 public:
  QueueWriter(const QueueWriter&) = delete;
  QueueWriter& operator=(const QueueWriter&) = delete;
  ~QueueWriter();  // aborts (unlinks) unless committed

  const std::string& id() const { return id_; }
  /// Appends content bytes (buffered). Returns "" or the error.
  std::string append(std::string_view bytes);
  /// The content written so far: kept in memory, or read back from the file
  /// (policy checks before commit).
  std::optional<std::string> content();
  /// Fills the N record's slot (QueueEnvelope::tenant_slot) with the tenant a
  /// header named, in place: the commit's fsync makes it durable with the rest.
  std::string set_tenant(const std::string& tenant);
  /// Writes the end record, fsyncs, renames into messages/, fsyncs the directory.
  /// A file whose tenant slot was never filled is not committed (an error).
  std::string commit();
  void abort();
  /// spool.format: segments, a message still in memory: commit_async() appends
  /// its record on this thread and calls done once a sync shared with other
  /// sessions made it durable (on the spool's background executor); the caller
  /// then calls finish_commit(error) on its own thread. Else done(commit()).
  bool commits_async() const { return segments_ != nullptr; }
  void commit_async(DurableCallback done);
  void finish_commit(const std::string& error);
  /// After commit: the message, open for its first delivery attempt, with its
  /// content still in memory when the budget allowed keeping it.
  std::unique_ptr<OpenMessage> opened();

 private:
  friend class Spool;
  QueueWriter(std::string root, std::string id, int fd, QueueEnvelope envelope, std::shared_ptr<ContentBudget> budget);
  std::string flush_buffer();
  void keep(std::string_view bytes);
  /// spool.format: segments: the message outgrew segment_max_: it becomes a
  /// queue file after all, holding what came so far.
  std::string spill();
  std::string commit_to_segment();
  std::optional<std::string> segment_payload(std::string* error);
  /// segments: keeps bytes for the record, reserved for the hand-over while the budget
  /// allows, else held against the intake bound; false: the message must become a file.
  bool keep_for_segment(std::string_view bytes);
  /// Segment content not reserved for the hand-over, against the intake bound (ContentBudget::hold).
  bool hold(std::size_t bytes);
  void unhold();

  std::string root_;
  std::string id_;
  int fd_ = -1;
  std::string buffer_;
  std::uint64_t content_length_ = 0;
  std::uint64_t content_offset_ = 0;  // where the content starts in the file
  std::uint64_t tenant_offset_ = 0;   // the N record's slot, when the tenant comes after DATA
  bool tenant_pending_ = false;
  bool committed_ = false;
  QueueEnvelope envelope_;
  std::vector<std::uint64_t> recipient_offsets_;
  std::shared_ptr<ContentBudget> budget_;
  std::string kept_;     // the content, while the budget allows (with segments, until the commit regardless)
  bool keeping_ = true;
  std::size_t held_ = 0;  // of kept_, held against the intake bound (not reserved: keeping_ is false)
  SegmentStore* segments_ = nullptr;  // spool.format: segments, while the message is small (no file yet)
  std::size_t segment_max_ = 0;
};

/// A queued message as read back from messages/ID.
struct QueuedMessage {
  std::string id;
  QueueEnvelope envelope;
  std::uint64_t content_length = 0;
  std::uint64_t content_offset = 0;
  DeliveryState state;
  std::vector<std::uint64_t> recipient_offsets;  // where each recipient's mark byte is
  bool has_state_log = false;                    // state/ID exists
};

/// A queued message open for a delivery attempt: its envelope and state, its
/// content in memory, and one descriptor through which each recipient's
/// outcome is marked in the queue file in place (no file per message besides
/// the queue file, no open per recipient).
class OpenMessage {
 public:
  OpenMessage(const OpenMessage&) = delete;
  OpenMessage& operator=(const OpenMessage&) = delete;
  ~OpenMessage();

  QueuedMessage message;
  const std::string& content() const { return content_; }
  /// Marks recipient index delivered or bounced in place. Not synced: sync()
  /// once per attempt (or remove the message). Returns "" or the error.
  std::string mark(std::size_t index, RecipientStatus status);
  /// Makes the marks durable (fdatasync). Returns "" or the error.
  std::string sync();

 private:
  friend class Spool;
  friend class QueueWriter;
  OpenMessage(std::string path, int fd, std::string content, std::shared_ptr<ContentBudget> budget);
  SegmentStore* segments_ = nullptr;  // the message is in a segment: marks are records there
  std::string path_;
  int fd_ = -1;  // opened at the first mark when the message came from the SMTP session
  std::string content_;
  std::shared_ptr<ContentBudget> budget_;  // holds content_.size() of it, when set
  bool dirty_ = false;                     // marks written since the last sync()
};

struct RecoveryReport {
  std::vector<std::string> queued;       // ids ready for delivery
  std::size_t incomplete_removed = 0;    // never acknowledged
  std::vector<std::string> quarantined;  // moved to corrupt/, with reasons
  std::vector<std::string> notes;        // segments' torn tails (never acknowledged), for the log
  std::string error;                     // the segments could not be read: the relay must not start
};

/// The default of spool.memory_limit_mb.
inline constexpr std::size_t default_memory_limit = 8 * 1024 * 1024;
/// The least content held in memory for segment records being received, over all sessions.
inline constexpr std::size_t default_intake_limit = 32 * 1024 * 1024;

class Spool {
 public:
  /// intake_limit: ContentBudget's second bound; 0 = max(memory_limit, default_intake_limit).
  explicit Spool(std::string root, std::size_t memory_limit = default_memory_limit, std::size_t intake_limit = 0);

  const std::string& root() const { return root_; }
  std::string messages_dir() const { return root_ + "/messages"; }

  /// Creates the directories. Returns "" or the error.
  std::string init() const;
  /// spool.format: segments (docs/spool.md): messages up to max_bytes go to
  /// segments of spool/segments/, larger ones to queue files. Before recover().
  /// read_only: `queue list` beside a running relay (recover() writes nothing then).
  /// segment_bytes: a segment file is closed and a new one started past this size.
  void use_segments(std::size_t max_bytes, bool read_only = false, std::uint64_t segment_bytes = 64ull << 20);
  /// Where the syncs of QueueWriter::commit_async run (the relay's disk pool). After use_segments().
  void set_background(Background background) {
    if (segments_) segments_->set_background(std::move(background));
  }

  /// Starts a new message: creates incoming/ID with the envelope records.
  std::unique_ptr<QueueWriter> create(const QueueEnvelope& envelope, std::string* error) const;

  /// Start-up: drops unacknowledged files, quarantines damaged ones.
  RecoveryReport recover() const;

  std::vector<std::string> list_ids() const;
  /// The envelope and state (`queue list`, recovery): reads the records and the end record.
  /// unreadable: set when the failure was an I/O error (the file may be fine), not damage.
  std::optional<QueuedMessage> load(const std::string& id, std::string* why = nullptr,
                                    bool* unreadable = nullptr) const;
  /// For a delivery attempt: one open and one read of the whole file. On
  /// failure, damaged says whether the file itself is bad (quarantine it) rather
  /// than unreadable now (retry later, never quarantined).
  std::unique_ptr<OpenMessage> open(const std::string& id, std::string* why = nullptr, bool* damaged = nullptr) const;

  /// Appends one line to state/ID; durable when sync is set. Returns "" or the error.
  std::string append_state(const std::string& id, std::string_view line, bool sync) const;
  /// Records a deferral (attempts so far, next try, the last reason) in state/ID.
  std::string mark_deferred(QueuedMessage& message, unsigned attempts, long long next_try,
                            std::string_view reason) const;

  /// Removes a message and its state (done, or `queue delete`).
  bool remove(const std::string& id) const;
  bool remove(const QueuedMessage& message) const;
  /// Moves a damaged message to corrupt/.
  void quarantine(const std::string& id) const;

  /// `queue flush`: asks the running relay to retry every deferred message now.
  std::string request_flush() const;
  bool take_flush_request() const;

  /// `queue delete` of a message held in a segment: only the running relay
  /// writes the segments, so the command leaves requests/delete-ID (durable
  /// when this returns "") for the relay to carry out (spool_requests.cpp).
  std::string request_delete(const std::string& id) const;
  struct AppliedRequests {
    std::vector<std::string> deleted;  // ids removed (durably)
    std::vector<std::string> notes;    // unknown ids, odd names, errors: for the log
  };
  /// The relay, after recover() and then once a second: carries out requests/.
  AppliedRequests apply_requests() const;
  /// root/segments/ holds a segment file with records in it: a relay with
  /// spool.format: files (a downgrade) still delivers those messages, and the
  /// queue commands still list them (spool_requests.cpp).
  static bool holds_segments(const std::string& root);
  /// Copies long-lived messages out of the oldest segments while more than
  /// max_segments are live and the oldest is sparse (SegmentStore::compact_sparse).
  /// Returns the messages moved; 0 without segments.
  std::size_t compact_segments(std::size_t max_segments) const;

  static bool valid_id(std::string_view id);
  /// The message is a record in a segment (spool.format: segments), not a queue file.
  bool in_segment(const std::string& id) const { return segments_ && segments_->contains(id); }
  /// Messages held in segments (queue files are counted in messages_dir()).
  std::size_t segment_messages() const { return segments_ ? segments_->size() : 0; }
  const ContentBudget& budget() const { return *budget_; }

 private:
  QueuedMessage with_state(const std::string& id, const ParsedQueueFile& parsed) const;
  /// A message of a segment, read as a queue file with its state; nullopt and why.
  std::optional<std::pair<QueuedMessage, std::string>> load_segment(const std::string& id, std::string* why,
                                                                    bool* unreadable) const;
  std::vector<std::string> file_ids() const;
  std::string root_;
  std::shared_ptr<ContentBudget> budget_;
  std::shared_ptr<SegmentStore> segments_;
  std::size_t segment_max_ = 0;
  bool segments_read_only_ = false;
};

}  // namespace unsubrelay::spool
