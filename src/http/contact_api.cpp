// contact_api.cpp: /api/v1/contacts/ADDRESS (SPEC Part 2, "Personal data"):
// GET shows everything held about the address a page at a time
// (store/contact_page.hpp: `limit`, `cursor`, `next_cursor`), DELETE erases it
// (store/contact.hpp). The bearer key and its scope are checked by
// Service::handle first; the events' IPs and user agents need scope_export.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/clock.hpp"
#include "unsubrelay/common/json.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/http/service.hpp"
#include "unsubrelay/suppression/manage.hpp"

#include "json_response.hpp"

namespace unsubrelay::http {

using nlohmann::json;

namespace {

Response not_held(const std::string& address) {
  return json_response(404, {{"error", "nothing is held about this address"}, {"address", address}});
}

/// The page the query asks for; an error message when its limit or cursor is not one we give.
std::optional<store::ContactPageQuery> page_query(const std::string& query, std::string& why) {
  const auto params = parse_form(query);
  store::ContactPageQuery q;
  if (const auto c = params.find("cursor"); c != params.end() && !c->second.empty()) {
    const auto decoded = store::decode_contact_cursor(c->second);
    if (!decoded) {
      why = "cursor: not one this API returned";
      return std::nullopt;
    }
    q = *decoded;
  }
  if (const auto l = params.find("limit"); l != params.end()) {
    const auto& text = l->second;
    if (text.empty() || text.size() > 4 || text.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(text) == 0 || std::stoul(text) > store::max_contact_page) {
      why = fmt::format("limit: 1 to {}", store::max_contact_page);
      return std::nullopt;
    }
    q.limit = std::stoul(text);
  }
  return q;
}

/// Without scope_export: every event's IP address and user agent blanked, and said so.
void redact(json& shown) {
  for (auto& e : shown["events"]) {
    e["ip"] = "";
    e["user_agent"] = "";
  }
  shown["redacted"] = json::array({"ip", "user_agent"});
}

}  // namespace

Response Service::contact_route(const Request& r, const std::string& rest, const std::string& query,
                               unsigned key_scopes) {
  const auto text = url_decode(rest);
  std::string why;
  const auto address = suppression::normalise_address(text, why);
  if (!address) {
    return json_response(400, {{"error", fmt::format("'{}' is not an address: {}", printable(text, 100), why)}});
  }
  if (r.method == "GET") {
    const auto q = page_query(query, why);
    if (!q) return json_response(400, {{"error", why}});
    const auto page = store_.contact_page(*address, *q);
    if (!page) return store_unavailable(store_);
    if (q->first && page->record.empty()) return not_held(*address);
    auto shown = suppression::contact_json(page->record);
    shown["next_cursor"] = page->next_cursor;
    if (!(key_scopes & scope_export)) redact(shown);
    return json_response(200, shown);
  }
  if (r.method != "DELETE") return {405, "application/json", json_text({{"error", "use GET or DELETE"}}),
                                    {{"Allow", "GET, DELETE"}}};
  if (store_.erasure_keys().empty()) {
    return json_response(500, {{"error", "no unsubscribe keys to hash erased addresses with"}});
  }
  const auto outcome = store_.erase(*address, "api", now_seconds());
  if (!outcome) return store_unavailable(store_);
  if (!outcome->found) return not_held(*address);
  // The log names the uid or the hash, never the address it no longer holds.
  spdlog::info("contact erased: subject={}, source=api, suppressions_kept={}, compacted={}{}",
               store::erase_subject(*outcome), outcome->kept, outcome->compacted ? "yes" : "no",
               outcome->compact_note.empty() ? "" : " (" + outcome->compact_note + ")");
  return json_response(200, suppression::erase_json(*address, *outcome));
}

}  // namespace unsubrelay::http
