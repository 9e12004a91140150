// cli_tenant.hpp: the tenant an offline command works on (`--tenant ID`,
// SPEC Part 3: `stats`, `export`, `suppression`, `contact` and `token` take it).
//
// Each tenant has its own store and token keys (app/tenants.hpp): a command
// opens them exactly as `run` does, so what it reads or changes is what the
// relay serves for that tenant. Without --tenant a command works on
// "default", the installation's data from before tenants.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::app {

/// A tenant as a command sees it.
struct CliTenant {
  std::string id;       // "default" or a declared tenant's id
  config::Config view;  // the configuration as that tenant sees it (tenant_view())
};

/// The tenant `--tenant ID` names (pass "default" when the option is absent).
/// nullopt after printing why: an unknown id names the known tenants; without
/// `tenants:` only "default" exists. The caller exits exit_usage.
std::optional<CliTenant> cli_tenant(const config::Config& cfg, std::string_view requested);

/// Every tenant, "default" first: where `token verify` looks for a token's key id.
std::vector<CliTenant> cli_tenants(const config::Config& cfg);

/// The tenant's own store; nullptr after printing why.
std::unique_ptr<store::Store> open_cli_store(const CliTenant& tenant);

/// The tenant's token keys. create: make default's var/keys.yaml when missing
/// (as `run` does); a tenant's keys_file is required, so never created.
std::optional<token::KeySet> cli_keys(const CliTenant& tenant, bool create, std::string& error);

}  // namespace unsubrelay::app
