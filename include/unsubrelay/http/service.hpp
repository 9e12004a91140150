// service.hpp: the unsubscribe side, as a pure request handler.
//
// handle() maps one parsed HTTP request to a response: the landing page,
// RFC 8058 one-click, resubscribe, the token lookup, the Emarsys-compatible
// API, statistics, metrics and health. No sockets here (http/server.cpp
// does the Beast I/O), so every route is unit-testable. GET and HEAD never
// change state: mail scanners prefetch links.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/http/api_keys.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::suppression {
class Importer;
struct ImportReport;
}  // namespace unsubrelay::suppression

namespace unsubrelay::http {

struct Request {
  std::string method;  // upper case
  std::string target;  // path and query
  std::string content_type;
  std::string authorization;
  std::string user_agent;
  std::string client_ip;  // after X-Forwarded-For from trusted proxies
  std::string body;
  std::string origin;  // the Origin header (CORS), "" when absent
  std::string host;    // the Host header
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Counters the /metrics page shows, filled by the other components.
struct Metrics {
  std::function<std::string()> relay_metrics;  // SMTP and delivery counters, Prometheus text
  std::map<std::string, std::atomic<std::uint64_t>> unsubscribes;    // by source
  std::map<std::string, std::atomic<std::uint64_t>> token_failures;  // by reason
  std::atomic<std::uint64_t> requests{0};
  /// SPEC Part 3: every tenant's Service's metrics, by tenant id (this one's
  /// included); set, the unsubscribe and token counters carry a tenant label.
  std::vector<std::pair<std::string, const Metrics*>> tenants;
};

/// What the HTTP server asks of what stands behind it: one Service, or with
/// tenants the TenantRouter (tenant_router.hpp) that picks a tenant's Service.
class Handler {
 public:
  virtual ~Handler() = default;
  virtual Response handle(const Request& request) = 0;
  /// POST /api/v1/suppressions/import, before any of the body is read: the refusal, or nullopt.
  virtual std::optional<Response> admit_import(const Request& r) = 0;
  /// The importer the admitted request's body is pushed into.
  virtual std::unique_ptr<suppression::Importer> start_import(const Request& r) = 0;
};

class Service final : public Handler {
 public:
  Service(const config::Config& config, const token::KeySet& keys, store::Store& store, std::string page_template,
          ApiKeyMatcher api_keys, std::function<bool()> spool_healthy);

  Response handle(const Request& request) override;
  /// The mailto: unsubscribe path (SMTP): records an unsubscribe for a token.
  bool unsubscribe_by_token(const std::string& token, const std::string& source, const std::string& ip,
                            std::string& why);
  Metrics& metrics() { return metrics_; }
  /// SIGHUP: the keys of http.api_keys_file again; requests already past the check keep the old ones.
  void set_api_keys(ApiKeyMatcher keys);
  /// POST /feedback/ses (ses_feedback.hpp); without one the path is 404.
  void set_ses_handler(std::function<Response(const Request&)> handler) { ses_handler_ = std::move(handler); }

  // suppression_api.cpp: POST /api/v1/suppressions/import with its body
  // streamed by the server (http/import_stream.hpp), never held whole.
  /// Before any of the body is read: the refusal (401 without a valid key), or nullopt.
  std::optional<Response> admit_import(const Request& r) override;
  /// The importer one streamed body is pushed into.
  std::unique_ptr<suppression::Importer> start_import(const Request& r) override;
  /// The answer for an import's report; status 0: 200, or 400/503 from the report.
  static Response import_response(const suppression::ImportReport& report, int status = 0);

 private:
  Response page(int status, const std::string& title, const std::string& content) const;
  Response script_page(int status, const std::string& title, const std::string& content) const;
  Response token_page(const Request& r, const std::string& token, bool resubscribe);
  Response token_api(const std::string& token);
  // page_api.cpp: the API a page's script calls, and its CORS.
  Response token_route(const Request& r, const std::string& rest);
  Response token_action(const Request& r, const std::string& token, bool resubscribe);
  std::string allowed_origin(const Request& r) const;
  bool foreign_origin(const Request& r) const;
  void add_cors(const Request& r, Response& out) const;
  // page_script.cpp: GET /js/unsubscribe.js.
  Response page_script(const Request& r);
  // preference_route.cpp: /u/TOKEN as the preference page (unsubscribe.topics).
  bool preference_request(const Request& r) const;
  Response preference_page(const Request& r, const token::Claims& claims, const std::string& token);
  // suppression_api.cpp: /api/v1/suppressions.
  Response suppression_route(const Request& r, const std::string& rest, const std::string& query);
  Response list_suppressions(const std::map<std::string, std::string>& params);
  Response put_suppression(const Request& r, const std::string& address);
  Response import_suppressions(const Request& r);
  // contact_api.cpp: /api/v1/contacts/ADDRESS (personal data).
  // key_scopes: what the bearer key may do (api_keys.hpp); the IPs and user agents need scope_export.
  Response contact_route(const Request& r, const std::string& rest, const std::string& query, unsigned key_scopes);
  // events_api.cpp: GET /api/v1/events (docs/events.md); IPs and user agents need scope_export.
  Response events_route(const Request& r, const std::string& query, unsigned key_scopes);
  Response emarsys_unsubscribe(const Request& r);
  Response summary(const Request& r, const std::string& email_id, const std::string& query);
  Response metrics_page();
  Response health();
  /// The scopes of the request's bearer key; 0 without a valid one.
  unsigned key_scopes(const Request& r) const;
  /// 401 without a valid key, 403 when the key lacks the scope the route needs (api_keys.hpp); else nothing.
  std::optional<Response> refuse_key(const Request& r, std::string_view path, unsigned scopes) const;
  /// With http.metrics_networks set, only its clients may read /metrics.
  bool metrics_allowed(const Request& r) const;
  std::optional<token::Claims> check_token(const std::string& token, token::TokenError& error);

  const config::Config& config_;
  const token::KeySet& keys_;
  store::Store& store_;
  std::string template_;
  mutable std::mutex api_keys_mutex_;
  std::shared_ptr<const ApiKeyMatcher> api_keys_;  // swapped whole on SIGHUP
  std::function<bool()> spool_healthy_;
  Metrics metrics_;
  std::function<Response(const Request&)> ses_handler_;
};

/// A page_template without {{content}} is the operator's own scripted page (a
/// CleverTap page using /js/unsubscribe.js): served as it is, with a policy
/// that lets its inline and same-origin scripts run.
bool is_script_page(const std::string& page_template);

/// The key of an "Authorization: Bearer KEY" header; "" without one.
std::string_view bearer_key(const Request& r);

/// True for the request whose body the server streams: POST /api/v1/suppressions/import.
bool is_streamed_import(std::string_view method, std::string_view target);

/// "a***@example.com": enough for a person to recognise, not to harvest.
std::string mask_address(const std::string& address);

/// application/x-www-form-urlencoded or multipart/form-data: true when the
/// body carries List-Unsubscribe=One-Click (RFC 8058 §3.1).
bool is_one_click(const std::string& content_type, const std::string& body);

}  // namespace unsubrelay::http
