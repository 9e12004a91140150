// spool_requests.cpp: what the command line asks of the running relay through
// the spool (spool.hpp): `queue delete` of a message held in a segment, and
// the relay's periodic compaction of the segments.
//
// The segments have one writer, the relay: a second process appending to them
// would interleave its records with the relay's group commits. So `queue
// delete` of such a message writes SPOOL/requests/delete-ID durably (write,
// fsync, rename, directory fsync) and the relay carries it out: it appends the
// message's X record, syncs, and only then unlinks the request. A crash in
// between leaves the request, which the next start applies again (the id is
// unknown by then: logged and dropped).
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "unsubrelay/spool/durable_file.hpp"
#include "unsubrelay/spool/spool.hpp"

namespace unsubrelay::spool {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view delete_prefix = "delete-";

/// A name from the directory, safe for a log line.
std::string request_name_for_log(const std::string& name) {
  std::string out;
  for (const char c : name.substr(0, 60)) out += (c >= 0x21 && c <= 0x7e) ? c : '?';
  return out;
}

}  // namespace

std::string Spool::request_delete(const std::string& id) const {
  if (!valid_id(id)) return "not a queue id";  // the id becomes a file name: nothing else gets through
  const auto dir = root_ + "/requests";
  if (auto err = make_directories(dir); !err.empty()) return err;  // a spool made before requests/ existed
  return write_file_atomically(dir, std::string(delete_prefix) + id, id + "\n");
}

Spool::AppliedRequests Spool::apply_requests() const {
  AppliedRequests out;
  const auto dir = root_ + "/requests";
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  std::vector<std::string> done;  // unlinked once the removals are durable
  for (const auto& name : names) {
    if (name.starts_with(".")) continue;  // being written by the command (write_file_atomically)
    const auto id = name.starts_with(delete_prefix) ? name.substr(delete_prefix.size()) : std::string();
    if (!valid_id(id)) {
      out.notes.push_back(fmt::format("requests/{}: not a request this relay knows; removed", request_name_for_log(name)));
    } else if (in_segment(id)) {
      if (auto err = segments_->remove(id); !err.empty()) {
        out.notes.push_back(fmt::format("{}: queue delete: {}; tried again in a second", id, err));
        continue;
      }
      out.deleted.push_back(id);
    } else if (remove(id)) {  // a queue file (the command deletes those itself; a request is honoured too)
      out.deleted.push_back(id);
    } else {
      out.notes.push_back(fmt::format("{}: queue delete: no such message in the queue; request dropped", id));
    }
    done.push_back(name);
  }
  if (segments_ && !out.deleted.empty()) {
    if (auto err = segments_->sync(); !err.empty()) {
      // Kept: the next start finds the requests again and deletes what came back.
      out.notes.push_back(fmt::format("queue delete: {}; the requests are kept", err));
      return out;
    }
  }
  for (const auto& name : done) ::unlink((dir + "/" + name).c_str());
  return out;
}

bool Spool::holds_segments(const std::string& root) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root + "/segments", ec)) {
    // A relay with segments starts an empty one at each start: that one holds nothing.
    if (entry.path().extension() == ".seg" && entry.file_size(ec) > 0) return true;
  }
  return false;
}

std::size_t Spool::compact_segments(std::size_t max_segments) const {
  if (!segments_ || segments_read_only_) return 0;
  // Worth it only where the oldest segment is mostly done: a quarter of a segment copied to free a whole one.
  return segments_->compact_sparse(max_segments, segments_->segment_bytes() / 4);
}

}  // namespace unsubrelay::spool
