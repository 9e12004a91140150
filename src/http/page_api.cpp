// page_api.cpp: /api/v1/tokens/TOKEN[/unsubscribe|/resubscribe], the API a
// landing page's script calls (js/unsubscribe.js), and its CORS.
//
// The token is the credential, as for the one-click POST: no bearer key. A
// page on the operator's own site (unsubscribe.page_url) calls the relay
// across origins, so the answers carry Access-Control-Allow-Origin for the
// origins in unsubscribe.page_origins, never "*". A POST that a browser sends
// from any other site (its Origin is neither listed nor the relay's own) is
// refused before anything is recorded. GET never changes anything.
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "unsubrelay/common/json.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/http/service.hpp"

#include "json_response.hpp"

namespace unsubrelay::http {

using nlohmann::json;

namespace {

/// host[:port] of an origin (scheme://host[:port]).
std::string_view origin_host(std::string_view origin) {
  const auto sep = origin.find("://");
  return sep == std::string_view::npos ? std::string_view() : origin.substr(sep + 3);
}

}  // namespace

std::string Service::allowed_origin(const Request& r) const {
  if (r.origin.empty()) return {};
  for (const auto& o : config_.unsubscribe.page_origins) {
    if (iequals(o, r.origin)) return o;
  }
  return {};
}

bool Service::foreign_origin(const Request& r) const {
  if (r.origin.empty() || !allowed_origin(r).empty()) return false;
  // The relay's own pages (page_template) post from the host they were served by.
  return r.host.empty() || !iequals(origin_host(r.origin), r.host);
}

void Service::add_cors(const Request& r, Response& out) const {
  out.headers.emplace_back("Vary", "Origin");
  if (const auto origin = allowed_origin(r); !origin.empty()) {
    out.headers.emplace_back("Access-Control-Allow-Origin", origin);
  }
}

Response Service::token_route(const Request& r, const std::string& rest) {
  Response out;
  const auto slash = rest.find('/');
  const std::string token = rest.substr(0, slash);
  const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (r.method == "OPTIONS") {
    // A preflight: only for listed origins, and only what the script uses.
    out = {204, "text/plain; charset=utf-8", "", {{"Cache-Control", "no-store"}}};
    if (!allowed_origin(r).empty()) {
      out.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST");
      out.headers.emplace_back("Access-Control-Allow-Headers", "Content-Type");
      out.headers.emplace_back("Access-Control-Max-Age", "600");
    }
  } else if (action.empty() && (r.method == "GET" || r.method == "HEAD")) {
    out = token_api(token);
  } else if ((action == "unsubscribe" || action == "resubscribe") && r.method == "POST") {
    out = token_action(r, token, action == "resubscribe");
  } else if (action.empty() || action == "unsubscribe" || action == "resubscribe") {
    out = json_response(405, {{"error", "method not allowed"}});
    out.headers.emplace_back("Allow", action.empty() ? "GET, HEAD, OPTIONS" : "POST, OPTIONS");
  } else {
    out = json_response(404, {{"error", "no such action (unsubscribe | resubscribe)"}});
  }
  add_cors(r, out);
  return out;
}

Response Service::token_action(const Request& r, const std::string& token, bool resubscribe) {
  token::TokenError error{};
  const auto claims = check_token(token, error);
  if (!claims) {
    return json_response(error == token::TokenError::unknown_key ? 404 : 400, {{"error", token::describe(error)}});
  }
  if (foreign_origin(r)) {
    return json_response(403, {{"error", "this page's origin may not use the API (unsubscribe.page_origins)"}});
  }
  const auto uid = token::uid_text(claims->uid);
  const auto scope = config_.unsubscribe.suppression == config::Suppression::campaign ? claims->email_id : "";
  const auto state = store_.unsubscribed(uid, scope);
  if (!state) return json_response(503, {{"error", "store unavailable, try again"}});
  // Idempotent: asking for the state the contact is already in records nothing.
  if (*state != resubscribe) return token_api(token);
  store::Event event;
  event.uid = uid;
  event.email_id = claims->email_id;
  event.launch_list_id = claims->launch_list_id;
  event.action = resubscribe ? store::Action::resubscribe : store::Action::unsubscribe;
  event.source = "page";
  event.time = static_cast<long long>(std::time(nullptr));
  event.ip = r.client_ip;
  event.user_agent = r.user_agent;
  if (!store_.record_event(event)) {
    auto out = json_response(503, {{"error", "store unavailable, try again"}});
    out.headers.emplace_back("Retry-After", "30");
    return out;
  }
  if (!resubscribe) ++metrics_.unsubscribes["page"];
  return token_api(token);
}

}  // namespace unsubrelay::http
