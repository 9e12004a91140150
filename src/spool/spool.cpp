// spool.cpp: queue files on disk: create, commit, recover, load, state logs.
#include "unsubrelay/spool/spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>

#include <fmt/format.h>

#include "unsubrelay/spool/durable_file.hpp"

namespace unsubrelay::spool {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t write_buffer_size = 64 * 1024;

/// 16 upper-case hex digits: 8 of arrival time (sortable), 8 random.
std::string new_queue_id() {
  static std::mutex mutex;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard lock(mutex);
  return fmt::format("{:08X}{:08X}", static_cast<std::uint32_t>(::time(nullptr)),
                     static_cast<std::uint32_t>(rng()));
}

/// state/ID's text; "" and exists = false when there is none.
std::string read_state_log(const std::string& path, bool& exists) {
  exists = false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  exists = true;
  std::string log;
  char buf[4096];
  for (;;) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    log.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return log;
}

}  // namespace

bool ContentBudget::take(std::atomic<std::size_t>& counter, std::size_t limit, std::size_t bytes) {
  auto used = counter.load();
  do {
    if (used + bytes > limit) return false;
  } while (!counter.compare_exchange_weak(used, used + bytes));
  return true;
}

QueueWriter::QueueWriter(std::string root, std::string id, int fd, QueueEnvelope envelope,
                         std::shared_ptr<ContentBudget> budget)
    : root_(std::move(root)), id_(std::move(id)), fd_(fd), envelope_(std::move(envelope)), budget_(std::move(budget)) {
  if (fd_ >= 0) buffer_.reserve(write_buffer_size);  // a segment message (no file yet) never writes through it
}

QueueWriter::~QueueWriter() {
  if (!committed_) abort();
  if (keeping_) budget_->release(kept_.size());
  unhold();
}

bool QueueWriter::keep_for_segment(std::string_view bytes) {
  if (kept_.size() + bytes.size() > segment_max_) return false;
  if (keeping_ && !budget_->reserve(bytes.size())) {
    // Past the hand-over bound it is still one record (its first attempt reads it back from
    // the segment), held against the intake bound instead; past that too, a queue file.
    keeping_ = false;
    budget_->release(kept_.size());
    if (!hold(kept_.size())) return false;
  }
  if (!keeping_ && !hold(bytes.size())) return false;
  kept_.append(bytes);
  return true;
}

bool QueueWriter::hold(std::size_t bytes) {
  if (!budget_->hold(bytes)) return false;
  held_ += bytes;
  return true;
}

void QueueWriter::unhold() {
  budget_->unhold(held_);
  held_ = 0;
}

void QueueWriter::keep(std::string_view bytes) {
  if (!keeping_) return;
  if (budget_->reserve(bytes.size())) {
    kept_.append(bytes);
    return;
  }
  // Over the memory bound: this message is read back from its file when delivered.
  keeping_ = false;
  budget_->release(kept_.size());
  kept_ = std::string();
}

std::string QueueWriter::flush_buffer() {
  auto err = write_all(fd_, buffer_);
  buffer_.clear();
  return err;
}

std::string QueueWriter::append(std::string_view bytes) {
  if (segments_) {  // a small message stays in memory until its commit to a segment
    if (keep_for_segment(bytes)) {
      content_length_ += bytes.size();
      return {};
    }
    if (auto err = spill(); !err.empty()) return err;
  }
  if (fd_ < 0) return "queue file closed";
  keep(bytes);
  content_length_ += bytes.size();
  if (buffer_.size() + bytes.size() > write_buffer_size) {
    if (auto err = flush_buffer(); !err.empty()) return err;
    if (bytes.size() > write_buffer_size) return write_all(fd_, bytes);
  }
  buffer_.append(bytes);
  return {};
}

std::string QueueWriter::spill() {
  segments_ = nullptr;
  const auto path = root_ + "/incoming/" + id_;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) return fmt::format("create {}: {}", path, std::strerror(errno));
  const auto records = encode_envelope(envelope_, &recipient_offsets_);
  content_offset_ = records.size();
  if (tenant_pending_) tenant_offset_ = records.find("\nN ") + 3;
  buffer_ = records;
  buffer_ += kept_;
  if (!keeping_) {  // not reserved: read back from the file
    kept_ = std::string();
    unhold();
  }
  return flush_buffer();
}

