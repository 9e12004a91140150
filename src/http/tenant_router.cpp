// tenant_router.cpp: which tenant's Service answers a request (tenant_router.hpp).
#include "unsubrelay/http/tenant_router.hpp"

#include <stdexcept>

#include "json_response.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/suppression/import.hpp"
#include "unsubrelay/suppression/manage.hpp"  // Importer: destroyed here

namespace unsubrelay::http {

namespace {

/// The token a /u/ or /api/v1/tokens/ path carries, "" for other paths.
std::string_view token_in(std::string_view path) {
  for (std::string_view prefix : {"/u/", "/api/v1/tokens/"}) {
    if (path.starts_with(prefix)) {
      auto rest = path.substr(prefix.size());
      return rest.substr(0, rest.find('/'));
    }
  }
  return {};
}

}  // namespace

std::string without_parameter(const std::string& target, std::string_view name, std::string& value, bool& present) {
  present = false;
  const auto q = target.find('?');
  if (q == std::string::npos) return target;
  std::string kept;
  std::string_view rest = std::string_view(target).substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const auto eq = pair.find('=');
    if (url_decode(pair.substr(0, eq)) == name) {
      present = true;
      value = eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
      continue;
    }
    if (!kept.empty()) kept += '&';
    kept += pair;
  }
  return target.substr(0, q) + (kept.empty() ? "" : "?" + kept);
}

TenantRouter::TenantRouter(std::map<std::string, Tenant, std::less<>> tenants, ApiKeyMatcher admin)
    : tenants_(std::move(tenants)), admin_(std::make_shared<const ApiKeyMatcher>(std::move(admin))) {
  for (const auto& [id, t] : tenants_) {
    for (const auto& key_id : t.key_ids) key_tenant_.emplace(key_id, id);
  }
  default_ = tenants_.at("default").service;
}

void TenantRouter::set_api_keys(ApiKeyMatcher admin, std::map<std::string, ApiKeyMatcher> tenant_keys) {
  std::lock_guard lock(keys_mutex_);
  admin_ = std::make_shared<const ApiKeyMatcher>(std::move(admin));
  for (auto& [id, keys] : tenant_keys) {
    if (const auto it = tenants_.find(id); it != tenants_.end()) it->second.keys = std::move(keys);
  }
}

TenantRouter::Routed TenantRouter::route(const Request& r) const {
  const auto path = std::string_view(r.target).substr(0, r.target.find('?'));
  if (const auto token = token_in(path); !token.empty()) {
    const auto it = key_tenant_.find(token::key_id_of(token));
    return {it == key_tenant_.end() ? default_ : tenants_.at(it->second).service, r, std::nullopt};
  }
  if (path.starts_with("/api/")) return route_api(r);
  return {default_, r, std::nullopt};
}

TenantRouter::Routed TenantRouter::route_api(const Request& r) const {
  Routed out{nullptr, r, std::nullopt};
  std::string named;
  bool names = false;
  out.request.target = without_parameter(r.target, "tenant", named, names);
  const auto key = bearer_key(r);
  std::string owner;
  bool admin = false;
  {
    std::lock_guard lock(keys_mutex_);
    for (const auto& [id, t] : tenants_) {
      if (!key.empty() && t.keys.scopes_of(key) != 0) owner = id;
    }
    admin = owner.empty() && !key.empty() && admin_->scopes_of(key) != 0;
  }
  const auto no_such = [&] {
    out.refusal = json_response(404, {{"error", "no such tenant, address, launch or suppression"}});
    return out;
  };
  if (!owner.empty()) {
    if (names && named != owner) return no_such();  // another tenant is not there for this key
    out.service = tenants_.at(owner).service;
    return out;
  }
  if (!admin) {  // no valid key: the default's Service answers 401 as it always has
    out.service = default_;
    return out;
  }
  if (!names) {
    out.refusal = json_response(400, {{"error", "an admin key must name the tenant: add ?tenant=ID"}});
    return out;
  }
  const auto it = tenants_.find(named);
  if (it == tenants_.end()) return no_such();
  out.service = it->second.service;
  return out;
}

Response TenantRouter::handle(const Request& r) {
  auto routed = route(r);
  if (!routed.service) return std::move(*routed.refusal);
  return routed.service->handle(routed.request);
}

std::optional<Response> TenantRouter::admit_import(const Request& r) {
  auto routed = route(r);
  if (!routed.service) return std::move(routed.refusal);
  return routed.service->admit_import(routed.request);
}

std::unique_ptr<suppression::Importer> TenantRouter::start_import(const Request& r) {
  auto routed = route(r);  // admitted: the same key routes the same way, unless a SIGHUP came between
  if (!routed.service) throw std::runtime_error("the API keys changed during the request");
  return routed.service->start_import(routed.request);
}

}  // namespace unsubrelay::http
