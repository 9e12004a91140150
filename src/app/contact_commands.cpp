// contact_commands.cpp: `unsubrelay contact show|erase -c FILE ADDRESS`
// (SPEC Part 2, "Personal data"), the CLI twin of /api/v1/contacts/ADDRESS:
// same store calls, same JSON, same erase event (source "cli").
#include <iostream>

#include <fmt/format.h>

#include "unsubrelay/app/cli_tenant.hpp"
#include "unsubrelay/app/commands.hpp"
#include "unsubrelay/common/clock.hpp"
#include "unsubrelay/common/json.hpp"
#include "unsubrelay/common/text.hpp"
#include "unsubrelay/config/config.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/suppression/manage.hpp"

namespace unsubrelay::app {

namespace {

constexpr const char* contact_usage =
    "usage: unsubrelay contact show -c FILE ADDRESS [--tenant ID]\n"
    "       unsubrelay contact erase -c FILE ADDRESS [--tenant ID]\n"
    "(without --tenant: the tenant default)\n";

int show(store::Store& s, const std::string& address) {
  const auto record = s.contact(address);
  if (!record) {
    std::cerr << "unsubrelay: store: " << s.last_error() << "\n";
    return 1;
  }
  if (record->empty()) {
    std::cerr << fmt::format("unsubrelay: nothing is held about {}\n", address);
    return 1;
  }
  std::cout << suppression::contact_json(*record).dump(2) << "\n";
  return 0;
}

int erase(store::Store& s, const CliTenant& tenant, const std::string& address) {
  std::string err;
  // The tenant's keys, as the relay's store of that tenant has: erased entries must hash as it checks them.
  const auto keys = cli_keys(tenant, true, err);
  if (!keys) {
    std::cerr << "unsubrelay: " << err << "\n";
    return exit_config;
  }
  s.set_erasure_keys(store::ErasureKeys(*keys));
  const auto outcome = s.erase(address, "cli", now_seconds());
  if (!outcome) {
    std::cerr << "unsubrelay: store: " << s.last_error() << "\n";
    return 1;
  }
  if (!outcome->found) {
    std::cerr << fmt::format("unsubrelay: nothing is held about {}\n", address);
    return 1;
  }
  std::cout << json_text(suppression::erase_json(address, *outcome)) << "\n";
  if (!outcome->compacted) std::cerr << "unsubrelay: warning: " << outcome->compact_note << "\n";
  return 0;
}

}  // namespace

int contact_main(const std::vector<std::string>& args) {
  std::string config_path, operand, tenant_id = "default";
  std::size_t words = 0;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if ((args[i] == "-c" || args[i] == "--config") && i + 1 < args.size()) {
      config_path = args[++i];
    } else if (args[i] == "--tenant" && i + 1 < args.size()) {
      tenant_id = args[++i];
    } else if (++words == 2) {
      operand = args[i];
    }
  }
  const auto sub = args.size() > 1 ? args[1] : std::string();
  if (config_path.empty() || words != 2 || (sub != "show" && sub != "erase")) {
    std::cerr << contact_usage;
    return exit_usage;
  }
  auto result = config::load_file(config_path);
  for (const auto& e : result.errors) std::cerr << e.to_string(config_path) << "\n";
  if (!result.ok()) return exit_config;
  std::string why;
  const auto address = suppression::normalise_address(operand, why);
  if (!address) {
    std::cerr << fmt::format("unsubrelay: '{}' is not an address: {}\n", printable(operand, 100), why);
    return exit_usage;
  }
  const auto tenant = cli_tenant(result.config, tenant_id);
  if (!tenant) return exit_usage;
  auto store = open_cli_store(*tenant);
  if (!store) return 1;
  return sub == "show" ? show(*store, *address) : erase(*store, *tenant, *address);
}

}  // namespace unsubrelay::app