std::optional<std::string> QueueWriter::segment_payload(std::string* error) {
  if (tenant_pending_) {
    *error = "the message's tenant was never set";
    return std::nullopt;
  }
  const auto records = encode_envelope(envelope_, &recipient_offsets_);
  content_offset_ = records.size();
  return records + kept_ + encode_trailer(content_length_);
}

std::string QueueWriter::commit_to_segment() {
  std::string err;
  if (const auto payload = segment_payload(&err)) err = segments_->put(id_, *payload);
  finish_commit(err);
  return err;
}

void QueueWriter::commit_async(DurableCallback done) {
  if (!segments_) return done(commit());
  std::string err;
  const auto payload = segment_payload(&err);
  if (!payload) return done(err);
  segments_->put_async(id_, *payload, std::move(done));
}

void QueueWriter::finish_commit(const std::string& err) {
  if (!segments_) return;  // a queue file: commit() did it
  if (err.empty()) committed_ = true;
  if (!keeping_) {  // not reserved: read back from the segment
    kept_ = std::string();
    unhold();
  }
}

std::string QueueWriter::set_tenant(const std::string& tenant) {
  if (fd_ < 0 && !segments_) return "queue file closed";
  if (!tenant_pending_ || tenant.empty() || tenant.size() > tenant_slot_width ||
      tenant.find_first_of(" \r\n") != std::string::npos) {
    return "no tenant slot for " + tenant;
  }
  if (segments_) {  // nothing written yet: the envelope is encoded at the commit
    tenant_pending_ = false;
    envelope_.tenant = tenant;
    envelope_.tenant_slot = false;
    return {};
  }
  std::string slot = tenant;
  slot.resize(tenant_slot_width, ' ');
  if (::pwrite(fd_, slot.data(), slot.size(), static_cast<off_t>(tenant_offset_)) != static_cast<ssize_t>(slot.size())) {
    return fmt::format("pwrite: {}", std::strerror(errno));
  }
  tenant_pending_ = false;
  envelope_.tenant = tenant;
  envelope_.tenant_slot = false;
  return {};
}

std::string QueueWriter::commit() {
  if (segments_) return commit_to_segment();
  if (fd_ < 0) return "queue file closed";
  if (tenant_pending_) return "the message's tenant was never set";
  buffer_ += encode_trailer(content_length_);
  auto err = flush_buffer();
  if (err.empty() && ::fsync(fd_) != 0) err = fmt::format("fsync: {}", std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  const auto from = root_ + "/incoming/" + id_;
  const auto to = root_ + "/messages/" + id_;
  if (err.empty() && ::rename(from.c_str(), to.c_str()) != 0) err = fmt::format("rename: {}", std::strerror(errno));
  if (err.empty()) err = fsync_directory(root_ + "/messages");
  if (err.empty()) {
    committed_ = true;
  } else {
    ::unlink(from.c_str());
  }
  return err;
}

std::optional<std::string> QueueWriter::content() {
  if (keeping_ || segments_) return kept_;  // a segment message is whole in memory until its commit
  if (fd_ < 0 || !flush_buffer().empty()) return std::nullopt;
  return read_range(root_ + "/incoming/" + id_, content_offset_, content_length_, nullptr);
}

std::unique_ptr<OpenMessage> QueueWriter::opened() {
  if (!committed_ || !keeping_) return nullptr;
  keeping_ = false;  // the reservation moves to the OpenMessage with the content
  std::unique_ptr<OpenMessage> m(new OpenMessage(root_ + "/messages/" + id_, -1, std::move(kept_), budget_));
  m->segments_ = segments_;
  kept_ = std::string();
  auto& q = m->message;
  q.id = id_;
  q.envelope = std::move(envelope_);
  q.content_length = content_length_;
  q.content_offset = content_offset_;
  q.state.recipients.assign(q.envelope.recipients.size(), RecipientStatus::pending);
  q.recipient_offsets = std::move(recipient_offsets_);
  return m;
}

OpenMessage::OpenMessage(std::string path, int fd, std::string content, std::shared_ptr<ContentBudget> budget)
    : path_(std::move(path)), fd_(fd), content_(std::move(content)), budget_(std::move(budget)) {}

OpenMessage::~OpenMessage() {
  if (fd_ >= 0) ::close(fd_);
  if (budget_) budget_->release(content_.size());
}

std::string OpenMessage::mark(std::size_t index, RecipientStatus status) {
  if (index >= message.recipient_offsets.size()) return "no such recipient";
  if (segments_) {  // an outcome record in the segments, synced with the attempt
    if (auto err = segments_->mark(message.id, index, status); !err.empty()) return err;
    message.state.recipients[index] = status;
    dirty_ = true;
    return {};
  }
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) return fmt::format("open {}: {}", path_, std::strerror(errno));
  }
  const char c = recipient_mark(status);
  for (;;) {
    const auto n = ::pwrite(fd_, &c, 1, static_cast<off_t>(message.recipient_offsets[index]));
    if (n == 1) break;
    if (n < 0 && errno == EINTR) continue;
    return fmt::format("mark {}: {}", path_, n < 0 ? std::strerror(errno) : "short write");
  }
  message.state.recipients[index] = status;
  dirty_ = true;
  return {};
}

