// events_api.cpp: GET /api/v1/events (issue 26, docs/events.md): the event
// stream a page at a time, for a CRM without a receiver. The bearer key and
// its scope (read) are checked by Service::handle first; with tenants the
// TenantRouter has picked the key's tenant's Service, so its store. The IPs
// and user agents of subscription events need scope_export, as a contact's do.
#include <fmt/format.h>

#include "unsubrelay/common/clock.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/http/event_stream.hpp"
#include "unsubrelay/http/service.hpp"

#include "json_response.hpp"

namespace unsubrelay::http {

namespace {

constexpr std::size_t max_events_page = 1000;

/// A non-negative decimal of at most 18 digits; nullopt otherwise.
std::optional<long long> number(const std::string& text) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(text);
}

std::string value(const std::map<std::string, std::string>& params, const char* key) {
  const auto it = params.find(key);
  return it == params.end() ? std::string() : it->second;
}

}  // namespace

Response Service::events_route(const Request& r, const std::string& query, unsigned key_scopes) {
  if (r.method != "GET") {
    return {405, "application/json", R"({"error":"use GET"})", {{"Allow", "GET"}}};
  }
  const auto params = parse_form(query);
  const auto since = value(params, "since").empty() ? std::optional<long long>(0) : number(value(params, "since"));
  const auto cursor = value(params, "cursor").empty() ? std::optional<long long>(0) : number(value(params, "cursor"));
  const auto limit = value(params, "limit").empty() ? std::optional<long long>(100) : number(value(params, "limit"));
  if (!since) return json_response(400, {{"error", "since: unix seconds"}});
  if (!cursor) return json_response(400, {{"error", "cursor: not one this API returned"}});
  if (!limit || *limit < 1 || *limit > static_cast<long long>(max_events_page)) {
    return json_response(400, {{"error", fmt::format("limit: 1 to {}", max_events_page)}});
  }
  std::string why;
  const auto types = value(params, "types");
  const auto filter = types.empty() ? std::optional<EventFilter>(EventFilter::all()) : EventFilter::parse(types, why);
  if (!filter) return json_response(400, {{"error", "types: " + why}});
  const auto page = read_events(store_, *filter, *since, *cursor, static_cast<std::size_t>(*limit), now_seconds());
  if (!page) return store_unavailable(store_);
  auto events = nlohmann::json::array();
  for (const auto& e : page->events) {
    auto j = event_json(e, true);
    if (j.contains("ip") && !(key_scopes & scope_export)) j["ip"] = "", j["user_agent"] = "";
    events.push_back(std::move(j));
  }
  nlohmann::json out = {{"events", std::move(events)}, {"next_cursor", std::to_string(page->next)}};
  if (!(key_scopes & scope_export)) out["redacted"] = nlohmann::json::array({"ip", "user_agent"});
  return json_response(200, out);
}

}  // namespace unsubrelay::http
