// suppression_api.cpp: /api/v1/suppressions (SPEC Part 2, "Suppression list
// management"): list and page, add, lift, import. The bearer key is checked
// by Service::handle before any of these run, and by admit_import before the
// server reads an import's body (http/import_stream.hpp streams it).
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "unsubrelay/common/clock.hpp"
#include "unsubrelay/common/json.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/http/service.hpp"
#include "unsubrelay/store/suppression_list.hpp"
#include "unsubrelay/suppression/manage.hpp"

#include "json_response.hpp"

namespace unsubrelay::http {

using nlohmann::json;

namespace {

constexpr std::size_t import_chunk_bytes = 64 * 1024;
/// Rows per transaction of an API import on SQLite. There a batch holds the
/// relay's one store connection while it is written, so every one-click and
/// delivery lookup waits for it: 50,000 rows (the command line's, which runs
/// in a process of its own) hold it about 2 s, 5,000 about 0.3 s, for an
/// import about 1.7 times slower (docs/performance-import.md). PostgreSQL
/// writes batches on connections of their own (import_writers): 50,000 there.
constexpr std::size_t sqlite_api_batch_rows = 5000;

Response bad_request(const std::string& why) { return json_response(400, {{"error", why}}); }

std::vector<std::string> topic_ids(const config::Config& config) {
  std::vector<std::string> topics;
  for (const auto& t : config.unsubscribe.topics) topics.push_back(t.id);
  return topics;
}

}  // namespace

bool is_streamed_import(std::string_view method, std::string_view target) {
  return method == "POST" && target.substr(0, target.find('?')) == "/api/v1/suppressions/import";
}

std::optional<Response> Service::admit_import(const Request& r) {
  ++metrics_.requests;
  // Before a byte of the body is read: 401 without a valid key, 403 without the import scope (as Service::handle).
  return refuse_key(r, "/api/v1/suppressions/import", key_scopes(r));
}

std::unique_ptr<suppression::Importer> Service::start_import(const Request&) {
  const auto batch = store_.import_writers() > 1 ? store::import_batch_rows : sqlite_api_batch_rows;
  return std::make_unique<suppression::Importer>(store_, topic_ids(config_), "import", now_seconds(), batch);
}

Response Service::import_response(const suppression::ImportReport& report, int status) {
  if (!status) status = !report.store_error.empty() ? 503 : !report.fatal.empty() ? 400 : 200;
  auto out = json_response(status, suppression::report_json(report));
  if (status == 503) out.headers.emplace_back("Retry-After", "30");
  return out;
}

Response Service::suppression_route(const Request& r, const std::string& rest, const std::string& query) {
  if (rest.empty() || rest == "/") {
    if (r.method != "GET") return json_response(405, {{"error", "use GET"}});
    return list_suppressions(parse_form(query));
  }
  if (rest == "/import") {
    if (r.method != "POST") return json_response(405, {{"error", "use POST"}});
    return import_suppressions(r);
  }
  const auto address_text = url_decode(std::string_view(rest).substr(1));
  std::string why;
  const auto address = suppression::normalise_address(address_text, why);
  if (!address) return bad_request(fmt::format("'{}' is not an address: {}", printable(address_text, 100), why));
  const auto params = parse_form(query);
  if (r.method == "PUT") return put_suppression(r, *address);
  if (r.method == "DELETE") {
    const auto topic = params.count("topic") ? params.at("topic") : std::string();
    if (!topic.empty() && !config_.unsubscribe.find_topic(topic)) {
      return bad_request(fmt::format("topic '{}' is not one of unsubscribe.topics", printable(topic, 64)));
    }
    const auto lifted = store_.lift(*address, topic, "api", now_seconds());  // an erased address's too
    if (!lifted) return store_unavailable(store_);
    if (*lifted == 0) return json_response(404, {{"error", "not suppressed"}, {"address", *address}});
    return json_response(200, {{"address", *address}, {"lifted", *lifted}});
  }
  if (r.method == "GET") return list_suppressions({{"address", *address}});
  return json_response(405, {{"error", "use GET, PUT or DELETE"}});
}

Response Service::list_suppressions(const std::map<std::string, std::string>& params) {
  store::SuppressionQuery q;
  auto param = [&](const char* key) { return params.count(key) ? params.at(key) : std::string(); };
  if (!param("address").empty()) {
    std::string why;
    const auto address = suppression::normalise_address(param("address"), why);
    if (!address) return bad_request("address: " + why);
    q.address = *address;
  }
  if (!param("since").empty()) {
    const auto since = suppression::parse_time(param("since"));
    if (!since) return bad_request("since: unix seconds or an ISO 8601 date/time");
    q.since = *since;
  }
  if (!param("limit").empty()) {
    const auto& text = param("limit");
    if (text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos || std::stoul(text) == 0 ||
        std::stoul(text) > store::max_page_limit) {
      return bad_request(fmt::format("limit: 1 to {}", store::max_page_limit));
    }
    q.limit = std::stoul(text);
  }
  q.cursor = param("cursor");
  if (!q.cursor.empty() && !store::decode_cursor(q.cursor)) return bad_request("cursor: not one this API returned");
  // One address: its entries and those of its hashed forms (an erased address).
  auto page = q.address.empty() ? store_.list_suppressions(q, now_seconds()) : std::optional<store::SuppressionPage>();
  if (!q.address.empty()) {
    auto entries = store_.suppressions_of(q.address, now_seconds());
    if (entries) page = store::SuppressionPage{std::move(*entries), ""};
  }
  if (!page) return store_unavailable(store_);
  json entries = json::array();
  for (const auto& e : page->entries) entries.push_back(suppression::entry_json(e));
  json out = {{"suppressions", entries}};
  if (q.address.empty()) out["next_cursor"] = page->next_cursor;
  return json_response(200, out);
}

Response Service::put_suppression(const Request& r, const std::string& address) {
  json body = json::object();
  if (!trim(r.body).empty()) {
    try {
      body = json::parse(r.body);
    } catch (const json::exception&) {
      return bad_request("the body is not JSON: {\"reason\": \"manual\", \"topic\": \"...\"}");
    }
  }
  if (!body.is_object()) return bad_request("the body must be a JSON object");
  auto text = [&](const char* key) {
    return body.contains(key) && body[key].is_string() ? body[key].get<std::string>() : std::string();
  };
  suppression::ImportRow row;
  row.address = address;
  row.reason = suppression::Reason::manual;
  if (!text("reason").empty()) {
    const auto reason = suppression::parse_reason(text("reason"));
    if (!reason) return bad_request(fmt::format("reason '{}' is unknown", printable(text("reason"), 40)));
    row.reason = *reason;
  }
  row.topic = text("topic");
  if (!row.topic.empty() && !config_.unsubscribe.find_topic(row.topic)) {
    return bad_request(fmt::format("topic '{}' is not one of unsubscribe.topics", printable(row.topic, 64)));
  }
  const auto entry = suppression::entry_of(row, "api", now_seconds());
  const auto added = store_.add_suppressions({entry}, entry.created);
  if (!added) return store_unavailable(store_);
  return json_response(*added ? 201 : 200, {{"added", *added == 1}, {"entry", suppression::entry_json(entry)}});
}

/// A body handed whole (Service::handle without the server's streaming:
/// unit tests); the server streams this route (admit_import, start_import).
Response Service::import_suppressions(const Request& r) {
  const auto importer = start_import(r);
  std::string_view body(r.body);
  for (std::size_t at = 0; at < body.size(); at += import_chunk_bytes) {
    if (!importer->push(body.substr(at, import_chunk_bytes))) break;
  }
  return import_response(importer->finish());
}

}  // namespace unsubrelay::http