std::string OpenMessage::sync() {
  if (!dirty_) return {};
  if (segments_) {
    auto err = segments_->sync();
    if (err.empty()) dirty_ = false;
    return err;
  }
  if (::fdatasync(fd_) != 0) return fmt::format("fdatasync {}: {}", path_, std::strerror(errno));
  dirty_ = false;
  return {};
}

void QueueWriter::abort() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!committed_) ::unlink((root_ + "/incoming/" + id_).c_str());
}

Spool::Spool(std::string root, std::size_t memory_limit, std::size_t intake_limit)
    : root_(std::move(root)),
      budget_(std::make_shared<ContentBudget>(
          memory_limit, intake_limit ? intake_limit : std::max(memory_limit, default_intake_limit))) {}

std::string Spool::init() const {
  for (const char* sub : {"incoming", "messages", "state", "corrupt", "segments", "requests"}) {
    if (auto err = make_directories(root_ + "/" + sub); !err.empty()) return err;
  }
  return {};
}

bool Spool::valid_id(std::string_view id) {
  if (id.size() != 16) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

void Spool::use_segments(std::size_t max_bytes, bool read_only, std::uint64_t segment_bytes) {
  segments_ = std::make_shared<SegmentStore>(root_ + "/segments", segment_bytes);
  segment_max_ = max_bytes;
  segments_read_only_ = read_only;
}

std::unique_ptr<QueueWriter> Spool::create(const QueueEnvelope& envelope, std::string* error) const {
  if (segments_ && !segments_read_only_) {  // no file: a segment record at the commit, or a file if it grows
    std::unique_ptr<QueueWriter> w(new QueueWriter(root_, new_queue_id(), -1, envelope, budget_));
    w->segments_ = segments_.get();
    w->segment_max_ = segment_max_;
    w->tenant_pending_ = envelope.tenant_slot;
    return w;
  }
  for (int tries = 0; tries < 8; ++tries) {
    auto id = new_queue_id();
    const auto path = root_ + "/incoming/" + id;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      if (error) *error = fmt::format("create {}: {}", path, std::strerror(errno));
      return nullptr;
    }
    std::unique_ptr<QueueWriter> w(new QueueWriter(root_, std::move(id), fd, envelope, budget_));
    const auto records = encode_envelope(envelope, &w->recipient_offsets_);
    w->content_offset_ = records.size();
    if (envelope.tenant_slot) {
      w->tenant_offset_ = records.find("\nN ") + 3;
      w->tenant_pending_ = true;
    }
    if (auto err = write_all(fd, records); !err.empty()) {
      if (error) *error = fmt::format("write {}: {}", path, err);
      return nullptr;
    }
    return w;
  }
  if (error) *error = "could not allocate a unique queue id";
  return nullptr;
}

std::vector<std::string> Spool::list_ids() const {
  auto ids = file_ids();
  if (segments_) {
    for (auto& id : segments_->ids()) ids.push_back(std::move(id));
    std::sort(ids.begin(), ids.end());
  }
  return ids;
}

