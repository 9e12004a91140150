// spool.cpp: queue files on disk: create, commit, recover, load, state logs.
#include "unsubrelay/spool/spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
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

std::optional<std::string> read_range(const std::string& path, std::uint64_t offset, std::uint64_t length,
                                      std::string* why, bool* unreadable = nullptr) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (why) *why = std::strerror(errno);
    if (unreadable) *unreadable = true;
    return std::nullopt;
  }
  std::string out(length, '\0');
  std::uint64_t done = 0;
  while (done < length) {
    const auto n = ::pread(fd, out.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (why) *why = n < 0 ? std::strerror(errno) : "unexpected end of file";
      if (unreadable && n < 0) *unreadable = true;
      ::close(fd);
      return std::nullopt;
    }
    done += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return out;
}

}  // namespace

QueueWriter::QueueWriter(std::string root, std::string id, int fd)
    : root_(std::move(root)), id_(std::move(id)), fd_(fd) {
  buffer_.reserve(write_buffer_size);
}

QueueWriter::~QueueWriter() {
  if (!committed_) abort();
}

std::string QueueWriter::flush_buffer() {
  auto err = write_all(fd_, buffer_);
  buffer_.clear();
  return err;
}

std::string QueueWriter::append(std::string_view bytes) {
  if (fd_ < 0) return "queue file closed";
  content_length_ += bytes.size();
  if (buffer_.size() + bytes.size() > write_buffer_size) {
    if (auto err = flush_buffer(); !err.empty()) return err;
    if (bytes.size() > write_buffer_size) return write_all(fd_, bytes);
  }
  buffer_.append(bytes);
  return {};
}

std::string QueueWriter::commit() {
  if (fd_ < 0) return "queue file closed";
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
  if (fd_ < 0 || !flush_buffer().empty()) return std::nullopt;
  return read_range(root_ + "/incoming/" + id_, content_offset_, content_length_, nullptr);
}

void QueueWriter::abort() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!committed_) ::unlink((root_ + "/incoming/" + id_).c_str());
}

Spool::Spool(std::string root) : root_(std::move(root)) {}

std::string Spool::init() const {
  for (const char* sub : {"incoming", "messages", "state", "corrupt"}) {
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

std::unique_ptr<QueueWriter> Spool::create(const QueueEnvelope& envelope, std::string* error) const {
  for (int tries = 0; tries < 8; ++tries) {
    auto id = new_queue_id();
    const auto path = root_ + "/incoming/" + id;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      if (error) *error = fmt::format("create {}: {}", path, std::strerror(errno));
      return nullptr;
    }
    std::unique_ptr<QueueWriter> w(new QueueWriter(root_, std::move(id), fd));
    const auto records = encode_envelope(envelope);
    w->content_offset_ = records.size();
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
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(messages_dir(), ec)) {
    auto name = entry.path().filename().string();
    if (valid_id(name)) ids.push_back(std::move(name));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::optional<QueuedMessage> Spool::load(const std::string& id, std::string* why, bool* unreadable) const {
  if (!valid_id(id)) {
    if (why) *why = "not a queue id";
    return std::nullopt;
  }
  const auto path = messages_dir() + "/" + id;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (why) *why = std::strerror(errno);
    if (unreadable) *unreadable = true;
    return std::nullopt;
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  // The envelope records fit in this much: 1000 recipients of at most 256 bytes.
  const std::uint64_t head_max = std::min<std::uint64_t>(size, 512 * 1024);
  auto head = read_range(path, 0, head_max, why, unreadable);
  if (!head) return std::nullopt;
  std::string tail;
  if (size >= trailer_size) {
    auto t = read_range(path, size - trailer_size, trailer_size, why, unreadable);
    if (!t) return std::nullopt;
    tail = std::move(*t);
  }
  const auto parsed = parse_queue_file(*head, tail, size, why);
  if (!parsed) return std::nullopt;

  QueuedMessage m{id, parsed->envelope, parsed->content_length, parsed->content_offset, {}};
  std::ifstream state_in(root_ + "/state/" + id, std::ios::binary);
  std::string log((std::istreambuf_iterator<char>(state_in)), std::istreambuf_iterator<char>());
  m.state = parse_state_log(log, m.envelope.recipients.size());
  return m;
}

std::optional<std::string> Spool::read_content(const QueuedMessage& message, std::string* why) const {
  return read_range(messages_dir() + "/" + message.id, message.content_offset, message.content_length, why);
}

RecoveryReport Spool::recover() const {
  RecoveryReport report;
  std::error_code ec;
  // incoming/: the SMTP client never got a 250 for these; it will send them again.
  for (const auto& entry : fs::directory_iterator(root_ + "/incoming", ec)) {
    fs::remove(entry.path(), ec);
    ++report.incomplete_removed;
  }
  for (const auto& id : list_ids()) {
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

std::string Spool::mark_delivered(const std::string& id, std::size_t index, long long now,
                                  std::string_view upstream_id) const {
  // Not fsynced one by one: the queue manager syncs once per attempt (sync_state),
  // or removes the message. A crash in between resends, never loses.
  if (upstream_id.empty()) return append_state(id, fmt::format("D {} {}\n", index, now), false);
  return append_state(id, fmt::format("D {} {} {}\n", index, now, upstream_id.substr(0, 200)), false);
}

std::string Spool::sync_state(const std::string& id) const {
  const auto path = root_ + "/state/" + id;
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return {};  // nothing recorded yet
  std::string err;
  if (::fdatasync(fd) != 0) err = std::strerror(errno);
  ::close(fd);
  return err;
}

std::string Spool::mark_bounced(const std::string& id, std::size_t index, long long now) const {
  return append_state(id, fmt::format("B {} {}\n", index, now), true);
}

std::string Spool::mark_deferred(const std::string& id, unsigned attempts, long long next_try,
                                 std::string_view reason) const {
  std::string clean(reason.substr(0, 300));
  for (auto& c : clean) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return append_state(id, fmt::format("F {} {} {}\n", attempts, next_try, clean), false);
}

bool Spool::remove(const std::string& id) const {
  if (!valid_id(id)) return false;
  const bool removed = ::unlink((messages_dir() + "/" + id).c_str()) == 0;
  ::unlink((root_ + "/state/" + id).c_str());
  // Not fsynced, as in Postfix: if power fails before the file system commits
  // the unlink, the message comes back and is sent again (a duplicate, never a
  // loss), the same outcome as the unsynced delivered marks before it.
  return removed;
}

void Spool::quarantine(const std::string& id) const {
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
