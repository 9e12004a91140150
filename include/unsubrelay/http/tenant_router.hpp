// tenant_router.hpp: one relay, several tenants' unsubscribe services (SPEC Part 3).
//
// Each tenant has its own Service over its own store and keys. The router
// picks one Service per request, and a request never reaches another's:
//   /u/TOKEN, /api/v1/tokens/TOKEN  the tenant whose keys hold the key id the
//                     token names (read unverified here; that tenant's Service
//                     verifies it with its own keys only). No tenant's: default's,
//                     which refuses it as an unknown key.
//   /api/...          the tenant whose api_keys_file holds the bearer key. An
//                     admin key (http.api_keys_file) must name one, ?tenant=ID
//                     (400 without it, 404 for no such tenant); a tenant's key
//                     naming another tenant gets 404, as if it did not exist.
//                     The tenant parameter is removed before the Service sees it.
//   anything else     the tenant default's Service (/metrics, /healthz,
//                     /feedback/ses, /js/unsubscribe.js).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "unsubrelay/http/api_keys.hpp"
#include "unsubrelay/http/service.hpp"

namespace unsubrelay::http {

class TenantRouter final : public Handler {
 public:
  struct Tenant {
    Service* service = nullptr;
    ApiKeyMatcher keys;                // tenants[].api_keys_file: this tenant's data only
    std::vector<std::string> key_ids;  // its token keys' ids (unique in the installation)
  };
  /// tenants must hold "default".
  TenantRouter(std::map<std::string, Tenant, std::less<>> tenants, ApiKeyMatcher admin);

  Response handle(const Request& r) override;
  std::optional<Response> admit_import(const Request& r) override;
  std::unique_ptr<suppression::Importer> start_import(const Request& r) override;
  /// SIGHUP: the admin keys and each tenant's API keys again.
  void set_api_keys(ApiKeyMatcher admin, std::map<std::string, ApiKeyMatcher> tenant_keys);

 private:
  struct Routed {
    Service* service = nullptr;     // nullptr: refused
    Request request;                // as the Service sees it (no tenant parameter)
    std::optional<Response> refusal;
  };
  Routed route(const Request& r) const;
  Routed route_api(const Request& r) const;

  std::map<std::string, Tenant, std::less<>> tenants_;
  std::map<std::string, std::string, std::less<>> key_tenant_;  // token key id -> tenant
  std::shared_ptr<const ApiKeyMatcher> admin_;
  mutable std::mutex keys_mutex_;  // guards admin_ and tenants_[].keys (swapped on SIGHUP)
  Service* default_ = nullptr;
};

/// target without its `name` query parameter; value receives it (url-decoded), present tells whether it was there.
std::string without_parameter(const std::string& target, std::string_view name, std::string& value, bool& present);

}  // namespace unsubrelay::http
