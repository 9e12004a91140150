// contact_api.cpp: /api/v1/contacts/ADDRESS (SPEC Part 2, "Personal data"):
// GET shows everything held about the address, DELETE erases it
// (store/contact.hpp). The bearer key is checked by Service::handle first.
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

}  // namespace

Response Service::contact_route(const Request& r, const std::string& rest) {
  const auto text = url_decode(rest);
  std::string why;
  const auto address = suppression::normalise_address(text, why);
  if (!address) {
    return json_response(400, {{"error", fmt::format("'{}' is not an address: {}", printable(text, 100), why)}});
  }
  if (r.method == "GET") {
    const auto record = store_.contact(*address);
    if (!record) return store_unavailable(store_);
    if (record->empty()) return not_held(*address);
    return json_response(200, suppression::contact_json(*record));
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
