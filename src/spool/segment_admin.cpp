// segment_admin.cpp: the relay's upkeep of the segment store (segment_store.hpp):
// compaction only where it frees space, one segment per step.
//
// Compacting until few enough segments are listed would not end when every
// segment is full of live messages, or messages do not pack into fewer
// segments (each copy starts a segment as it frees one). Here every step moves
// one oldest segment, and the loop stops at the first step that did not make
// the list shorter.
#include <algorithm>

#include "unsubrelay/spool/segment_store.hpp"

namespace unsubrelay::spool {

std::size_t SegmentStore::compact_sparse(std::size_t max_segments, std::uint64_t max_live_bytes) {
  std::size_t moved = 0;
  for (;;) {
    std::size_t listed = 0;
    std::uint64_t oldest = 0;
    {
      std::lock_guard lock(mutex_);
      listed = live_.size();
      if (listed <= std::max<std::size_t>(max_segments, 1)) return moved;
      oldest = live_.begin()->first;
      if (oldest == active_seq_) return moved;
      std::uint64_t live_bytes = 0;
      for (const auto& [id, e] : index_) {
        if (e.segment == oldest) live_bytes += e.length;
      }
      if (live_bytes > max_live_bytes) return moved;
    }
    if (!move_forward(oldest, moved) || !sync().empty()) return moved;  // unreadable now, a full disk: next time
    std::lock_guard lock(mutex_);
    release_segments();
    if (live_.size() >= listed) return moved;
  }
}

bool SegmentStore::move_forward(std::uint64_t seq, std::size_t& moved) {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, e] : index_) {
      if (e.segment == seq) ids.push_back(id);
    }
  }
  for (const auto& id : ids) {
    const auto m = read(id, nullptr);
    if (!m) return false;
    std::lock_guard lock(mutex_);
    const auto it = index_.find(id);
    if (it == index_.end()) continue;  // removed meanwhile
    // Outcomes recorded since the read are folded in too, and the deferral follows as a record.
    const auto bytes = folded(m->queue_file, it->second.marks);
    const auto state = it->second.state_line;
    std::uint64_t ticket = 0;
    std::string err;
    if (!bytes || !append(RecordKind::message, id + *bytes, &ticket, &err)) return false;
    --live_[it->second.segment];
    it->second = Entry{active_seq_, ticket - bytes->size(), bytes->size(), {}, state};
    ++live_[active_seq_];
    if (!state.empty() && !append(RecordKind::deferred, id + " " + state, &ticket, &err)) return false;
    ++moved;
  }
  return true;
}

}  // namespace unsubrelay::spool
