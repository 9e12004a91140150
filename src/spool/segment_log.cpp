// segment_log.cpp: records, their scan, and the group-committed segment writer (segment_log.hpp).
#include "unsubrelay/spool/segment_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "unsubrelay/spool/durable_file.hpp"

namespace unsubrelay::spool {

namespace {

constexpr std::uint32_t castagnoli = 0x82F63B78;

std::array<std::uint32_t, 256> crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ castagnoli : c >> 1;
    t[i] = c;
  }
  return t;
}

std::uint32_t crc32c_table(std::string_view bytes, std::uint32_t crc) {
  static const auto table = crc_table();
  for (unsigned char b : bytes) crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(std::string_view bytes, std::uint32_t crc) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t n = bytes.size();
  std::uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
  }
  auto c32 = static_cast<std::uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
#endif

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint32_t get_u32(std::string_view s) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(s[i])) << (8 * i);
  return v;
}

/// The checksum of a record: its kind, its length field and its payload.
std::uint32_t record_crc(char kind, std::string_view length_field, std::string_view payload) {
  auto crc = crc32c(std::string_view(&kind, 1));
  crc = crc32c(length_field, crc);
  return crc32c(payload, crc);
}

bool known_kind(char k) { return k == 'M' || k == 'D' || k == 'F' || k == 'X'; }

/// pwrite all of bytes at offset; "" or the error.
std::string pwrite_all(int fd, std::string_view bytes, std::uint64_t offset) {
  while (!bytes.empty()) {
    const auto n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::strerror(errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

}  // namespace

std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc) {
  crc = ~crc;
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  crc = hardware ? crc32c_sse42(bytes, crc) : crc32c_table(bytes, crc);
#else
  crc = crc32c_table(bytes, crc);
#endif
  return ~crc;
}

std::string encode_record(RecordKind kind, std::string_view payload) {
  std::string out;
  out.reserve(record_header_size + payload.size());
  out.append(record_magic);
  out.push_back(static_cast<char>(kind));
  out.append(3, '\0');
  put_u32(out, static_cast<std::uint32_t>(payload.size()));
  put_u32(out, record_crc(static_cast<char>(kind), std::string_view(out).substr(8, 4), payload));
  out.append(payload);
  return out;
}

SegmentScan scan_records(std::string_view bytes) {
  SegmentScan scan;
  std::uint64_t pos = 0;
  while (pos < bytes.size()) {
    const auto rest = bytes.substr(pos);
    if (rest.size() < record_header_size) {
      scan.stopped = "a record header cut short";
      break;
    }
    const char kind = rest[4];
    if (!rest.starts_with(record_magic) || !known_kind(kind) || rest.substr(5, 3) != std::string_view("\0\0\0", 3)) {
      scan.stopped = "no record header";
      break;
    }
    const auto length = get_u32(rest.substr(8, 4));
    if (length > max_record_payload || length > rest.size() - record_header_size) {
      scan.stopped = "a record cut short";
      break;
    }
    const auto payload = rest.substr(record_header_size, length);
    if (record_crc(kind, rest.substr(8, 4), payload) != get_u32(rest.substr(12, 4))) {
      scan.stopped = "a record whose checksum does not match";
      break;
    }
    scan.records.push_back({static_cast<RecordKind>(kind), pos, payload});
    pos += record_header_size + length;
  }
  scan.valid_end = pos;
  return scan;
}

std::unique_ptr<SegmentWriter> SegmentWriter::create(const std::string& path, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (error) *error = fmt::format("create {}: {}", path, std::strerror(errno));
    return nullptr;
  }
  std::unique_ptr<SegmentWriter> w(new SegmentWriter(path, fd));
  // The segment's name must survive a power cut before any record in it is acknowledged.
  if (auto err = fsync_directory(std::filesystem::path(path).parent_path().string()); !err.empty()) {
    if (error) *error = err;
    ::unlink(path.c_str());
    return nullptr;
  }
  return w;
}

