// cli_tenant.cpp: the tenant an offline command works on (app/cli_tenant.hpp).
#include "unsubrelay/app/cli_tenant.hpp"

#include <iostream>

#include <fmt/format.h>

#include "unsubrelay/app/tenants.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/mime/rewriter.hpp"

namespace unsubrelay::app {

namespace {

/// default as run.cpp sees it: the top level, or its declared entry over the top level.
CliTenant default_tenant(const config::Config& cfg) {
  const auto* declared = cfg.find_tenant("default");
  return {"default", declared ? tenant_view(cfg, *declared) : cfg};
}

std::string known_tenants(const config::Config& cfg) {
  std::string out = "default";
  for (const auto& t : cfg.tenants) {
    if (t.id != "default") out += ", " + t.id;
  }
  return out;
}

}  // namespace

std::optional<CliTenant> cli_tenant(const config::Config& cfg, std::string_view requested) {
  if (requested == "default") return default_tenant(cfg);
  // The shared suppression list (docs/tenants.md): `suppression ... --tenant '*'`.
  if (requested == store::shared_tenant && !cfg.tenants.empty()) return CliTenant{"*", default_tenant(cfg).view};
  if (const auto* t = cfg.find_tenant(requested)) return CliTenant{t->id, tenant_view(cfg, *t)};
  const auto shown = printable(std::string(requested), 40);
  if (cfg.tenants.empty()) {
    std::cerr << fmt::format("unsubrelay: no tenant '{}': no tenants are configured (only --tenant default)\n", shown);
  } else {
    std::cerr << fmt::format("unsubrelay: no tenant '{}' (tenants: {})\n", shown, known_tenants(cfg));
  }
  return std::nullopt;
}

std::vector<CliTenant> cli_tenants(const config::Config& cfg) {
  std::vector<CliTenant> out{default_tenant(cfg)};
  for (const auto& t : cfg.tenants) {
    if (t.id != "default") out.push_back({t.id, tenant_view(cfg, t)});
  }
  return out;
}

std::unique_ptr<store::Store> open_cli_store(const CliTenant& tenant) {
  std::string err;
  auto store = store::open(tenant.view.store, err, tenant.id);
  if (!store) std::cerr << fmt::format("unsubrelay: tenant {}: {}\n", tenant.id, err);
  return store;
}

std::optional<token::KeySet> cli_keys(const CliTenant& tenant, bool create, std::string& error) {
  auto keys = mime::load_keys(tenant.view.unsubscribe, error, create && tenant.id == "default");
  if (!keys && tenant.id != "default") error = fmt::format("tenant {}: {}", tenant.id, error);
  return keys;
}

}  // namespace unsubrelay::app
