// segment_store.cpp: queued messages in segment files (segment_store.hpp).
#include "unsubrelay/spool/segment_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "unsubrelay/spool/durable_file.hpp"

namespace unsubrelay::spool {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t id_size = 16;

std::optional<std::uint64_t> segment_seq(const std::string& name) {
  if (name.size() != 20 || !name.ends_with(".seg")) return std::nullopt;
  std::uint64_t seq = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + 16, seq, 16);
  if (ec != std::errc{} || end != name.data() + 16) return std::nullopt;
  return seq;
}


}  // namespace

std::optional<std::string> folded(std::string bytes, const std::vector<std::pair<std::size_t, RecipientStatus>>& marks) {
  if (bytes.size() < trailer_size) return std::nullopt;
  const auto parsed = parse_queue_file(bytes, std::string_view(bytes).substr(bytes.size() - trailer_size), bytes.size(),
                                       nullptr);
  if (!parsed) return std::nullopt;
  for (const auto& [index, status] : marks) {
    if (index < parsed->recipient_offsets.size()) bytes[parsed->recipient_offsets[index]] = recipient_mark(status);
  }
  return bytes;
}

SegmentStore::SegmentStore(std::string dir, std::uint64_t segment_bytes)
    : dir_(std::move(dir)), segment_bytes_(segment_bytes) {}

std::string SegmentStore::segment_path(std::uint64_t seq) const { return fmt::format("{}/{:016X}.seg", dir_, seq); }

bool SegmentStore::contains(const std::string& id) const {
  std::lock_guard lock(mutex_);
  return index_.count(id) != 0;
}

std::optional<SegmentStore::Recovered> SegmentStore::open(std::string* error, bool read_only) {
  std::lock_guard lock(mutex_);
  std::vector<std::uint64_t> seqs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (const auto seq = segment_seq(entry.path().filename().string())) seqs.push_back(*seq);
  }
  if (ec) {
    if (error) *error = fmt::format("list {}: {}", dir_, ec.message());
    return std::nullopt;
  }
  std::sort(seqs.begin(), seqs.end());
  Recovered out;
  for (const auto seq : seqs) {
    const auto bytes = read_file(segment_path(seq), error);
    if (!bytes) return std::nullopt;  // unreadable now (EIO): never guess; the caller retries the start
    live_.emplace(seq, 0);
    const auto scan = scan_records(*bytes);
    for (const auto& r : scan.records) apply(r, seq, out.notes);
    if (!scan.stopped.empty()) {
      out.notes.push_back(fmt::format("{}: {} at byte {}: the rest was never acknowledged", segment_path(seq),
                                      scan.stopped, scan.valid_end));
    }
  }
  active_seq_ = seqs.empty() ? 1 : seqs.back() + 1;  // never append after a torn tail
  std::vector<std::pair<std::pair<std::uint64_t, std::uint64_t>, std::string>> order;
  for (const auto& [id, e] : index_) order.push_back({{e.segment, e.offset}, id});
  std::sort(order.begin(), order.end());
  for (auto& o : order) out.ids.push_back(std::move(o.second));
  if (read_only) return out;
  std::string err;
  active_ = SegmentWriter::create(segment_path(active_seq_), &err);
  if (!active_) {
    if (error) *error = err;
    return std::nullopt;
  }
  live_.emplace(active_seq_, 0);
  release_segments();
  return out;
}

void SegmentStore::apply(const ScannedRecord& r, std::uint64_t segment, std::vector<std::string>& notes) {
  if (r.payload.size() < id_size) {
    notes.push_back(fmt::format("{}: a record at byte {} names no message", segment_path(segment), r.offset));
    return;
  }
  const std::string id(r.payload.substr(0, id_size));
  const auto rest = r.payload.substr(id_size);
  const auto it = index_.find(id);
  switch (r.kind) {
    case RecordKind::message: {
      if (it != index_.end()) --live_[it->second.segment];  // compacted: the later copy holds its outcomes
      index_[id] = Entry{segment, r.offset + record_header_size + id_size, rest.size(), {}, {}};
      ++live_[segment];
      break;
    }
    case RecordKind::done: {
      std::size_t index = 0;
      const auto [end, ec] = std::from_chars(rest.data() + std::min<std::size_t>(1, rest.size()),
                                             rest.data() + rest.size(), index);
      if (it == index_.end() || ec != std::errc{} || end + 2 != rest.data() + rest.size()) break;
      it->second.marks.emplace_back(index, end[1] == 'X' ? RecipientStatus::bounced : RecipientStatus::delivered);
      break;
    }
    case RecordKind::deferred:
      if (it != index_.end() && !rest.empty()) it->second.state_line = std::string(rest.substr(1));
      break;
    case RecordKind::removed:
      if (it != index_.end()) {
        --live_[it->second.segment];
        index_.erase(it);
      }
      break;
  }
}

std::shared_ptr<SegmentWriter> SegmentStore::append(RecordKind kind, const std::string& payload,
                                                    std::uint64_t* ticket, std::string* error) {
  if (active_ && active_->size() >= segment_bytes_) {
    // The full segment's outcome records must be durable before newer ones land elsewhere.
    if (auto err = active_->wait_durable(active_->size()); !err.empty()) {
      *error = err;
      return nullptr;
    }
    retired_syncs_ += active_->syncs();
    active_.reset();
  }
  if (!active_) {
    ++active_seq_;
    if (!(active_ = SegmentWriter::create(segment_path(active_seq_), error))) return nullptr;
    live_.emplace(active_seq_, 0);
  }
  if (const auto t = active_->append(kind, payload, error)) {
    *ticket = *t;
    return active_;
  }
  if (active_->failed()) {  // poisoned: the next record starts a new segment
    retired_syncs_ += active_->syncs();
    active_.reset();
  }
  return nullptr;
}

