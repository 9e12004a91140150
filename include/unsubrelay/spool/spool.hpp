// spool.hpp: the durable queue on disk.
//
//   SPOOL/incoming/ID   being written; never acknowledged; removed at start-up
//   SPOOL/messages/ID   acknowledged (250 sent); delivered until done
//   SPOOL/state/ID      append-only per-recipient delivery log
//   SPOOL/corrupt/ID    damaged queue files, kept for the operator, never sent
//   SPOOL/flush         present = "retry every deferred message now" (queue flush)
//
// As in OpenSMTPD's queue_fs.c, a message is written under incoming/ and
// renamed into messages/ in one step; as in Postfix, the file ends in an
// end record and is fsynced, and the directory is fsynced after the rename,
// before the SMTP server may answer 250.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/spool/queue_file.hpp"

namespace unsubrelay::spool {

/// One message being received; streams content to incoming/ID.
class QueueWriter {
 public:
  QueueWriter(const QueueWriter&) = delete;
  QueueWriter& operator=(const QueueWriter&) = delete;
  ~QueueWriter();  // aborts (unlinks) unless committed

  const std::string& id() const { return id_; }
  /// Appends content bytes (buffered). Returns "" or the error.
  std::string append(std::string_view bytes);
  /// The content written so far, read back from the file (policy checks before commit).
  std::optional<std::string> content();
  /// Writes the end record, fsyncs, renames into messages/, fsyncs the directory.
  std::string commit();
  void abort();

 private:
  friend class Spool;
  QueueWriter(std::string root, std::string id, int fd);
  std::string flush_buffer();

  std::string root_;
  std::string id_;
  int fd_ = -1;
  std::string buffer_;
  std::uint64_t content_length_ = 0;
  std::uint64_t content_offset_ = 0;  // where the content starts in the file
  bool committed_ = false;
};

/// A queued message as read back from messages/ID.
struct QueuedMessage {
  std::string id;
  QueueEnvelope envelope;
  std::uint64_t content_length = 0;
  std::uint64_t content_offset = 0;
  DeliveryState state;
};

struct RecoveryReport {
  std::vector<std::string> queued;       // ids ready for delivery
  std::size_t incomplete_removed = 0;    // never acknowledged
  std::vector<std::string> quarantined;  // moved to corrupt/, with reasons
};

class Spool {
 public:
  explicit Spool(std::string root);

  const std::string& root() const { return root_; }
  std::string messages_dir() const { return root_ + "/messages"; }

  /// Creates the directories. Returns "" or the error.
  std::string init() const;

  /// Starts a new message: creates incoming/ID with the envelope records.
  std::unique_ptr<QueueWriter> create(const QueueEnvelope& envelope, std::string* error) const;

  /// Start-up: drops unacknowledged files, quarantines damaged ones.
  RecoveryReport recover() const;

  std::vector<std::string> list_ids() const;
  /// unreadable: set when the failure was an I/O error (the file may be fine), not damage.
  std::optional<QueuedMessage> load(const std::string& id, std::string* why = nullptr,
                                    bool* unreadable = nullptr) const;
  std::optional<std::string> read_content(const QueuedMessage& message, std::string* why = nullptr) const;

  /// Appends one line to state/ID; durable when sync is set. Returns "" or the error.
  std::string append_state(const std::string& id, std::string_view line, bool sync) const;
  /// upstream_id: the SES message id, kept for the store and bounce matching.
  std::string mark_delivered(const std::string& id, std::size_t index, long long now,
                             std::string_view upstream_id = {}) const;
  std::string mark_bounced(const std::string& id, std::size_t index, long long now) const;
  /// Makes the delivered marks of an attempt durable (one fdatasync per attempt).
  std::string sync_state(const std::string& id) const;
  std::string mark_deferred(const std::string& id, unsigned attempts, long long next_try,
                            std::string_view reason) const;

  /// Removes a message and its state (done, or `queue delete`).
  bool remove(const std::string& id) const;
  /// Moves a damaged message to corrupt/.
  void quarantine(const std::string& id) const;

  /// `queue flush`: asks the running relay to retry every deferred message now.
  std::string request_flush() const;
  bool take_flush_request() const;

  static bool valid_id(std::string_view id);

 private:
  std::string root_;
};

}  // namespace unsubrelay::spool
