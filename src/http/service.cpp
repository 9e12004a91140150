// service.cpp: routes of the unsubscribe service.
#include "unsubrelay/http/service.hpp"

#include <ctime>

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "unsubrelay/common/clock.hpp"
#include "unsubrelay/common/json.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/config/network_match.hpp"
#include "unsubrelay/mime/codec.hpp"

#include "json_response.hpp"

namespace unsubrelay::http {

using nlohmann::json;

namespace {

Response emarsys_error(int code, const std::string& text) {
  return json_response(400, {{"replyCode", code}, {"replyText", text}, {"data", ""}});
}

/// A JSON value as the Emarsys API takes it: strings, and numbers sent as numbers.
std::string field_text(const json& body, const char* key) {
  if (!body.is_object() || !body.contains(key)) return {};
  const auto& v = body.at(key);
  if (v.is_string()) return std::string(trim(v.get<std::string>()));
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  if (v.is_number_unsigned()) return std::to_string(v.get<unsigned long long>());
  return {};
}

}  // namespace

std::string mask_address(const std::string& address) {
  const auto at = address.rfind('@');
  if (at == std::string::npos || at == 0) return "***";
  return address.substr(0, 1) + "***" + address.substr(at);
}

bool is_one_click(const std::string& content_type, const std::string& body) {
  if (istarts_with(content_type, "application/x-www-form-urlencoded")) {
    const auto form = parse_form(body);
    const auto it = form.find("List-Unsubscribe");
    return it != form.end() && it->second == "One-Click";
  }
  if (istarts_with(content_type, "multipart/form-data")) {
    // The part named List-Unsubscribe whose value is One-Click.
    const auto name = body.find("name=\"List-Unsubscribe\"");
    if (name == std::string::npos) return false;
    const auto value_start = body.find("\r\n\r\n", name);
    if (value_start == std::string::npos) return false;
    return std::string_view(body).substr(value_start + 4, 9) == "One-Click";
  }
  return false;
}

Service::Service(const config::Config& config, const token::KeySet& keys, store::Store& store,
                 std::string page_template, ApiKeyMatcher api_keys, std::function<bool()> spool_healthy)
    : config_(config),
      keys_(keys),
      store_(store),
      template_(std::move(page_template)),
      api_keys_(std::make_shared<const ApiKeyMatcher>(std::move(api_keys))),
      spool_healthy_(std::move(spool_healthy)) {
  for (const char* source : {"one-click", "page", "api", "mailto"}) metrics_.unsubscribes[source] = 0;
  for (auto e : {token::TokenError::malformed, token::TokenError::wrong_version, token::TokenError::unknown_key,
                 token::TokenError::bad_signature, token::TokenError::expired}) {
    metrics_.token_failures[token::describe(e)] = 0;
  }
}

bool is_script_page(const std::string& page_template) {
  return page_template.find("{{content}}") == std::string::npos;
}

Response Service::page(int status, const std::string& title, const std::string& content) const {
  if (is_script_page(template_)) return script_page(status, title, content);
  std::string html = template_;
  auto replace = [&](const std::string& key, const std::string& value) {
    for (auto pos = html.find(key); pos != std::string::npos; pos = html.find(key, pos + value.size())) {
      html.replace(pos, key.size(), value);
    }
  };
  replace("{{title}}", mime::html_escape(title));
  replace("{{content}}", content);
  return {status, "text/html; charset=utf-8", html,
          {{"Cache-Control", "no-store"}, {"Referrer-Policy", "no-referrer"}, {"X-Frame-Options", "DENY"},
           {"Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}}};
}

Response Service::script_page(int status, const std::string& title, const std::string& content) const {
  // The operator's page as it is; errors (a bad link) in a plain page of ours,
  // since a scripted page has no place for them.
  std::string html = status == 200 ? template_
                                   : fmt::format("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                                                 "<meta name=\"viewport\" content=\"width=device-width, "
                                                 "initial-scale=1\"><title>{}</title></head><body><main>{}</main>"
                                                 "</body></html>",
                                                 mime::html_escape(title), content);
  return {status, "text/html; charset=utf-8", html,
          {{"Cache-Control", "no-store"}, {"Referrer-Policy", "no-referrer"}, {"X-Frame-Options", "DENY"},
           {"Content-Security-Policy",
            "default-src 'none'; script-src 'self' 'unsafe-inline'; connect-src 'self'; "
            "style-src 'self' 'unsafe-inline' https:; img-src 'self' data: https:; font-src 'self' data: https:; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"}}};
}

std::optional<token::Claims> Service::check_token(const std::string& token, token::TokenError& error) {
  const auto v = token::verify(token, keys_, static_cast<std::uint32_t>(now_seconds()));
  if (!v.claims) {
    error = v.error;
    ++metrics_.token_failures[token::describe(v.error)];
  }
  return v.claims;
}

Response Service::token_page(const Request& r, const std::string& token, bool resubscribe) {
  token::TokenError error{};
  const auto claims = check_token(token, error);
  if (!claims) {
    const int status = error == token::TokenError::unknown_key ? 404 : 400;
    return page(status, "Link not valid",
                fmt::format("<h1>This link is not valid</h1><p>{}. Please use the most recent link in one of our "
                            "emails.</p>",
                            mime::html_escape(token::describe(error))));
  }
  if (!resubscribe && preference_request(r)) return preference_page(r, *claims, token);
  const auto uid = token::uid_text(claims->uid);
  const auto address = store_.address_of(uid);
  const auto masked = address ? mask_address(*address) : std::string("your address");
  const auto scope = config_.unsubscribe.suppression == config::Suppression::campaign ? claims->email_id : "";
  const std::string action = "/u/" + token;

  const auto retry_page = [&] { return page(503, "Try again", "<h1>Please try again in a moment</h1>"); };
  const auto unsubscribed_page = [&](bool just_now) {
    return page(200, "Unsubscribed",
                fmt::format("<h1>You are unsubscribed</h1><p><strong>{}</strong> {} these emails.</p>{}"
                            "<form method=\"post\" action=\"{}/resubscribe\"><button type=\"submit\">"
                            "Resubscribe</button></form>",
                            mime::html_escape(masked), just_now ? "will no longer receive" : "no longer receives",
                            just_now ? "<p>Changed your mind?</p>" : "", mime::html_escape(action)));
  };
  const Response one_click_done{200, "text/plain; charset=utf-8", "unsubscribed\n", {{"Cache-Control", "no-store"}}};

  const bool reading = r.method == "GET" || r.method == "HEAD";
  if (!reading && r.method != "POST") {
    return {405, "text/plain; charset=utf-8", "method not allowed\n", {{"Allow", "GET, HEAD, POST"}}};
  }
  const auto state = store_.unsubscribed(uid, scope);
  if (reading) {
    if (!state) return retry_page();
    if (*state) return unsubscribed_page(false);
    return page(200, "Unsubscribe",
                fmt::format("<h1>Unsubscribe</h1><p>Stop sending campaign <strong>{}</strong> emails to "
                            "<strong>{}</strong>?</p><form method=\"post\" action=\"{}\"><input type=\"hidden\" "
                            "name=\"action\" value=\"unsubscribe\"><button type=\"submit\">Unsubscribe</button></form>",
                            mime::html_escape(claims->email_id), mime::html_escape(masked),
                            mime::html_escape(action)));
  }

  const bool one_click = !resubscribe && is_one_click(r.content_type, r.body);
  if (resubscribe) {
    if (!state) return retry_page();
    if (!*state) {
      return page(409, "Not unsubscribed",
                  "<h1>Nothing to undo</h1><p>This address is subscribed; resubscribing is only possible after an "
                  "unsubscribe.</p>");
    }
  } else if (state && *state) {
    // Idempotent: a repeated one-click or form post records nothing new.
    return one_click ? one_click_done : unsubscribed_page(false);
  }
  const std::string source = one_click ? "one-click" : "page";
  store::Event event{uid, claims->email_id, claims->launch_list_id,
                     resubscribe ? store::Action::resubscribe : store::Action::unsubscribe, source,
                     now_seconds(), r.client_ip, r.user_agent};
  event.resubscribe_scope = scope;  // lifts what made the page say "unsubscribed"
  if (one_click) event.topic = claims->topic;  // a topic's copy leaves that topic only (SPEC Part 2)
  // Written (durably) before the answer: a crash after 200 never loses it.
  if (!store_.record_event(event)) {
    return one_click ? Response{503, "text/plain; charset=utf-8", "try again later\n", {{"Retry-After", "30"}}}
                     : retry_page();
  }
  if (!resubscribe) ++metrics_.unsubscribes[source];
  if (one_click) return one_click_done;
  if (resubscribe) {
    return page(200, "Resubscribed",
                fmt::format("<h1>Welcome back</h1><p><strong>{}</strong> is subscribed again.</p>",
                            mime::html_escape(masked)));
  }
  return unsubscribed_page(true);
}

bool Service::unsubscribe_by_token(const std::string& token, const std::string& source, const std::string& ip,
                                   std::string& why) {
  token::TokenError error{};
  const auto claims = check_token(token, error);
  if (!claims) {
    why = token::describe(error);
    return false;
  }
  const auto uid = token::uid_text(claims->uid);
  if (!store_.record_event({uid, claims->email_id, claims->launch_list_id, store::Action::unsubscribe, source,
                            now_seconds(), ip, ""})) {
    why = "store unavailable: " + store_.last_error();
    return false;
  }
  ++metrics_.unsubscribes[source];
  return true;
}

Response Service::token_api(const std::string& token) {
  token::TokenError error{};
  const auto claims = check_token(token, error);
  if (!claims) return json_response(error == token::TokenError::unknown_key ? 404 : 400, {{"error", token::describe(error)}});
  const auto uid = token::uid_text(claims->uid);
  const auto address = store_.address_of(uid);
  const auto scope = config_.unsubscribe.suppression == config::Suppression::campaign ? claims->email_id : "";
  const auto state = store_.unsubscribed(uid, scope);
  if (!state) return json_response(503, {{"error", "store unavailable"}});
  return json_response(200, {{"email", address ? mask_address(*address) : ""},
                             {"email_id", claims->email_id},
                             {"launch_list_id", claims->launch_list_id},
                             {"topic", claims->topic},
                             {"status", *state ? "unsubscribed" : "subscribed"}});
}

void Service::set_api_keys(ApiKeyMatcher keys) {
  auto fresh = std::make_shared<const ApiKeyMatcher>(std::move(keys));
  std::lock_guard lock(api_keys_mutex_);
  api_keys_.swap(fresh);
}

std::optional<Response> Service::refuse_key(const Request& r, std::string_view path, unsigned scopes) const {
  if (!scopes) {
    auto resp = json_response(401, {{"replyCode", 1}, {"replyText", "Unauthorized: a valid bearer key is required"}});
    resp.headers.emplace_back("WWW-Authenticate", "Bearer");
    return resp;
  }
  if (const auto needed = required_scopes(r.method, path); needed && !(needed & scopes)) {
    const auto names = scope_names(needed);
    const auto why = fmt::format("Forbidden: this key lacks the '{}' scope (http.api_keys_file)", names);
    return json_response(403, {{"replyCode", 1}, {"replyText", why}, {"error", why}, {"scope", names}});
  }
  return std::nullopt;
}

std::string_view bearer_key(const Request& r) {
  if (!istarts_with(r.authorization, "Bearer ")) return {};
  return trim(std::string_view(r.authorization).substr(7));
}

unsigned Service::key_scopes(const Request& r) const {
  const auto key = bearer_key(r);
  if (key.empty()) return 0;
  std::shared_ptr<const ApiKeyMatcher> keys;
  {
    std::lock_guard lock(api_keys_mutex_);
    keys = api_keys_;
  }
  return keys->scopes_of(key);  // constant time (api_keys.cpp)
}

bool Service::metrics_allowed(const Request& r) const {
  const auto& networks = config_.http.metrics_networks;
  return networks.empty() || config::in_networks(r.client_ip, networks);
}

Response Service::emarsys_unsubscribe(const Request& r) {
  json body;
  try {
    body = json::parse(r.body);
  } catch (const json::exception&) {
    return emarsys_error(1006, "Empty parameter(s): [launch_list_id, email_id, uid]");
  }
  const auto launch = field_text(body, "launch_list_id");
  const auto email_id = field_text(body, "email_id");
  const auto uid = field_text(body, "uid");
  std::vector<std::string> empty;
  if (launch.empty()) empty.push_back("launch_list_id");
  if (email_id.empty()) empty.push_back("email_id");
  if (uid.empty()) empty.push_back("uid");
  if (!empty.empty()) {
    std::string names;
    for (const auto& n : empty) names += (names.empty() ? "" : ", ") + n;
    return emarsys_error(1006, "Empty parameter(s): [" + names + "]");
  }
  if (!store_.launch_exists(launch)) return emarsys_error(6042, "No such launch");
  if (!store_.launch_matches(launch, email_id)) return emarsys_error(6025, "No such campaign");
  if (!store_.address_of(uid)) return emarsys_error(1003, "Internal error");
  if (!store_.record_event({uid, email_id, launch, store::Action::unsubscribe, "api", now_seconds(), r.client_ip,
                            r.user_agent})) {
    return json_response(503, {{"replyCode", 1003}, {"replyText", "Internal error"}, {"data", ""}});
  }
  ++metrics_.unsubscribes["api"];
  return json_response(200, {{"replyCode", 0}, {"replyText", "OK"}, {"data", json::object()}});
}

Response Service::summary(const Request&, const std::string& email_id, const std::string& query) {
  std::string launch;
  for (const auto& [k, v] : parse_form(query)) {
    if (k == "launch_list_id") launch = v;
  }
  const auto s = store_.summary(email_id, launch);
  if (!s) return json_response(503, {{"replyCode", 1003}, {"replyText", "Internal error"}, {"data", ""}});
  const double rate = s->delivered ? static_cast<double>(s->unsubscribed) / static_cast<double>(s->delivered) : 0.0;
  return json_response(200, {{"replyCode", 0},
                             {"replyText", "OK"},
                             {"data",
                              {{"email_id", email_id},
                               {"launch_list_id", launch},
                               {"sent", s->sent},
                               {"delivered", s->delivered},
                               {"deferred", s->deferred},
                               {"bounced", s->bounced},
                               {"suppressed", s->suppressed},
                               {"unsubscribed", s->unsubscribed},
                               {"unsubscribe_rate", rate},
                               {"hard_bounced", s->hard_bounced},
                               {"soft_bounced", s->soft_bounced},
                               {"blocked", s->blocked},
                               {"complaints", s->complaints},
                               {"complaint_rate", s->complaint_rate()},
                               {"sent_after_optout", s->sent_after_optout}}}});
}

Response Service::metrics_page() {
  std::string out = metrics_.relay_metrics ? metrics_.relay_metrics() : std::string();
  // With tenants, one series per tenant and label (the tenants' Services count their own).
  auto each = metrics_.tenants;
  if (each.empty()) each.emplace_back("", &metrics_);
  const auto label = [](const std::string& tenant) { return tenant.empty() ? "" : "tenant=\"" + tenant + "\","; };
  out += "# HELP unsubrelay_unsubscribes_total Unsubscribes recorded, by source.\n"
         "# TYPE unsubrelay_unsubscribes_total counter\n";
  for (const auto& [tenant, m] : each) {
    for (const auto& [source, n] : m->unsubscribes) {
      out += fmt::format("unsubrelay_unsubscribes_total{{{}source=\"{}\"}} {}\n", label(tenant), source, n.load());
    }
  }
  out += "# HELP unsubrelay_token_failures_total Refused tokens, by reason.\n"
         "# TYPE unsubrelay_token_failures_total counter\n";
  for (const auto& [tenant, m] : each) {
    for (const auto& [reason, n] : m->token_failures) {
      out += fmt::format("unsubrelay_token_failures_total{{{}reason=\"{}\"}} {}\n", label(tenant), reason, n.load());
    }
  }
  out += fmt::format("# HELP unsubrelay_http_requests_total HTTP requests served.\n"
                     "# TYPE unsubrelay_http_requests_total counter\nunsubrelay_http_requests_total {}\n",
                     metrics_.requests.load());
  out += fmt::format("# HELP unsubrelay_store_up 1 when the store answers a query, 0 when it does not.\n"
                     "# TYPE unsubrelay_store_up gauge\nunsubrelay_store_up {}\n", store_.healthy() ? 1 : 0);
  return {200, "text/plain; version=0.0.4; charset=utf-8", out, {}};
}

Response Service::health() {
  const bool store_ok = store_.healthy();
  const bool spool_ok = !spool_healthy_ || spool_healthy_();
  const int status = store_ok && spool_ok ? 200 : 503;
  return json_response(status, {{"status", status == 200 ? "ok" : "unhealthy"}, {"store", store_ok}, {"spool", spool_ok}});
}

Response Service::handle(const Request& r) {
  ++metrics_.requests;
  const auto q = r.target.find('?');
  const std::string path = r.target.substr(0, q);
  const std::string query = q == std::string::npos ? "" : r.target.substr(q + 1);

  if (path.starts_with("/u/")) {
    auto rest = path.substr(3);
    const bool resubscribe = rest.ends_with("/resubscribe");
    if (resubscribe) rest.resize(rest.size() - 12);
    if (resubscribe && r.method != "POST") {
      return {405, "text/plain; charset=utf-8", "use POST\n", {{"Allow", "POST"}}};
    }
    return token_page(r, rest, resubscribe);
  }
  if (path.starts_with("/api/v1/tokens/")) return token_route(r, path.substr(15));
  if (path == "/js/unsubscribe.js" && (r.method == "GET" || r.method == "HEAD")) return page_script(r);
  if (path.starts_with("/api/")) {
    const auto scopes = key_scopes(r);
    if (auto refused = refuse_key(r, path, scopes)) return std::move(*refused);
    if (path == "/api/v2/email/unsubscribe" && r.method == "POST") return emarsys_unsubscribe(r);
    if (path == "/api/v1/suppressions" || path.starts_with("/api/v1/suppressions/")) {
      return suppression_route(r, path.substr(20), query);
    }
    if (path.starts_with("/api/v1/contacts/") && path.size() > 17) {
      return contact_route(r, path.substr(17), query, scopes);
    }
    if (path == "/api/v1/events") return events_route(r, query, scopes);
    const std::string prefix = "/api/v2/email/", suffix = "/responses/summary";
    if (path.starts_with(prefix) && path.ends_with(suffix) && path.size() > prefix.size() + suffix.size() &&
        r.method == "GET") {
      return summary(r, url_decode(path.substr(prefix.size(), path.size() - prefix.size() - suffix.size())), query);
    }
    return json_response(404, {{"replyCode", 2}, {"replyText", "No such endpoint"}});
  }
  if (path == "/metrics" && !metrics_allowed(r)) {
    // Prometheus exporters' convention: only the scrapers of http.metrics_networks.
    return {403, "text/plain; charset=utf-8", "forbidden\n", {}};
  }
  if (path == "/metrics" && r.method == "GET") return metrics_page();
  if (path == "/feedback/ses" && ses_handler_) {
    if (r.method != "POST") return {405, "text/plain; charset=utf-8", "use POST\n", {{"Allow", "POST"}}};
    return ses_handler_(r);
  }
  if (path == "/healthz" && (r.method == "GET" || r.method == "HEAD")) return health();
  return {404, "text/plain; charset=utf-8", "not found\n", {}};
}

}  // namespace unsubrelay::http