SegmentWriter::~SegmentWriter() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<std::uint64_t> SegmentWriter::append(RecordKind kind, std::string_view payload, std::string* error) {
  if (payload.size() > max_record_payload) {
    if (error) *error = "record too large for a segment";
    return std::nullopt;
  }
  const auto record = encode_record(kind, payload);
  std::lock_guard lock(mutex_);
  if (!failed_.empty()) {
    if (error) *error = failed_;
    return std::nullopt;
  }
  if (auto err = pwrite_all(fd_, record, end_); !err.empty()) {
    // A short write (a full disk) must not leave a torn record in front of the
    // next one: cut it off, or refuse everything from now on.
    if (::ftruncate(fd_, static_cast<off_t>(end_)) != 0) {
      failed_ = fmt::format("{}: write: {}; ftruncate: {}", path_, err, std::strerror(errno));
    }
    if (error) *error = fmt::format("write {}: {}", path_, err);
    return std::nullopt;
  }
  end_ += record.size();
  return end_;
}

void SegmentWriter::sync_locked(std::unique_lock<std::mutex>& lock) {
  syncing_ = true;
  const auto target = end_;  // everything written so far rides on this sync
  lock.unlock();
  const int rc = ::fdatasync(fd_);
  const int err = errno;
  lock.lock();
  syncing_ = false;
  ++syncs_;
  if (rc != 0) {
    failed_ = fmt::format("fdatasync {}: {}", path_, std::strerror(err));
  } else if (target > durable_) {
    durable_ = target;
  }
  synced_.notify_all();
}

std::vector<std::pair<DurableCallback, std::string>> SegmentWriter::answered_locked() {
  std::vector<std::pair<DurableCallback, std::string>> out;
  std::erase_if(callbacks_, [&](auto& c) {
    if (c.first > durable_ && failed_.empty()) return false;
    out.emplace_back(std::move(c.second), c.first > durable_ ? failed_ : std::string());
    return true;
  });
  return out;
}

std::string SegmentWriter::wait_durable(std::uint64_t ticket) {
  std::unique_lock lock(mutex_);
  while (durable_ < ticket) {
    if (!failed_.empty()) return failed_;
    if (syncing_) {  // a leader is syncing: its sync may or may not cover this ticket
      synced_.wait(lock);
      continue;
    }
    sync_locked(lock);
  }
  return {};
}

void SegmentWriter::when_durable(std::uint64_t ticket, DurableCallback done, const Background& background) {
  if (!background) {
    done(wait_durable(ticket));
    return;
  }
  std::unique_lock lock(mutex_);
  if (durable_ >= ticket || !failed_.empty()) {
    const auto err = durable_ >= ticket ? std::string() : failed_;
    lock.unlock();
    done(err);
    return;
  }
  callbacks_.emplace_back(ticket, std::move(done));
  if (serving_) return;  // the task under way syncs again for it
  serving_ = true;
  lock.unlock();
  background([self = shared_from_this()] { self->serve_callbacks(); });  // the task keeps the writer alive
}

void SegmentWriter::serve_callbacks() {
  std::unique_lock lock(mutex_);
  while (!callbacks_.empty()) {
    if (syncing_) {
      synced_.wait(lock);  // a blocking waiter's sync: it may answer some callbacks
    } else if (failed_.empty()) {
      sync_locked(lock);
    }
    auto answered = answered_locked();
    lock.unlock();
    for (auto& [done, err] : answered) done(err);
    lock.lock();
  }
  serving_ = false;
}

std::uint64_t SegmentWriter::size() const {
  std::lock_guard lock(mutex_);
  return end_;
}

bool SegmentWriter::failed() const {
  std::lock_guard lock(mutex_);
  return !failed_.empty();
}

std::uint64_t SegmentWriter::syncs() const {
  std::lock_guard lock(mutex_);
  return syncs_;
}

}  // namespace unsubrelay::spool
