// event_stream.hpp: the events table as receivers, `unsubrelay export` and
// GET /api/v1/events read it (issue 26, docs/events.md): which actions a
// reader wants, each event's JSON, and how far a reader may move past a gap.
//
// Gaps: ids come from a sequence (PostgreSQL BIGSERIAL, SQLite AUTOINCREMENT),
// and two relays of a fleet (or two transactions of one) may commit ids out of
// order: id 101 may be visible while 100 is still being written. A reader that
// moved its position past 100 would never see it. So a reader stops before a
// missing id until it has been missing long enough to be a rolled-back
// transaction's (ids are never reused) or a purged event's.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "unsubrelay/store/store.hpp"

namespace unsubrelay::http {

/// The actions one reader gets.
class EventFilter {
 public:
  /// unsubscribe, resubscribe, erase: receivers without `events:`, export without --events.
  static EventFilter subscription();
  static EventFilter all();
  /// Comma-separated names ("bounced,complaint"); nullopt (and why) when one is unknown or none is given.
  static std::optional<EventFilter> parse(const std::string& list, std::string& why);
  static std::optional<EventFilter> of(const std::vector<std::string>& names, std::string& why);
  bool wants(store::Action a) const { return actions_.count(a) != 0; }

 private:
  std::set<store::Action> actions_;
};

/// An event as JSON: what webhooks post, export writes and the API returns.
/// unsubscribe, resubscribe and erase keep the fields they had before issue
/// 26; a copy's outcome has queue_id, copy and its own fields (docs/events.md).
/// with_id: add "id" (webhooks, API; export lines never had it).
nlohmann::json event_json(const store::StoredEvent& e, bool with_id);

/// How many events of page (ids ascending, all > after) a reader may take now:
/// up to the first missing id that gap_open() says may still appear.
std::size_t settled_count(const std::vector<store::StoredEvent>& page, long long after,
                          const std::function<bool(long long missing, const store::StoredEvent& next)>& gap_open);

/// A gap rule for readers without memory between calls (export, the API): a
/// gap stays open while the event after it is younger than `young` seconds.
bool gap_open_by_age(const store::StoredEvent& next, long long now, long long young);

/// One read of the stream: the wanted events after `after`, at most limit, and
/// the position to continue from (past unwanted events too). Reads up to
/// scan_limit events; a store failure is nullopt.
struct EventPage {
  std::vector<store::StoredEvent> events;
  long long next = 0;
};
std::optional<EventPage> read_events(store::Store& store, const EventFilter& filter, long long since, long long after,
                                     std::size_t limit, long long now, std::size_t scan_limit = 5000);

}  // namespace unsubrelay::http