std::vector<std::string> Spool::file_ids() const {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(messages_dir(), ec)) {
    auto name = entry.path().filename().string();
    if (valid_id(name)) ids.push_back(std::move(name));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::optional<std::pair<QueuedMessage, std::string>> Spool::load_segment(const std::string& id, std::string* why,
                                                                         bool* unreadable) const {
  std::string err;
  auto m = segments_->read(id, &err);
  if (!m) {  // an I/O error: the record may be fine
    if (why) *why = err;
    if (unreadable) *unreadable = true;
    return std::nullopt;
  }
  const std::string_view bytes(m->queue_file);
  const auto tail = bytes.size() >= trailer_size ? bytes.substr(bytes.size() - trailer_size) : bytes;
  const auto parsed = parse_queue_file(bytes, tail, bytes.size(), why);
  if (!parsed) return std::nullopt;
  QueuedMessage q{id, parsed->envelope, parsed->content_length, parsed->content_offset, {}, parsed->recipient_offsets,
                  !m->state_line.empty()};
  q.state = parse_state_log(m->state_line.empty() ? "" : m->state_line + "\n", parsed->marks);
  return std::pair{std::move(q), std::string(bytes.substr(parsed->content_offset, parsed->content_length))};
}

std::optional<QueuedMessage> Spool::load(const std::string& id, std::string* why, bool* unreadable) const {
  if (!valid_id(id)) {
    if (why) *why = "not a queue id";
    return std::nullopt;
  }
  if (in_segment(id)) {
    auto m = load_segment(id, why, unreadable);
    if (!m) return std::nullopt;
    return std::move(m->first);
  }
  const auto path = messages_dir() + "/" + id;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    if (why) *why = std::strerror(errno);
    if (unreadable) *unreadable = true;
    if (fd >= 0) ::close(fd);
    return std::nullopt;
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  // The envelope records fit in this much: 1000 recipients of at most 256 bytes.
  const auto head = pread_all(fd, 0, std::min<std::uint64_t>(size, 512 * 1024), why, unreadable);
  const auto tail =
      size >= trailer_size ? pread_all(fd, size - trailer_size, trailer_size, why, unreadable) : std::string();
  ::close(fd);
  if (!head || !tail) return std::nullopt;
  const auto parsed = parse_queue_file(*head, *tail, size, why);
  if (!parsed) return std::nullopt;
  return with_state(id, *parsed);
}

QueuedMessage Spool::with_state(const std::string& id, const ParsedQueueFile& parsed) const {
  QueuedMessage m{id, parsed.envelope, parsed.content_length, parsed.content_offset, {}, parsed.recipient_offsets,
                  false};
  const auto log = read_state_log(root_ + "/state/" + id, m.has_state_log);
  m.state = parse_state_log(log, parsed.marks);
  return m;
}

std::unique_ptr<OpenMessage> Spool::open(const std::string& id, std::string* why, bool* damaged) const {
  if (damaged) *damaged = false;
  if (!valid_id(id)) {
    if (why) *why = "not a queue id";
    return nullptr;
  }
  if (in_segment(id)) {
    bool unreadable = false;
    auto loaded = load_segment(id, why, &unreadable);
    if (!loaded) {
      if (damaged) *damaged = !unreadable;
      return nullptr;
    }
    std::unique_ptr<OpenMessage> m(new OpenMessage({}, -1, std::move(loaded->second), nullptr));
    m->message = std::move(loaded->first);
    m->segments_ = segments_.get();
    return m;
  }
  const auto path = messages_dir() + "/" + id;
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (why) *why = std::strerror(errno);
    return nullptr;
  }
  std::unique_ptr<OpenMessage> m(new OpenMessage(path, fd, {}, nullptr));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    if (why) *why = std::strerror(errno);
    return nullptr;
  }
  // The whole file in one read: records, content and end record.
  const auto size = static_cast<std::uint64_t>(st.st_size);
  auto file = pread_all(fd, 0, size, why);
  if (!file) return nullptr;
  const std::string_view all(*file);
  const auto parsed = parse_queue_file(all, size >= trailer_size ? all.substr(size - trailer_size) : all, size, why);
  if (!parsed) {
    if (damaged) *damaged = true;
    return nullptr;
  }
  m->message = with_state(id, *parsed);
  file->erase(0, parsed->content_offset);
  file->resize(parsed->content_length);
  m->content_ = std::move(*file);
  return m;
}