std::shared_ptr<SegmentWriter> SegmentStore::add_message(const std::string& id, const std::string& queue_file,
                                                         std::uint64_t* ticket, std::string* error) {
  std::lock_guard lock(mutex_);
  if (id.size() != id_size || index_.count(id)) {
    *error = "bad or duplicate queue id " + id;
    return nullptr;
  }
  auto writer = append(RecordKind::message, id + queue_file, ticket, error);
  if (!writer) return nullptr;
  index_[id] = Entry{active_seq_, *ticket - queue_file.size(), queue_file.size(), {}, {}};
  ++live_[active_seq_];
  return writer;
}

void SegmentStore::retire(const std::shared_ptr<SegmentWriter>& writer) {
  std::lock_guard lock(mutex_);
  if (active_ == writer) {
    retired_syncs_ += active_->syncs();
    active_.reset();  // poisoned: the next record starts a new segment
  }
}

std::string SegmentStore::put(const std::string& id, const std::string& queue_file) {
  std::uint64_t ticket = 0;
  std::string err;
  const auto writer = add_message(id, queue_file, &ticket, &err);
  if (!writer) return err;
  if (err = writer->wait_durable(ticket); !err.empty()) retire(writer);
  return err;
}

void SegmentStore::put_async(const std::string& id, const std::string& queue_file, DurableCallback done) {
  std::uint64_t ticket = 0;
  std::string err;
  const auto writer = add_message(id, queue_file, &ticket, &err);
  if (!writer) return done(err);
  writer->when_durable(ticket, [this, writer, done = std::move(done)](const std::string& e) {
    if (!e.empty()) retire(writer);
    done(e);
  }, background_);
}

std::string SegmentStore::mark(const std::string& id, std::size_t index, RecipientStatus status) {
  std::lock_guard lock(mutex_);
  const auto it = index_.find(id);
  if (it == index_.end()) return "no such message " + id;
  std::uint64_t ticket = 0;
  std::string err;
  if (!append(RecordKind::done, fmt::format("{} {} {}", id, index, recipient_mark(status)), &ticket, &err)) return err;
  it->second.marks.emplace_back(index, status);
  return {};
}

std::string SegmentStore::defer(const std::string& id, const std::string& state_line) {
  std::uint64_t ticket = 0;
  std::string err;
  std::shared_ptr<SegmentWriter> writer;
  {
    std::lock_guard lock(mutex_);
    const auto it = index_.find(id);
    if (it == index_.end()) return "no such message " + id;
    if (!(writer = append(RecordKind::deferred, id + " " + state_line, &ticket, &err))) return err;
    it->second.state_line = state_line;
  }
  return writer->wait_durable(ticket);
}

std::string SegmentStore::sync() {
  std::shared_ptr<SegmentWriter> writer;
  {
    std::lock_guard lock(mutex_);
    writer = active_;
  }
  return writer ? writer->wait_durable(writer->size()) : std::string();
}

std::string SegmentStore::remove(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto it = index_.find(id);
  if (it == index_.end()) return "no such message " + id;
  std::uint64_t ticket = 0;
  std::string err;
  if (!append(RecordKind::removed, id, &ticket, &err)) return err;
  --live_[it->second.segment];
  index_.erase(it);
  release_segments();
  return {};
}

void SegmentStore::release_segments() {
  // Oldest first, and only while nothing older remains: see the header.
  while (!live_.empty() && live_.begin()->second == 0 && live_.begin()->first != active_seq_) {
    ::unlink(segment_path(live_.begin()->first).c_str());
    live_.erase(live_.begin());
  }
}

std::optional<SegmentStore::Message> SegmentStore::read(const std::string& id, std::string* error) const {
  Entry e;
  {
    std::lock_guard lock(mutex_);
    const auto it = index_.find(id);
    if (it == index_.end()) {
      if (error) *error = "no such message " + id;
      return std::nullopt;
    }
    e = it->second;
  }
  std::string why;
  auto bytes = read_range(segment_path(e.segment), e.offset, e.length, &why);
  if (!bytes) {
    if (error) *error = fmt::format("read {}: {}", segment_path(e.segment), why);
    return std::nullopt;
  }
  auto queue_file = folded(std::move(*bytes), e.marks);
  if (!queue_file) {
    if (error) *error = "not a queue file";
    return std::nullopt;
  }
  return Message{std::move(*queue_file), e.state_line};
}

std::size_t SegmentStore::size() const {
  std::lock_guard lock(mutex_);
  return index_.size();
}

std::vector<std::string> SegmentStore::ids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [id, e] : index_) out.push_back(id);
  return out;
}

std::size_t SegmentStore::segment_count() const {
  std::lock_guard lock(mutex_);
  return live_.size();
}

std::uint64_t SegmentStore::syncs() const {
  std::lock_guard lock(mutex_);
  return retired_syncs_ + (active_ ? active_->syncs() : 0);
}

}  // namespace unsubrelay::spool
