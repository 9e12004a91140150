// event_stream.cpp: event filters, event JSON and the gap rule (event_stream.hpp).
#include "unsubrelay/http/event_stream.hpp"

#include <fmt/format.h>

namespace unsubrelay::http {

EventFilter EventFilter::subscription() {
  EventFilter f;
  f.actions_ = {store::Action::unsubscribe, store::Action::resubscribe, store::Action::erase};
  return f;
}

EventFilter EventFilter::all() {
  EventFilter f;
  for (auto a : {store::Action::unsubscribe, store::Action::resubscribe, store::Action::erase,
                 store::Action::delivered, store::Action::deferred, store::Action::bounced, store::Action::blocked,
                 store::Action::complaint, store::Action::suppressed}) {
    f.actions_.insert(a);
  }
  return f;
}

std::optional<EventFilter> EventFilter::of(const std::vector<std::string>& names, std::string& why) {
  EventFilter f;
  for (const auto& n : names) {
    const auto a = store::action_named(n);
    if (!a) {
      why = fmt::format("unknown event \"{}\" (one of unsubscribe, resubscribe, erase, delivered, deferred, bounced, "
                        "blocked, complaint, suppressed)", n.substr(0, 40));
      return std::nullopt;
    }
    f.actions_.insert(*a);
  }
  if (f.actions_.empty()) {
    why = "no event named";
    return std::nullopt;
  }
  return f;
}

std::optional<EventFilter> EventFilter::parse(const std::string& list, std::string& why) {
  std::vector<std::string> names;
  std::size_t at = 0;
  while (at <= list.size()) {
    const auto comma = list.find(',', at);
    const auto word = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    if (!word.empty()) names.push_back(word);
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return of(names, why);
}

namespace {

void outcome_fields(const store::Event& e, nlohmann::json& j) {
  j["queue_id"] = e.queue_id;
  j["copy"] = e.copy >= 0 ? nlohmann::json(e.copy) : nlohmann::json(nullptr);
  switch (e.action) {
    case store::Action::delivered:
      j["reply"] = e.detail;
      j["upstream_id"] = e.upstream_id;
      break;
    case store::Action::deferred:
      j["reply"] = e.detail;
      j["status"] = e.status;
      break;
    case store::Action::bounced:
      j["bounce_type"] = e.kind;
      j["status"] = e.status;
      j["diagnostic"] = e.detail;
      break;
    case store::Action::blocked:
      j["status"] = e.status;
      j["diagnostic"] = e.detail;
      break;
    case store::Action::complaint: j["feedback_type"] = e.status; break;
    case store::Action::suppressed:
      j["reason"] = e.detail;
      j["scope"] = e.kind;
      break;
    default: break;
  }
}

}  // namespace

nlohmann::json event_json(const store::StoredEvent& s, bool with_id) {
  const auto& e = s.event;
  nlohmann::json j = {{"action", store::name(e.action)}, {"source", e.source},
                      {"time", e.time},                  {"uid", e.uid},
                      {"email", s.address},              {"email_id", e.email_id},
                      {"launch_list_id", e.launch_list_id}};
  if (store::subscription_event(e.action)) {
    j["ip"] = e.ip;
    j["user_agent"] = e.user_agent;
  }
  j["topic"] = e.topic;
  if (!store::subscription_event(e.action)) outcome_fields(e, j);
  if (with_id) j["id"] = s.id;
  return j;
}

std::size_t settled_count(const std::vector<store::StoredEvent>& page, long long after,
                          const std::function<bool(long long missing, const store::StoredEvent& next)>& gap_open) {
  long long expected = after + 1;
  for (std::size_t i = 0; i < page.size(); ++i) {
    if (page[i].id != expected && gap_open(expected, page[i])) return i;
    expected = page[i].id + 1;
  }
  return page.size();
}

bool gap_open_by_age(const store::StoredEvent& next, long long now, long long young) {
  return next.event.time > now - young;
}

std::optional<EventPage> read_events(store::Store& store, const EventFilter& filter, long long since, long long after,
                                     std::size_t limit, long long now, std::size_t scan_limit) {
  EventPage out;
  out.next = after;
  std::size_t scanned = 0;
  while (out.events.size() < limit && scanned < scan_limit) {
    const auto page = store.events_since(since, out.next, 1000);
    if (!page) return std::nullopt;
    // A `since` filter leaves a gap of its own before its first event (the
    // older ones): only later gaps are ones to wait for.
    const auto take = settled_count(*page, out.next, [&](long long missing, const store::StoredEvent& next) {
      return !(since > 0 && missing == after + 1) && gap_open_by_age(next, now, 10);
    });
    for (std::size_t i = 0; i < take && out.events.size() < limit; ++i) {
      out.next = (*page)[i].id;
      ++scanned;
      if (filter.wants((*page)[i].event.action)) out.events.push_back((*page)[i]);
    }
    if (take < page->size() || page->size() < 1000) break;
  }
  return out;
}

}  // namespace unsubrelay::http