RecoveryReport Spool::recover() const {
  RecoveryReport report;
  if (segments_) {
    std::string err;
    auto recovered = segments_->open(&err, segments_read_only_);
    if (!recovered) {
      report.error = "segments: " + err;
      return report;
    }
    report.queued = std::move(recovered->ids);
    report.notes = std::move(recovered->notes);
    if (segments_read_only_) return report;
  }
  std::error_code ec;
  // incoming/: the SMTP client never got a 250 for these; it will send them again.
  for (const auto& entry : fs::directory_iterator(root_ + "/incoming", ec)) {
    fs::remove(entry.path(), ec);
    ++report.incomplete_removed;
  }
  for (const auto& id : file_ids()) {
    std::string why;
    bool unreadable = false;
    if (load(id, &why, &unreadable) || unreadable) {
      // An I/O error (EIO, EMFILE, ENOMEM) says nothing about the file: it is
      // tried again later, never quarantined (that would lose it).
      report.queued.push_back(id);
    } else {
      quarantine(id);
      report.quarantined.push_back(id + ": " + why);
    }
  }
  // State logs whose message is gone (delivered, or deleted by the operator).
  for (const auto& entry : fs::directory_iterator(root_ + "/state", ec)) {
    if (!fs::exists(messages_dir() + "/" + entry.path().filename().string())) fs::remove(entry.path(), ec);
  }
  return report;
}

std::string Spool::append_state(const std::string& id, std::string_view line, bool sync) const {
  const auto path = root_ + "/state/" + id;
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fmt::format("open {}: {}", path, std::strerror(errno));
  auto err = write_all(fd, line);  // one write(): appends of a few bytes land whole
  if (err.empty() && sync && ::fdatasync(fd) != 0) err = std::strerror(errno);
  ::close(fd);
  return err;
}

std::string Spool::mark_deferred(QueuedMessage& message, unsigned attempts, long long next_try,
                                 std::string_view reason) const {
  std::string clean(reason.substr(0, 300));
  for (auto& c : clean) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  message.has_state_log = true;
  if (in_segment(message.id)) return segments_->defer(message.id, fmt::format("F {} {} {}", attempts, next_try, clean));
  return append_state(message.id, fmt::format("F {} {} {}\n", attempts, next_try, clean), false);
}

bool Spool::remove(const std::string& id) const {
  if (!valid_id(id)) return false;
  if (in_segment(id)) return !segments_read_only_ && segments_->remove(id).empty();
  const bool removed = ::unlink((messages_dir() + "/" + id).c_str()) == 0;
  ::unlink((root_ + "/state/" + id).c_str());
  // Not fsynced, as in Postfix: if power fails before the file system commits
  // the unlink, the message comes back and is sent again (a duplicate, never a
  // loss), the same outcome as the unsynced delivered marks before it.
  return removed;
}

bool Spool::remove(const QueuedMessage& message) const {
  // Only the files there are: one unlink for a message delivered at its first attempt.
  if (message.has_state_log || in_segment(message.id)) return remove(message.id);
  return valid_id(message.id) && ::unlink((messages_dir() + "/" + message.id).c_str()) == 0;
}

void Spool::quarantine(const std::string& id) const {
  if (in_segment(id)) {  // its record, as a queue file in corrupt/, for the operator to look at
    if (const auto m = segments_->read(id, nullptr)) write_file_atomically(root_ + "/corrupt", id, m->queue_file);
    segments_->remove(id);
    return;
  }
  ::rename((messages_dir() + "/" + id).c_str(), (root_ + "/corrupt/" + id).c_str());
  ::unlink((root_ + "/state/" + id).c_str());
}

std::string Spool::request_flush() const {
  const auto path = root_ + "/flush";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fmt::format("create {}: {}", path, std::strerror(errno));
  ::close(fd);
  return {};
}

bool Spool::take_flush_request() const { return ::unlink((root_ + "/flush").c_str()) == 0; }

}  // namespace unsubrelay::spool
