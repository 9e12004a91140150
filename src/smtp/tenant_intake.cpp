// tenant_intake.cpp: the tenant checks after DATA (tenant_intake.hpp).
#include "unsubrelay/smtp/tenant_intake.hpp"

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::smtp {

namespace {

/// The tenant the header names; a refusal when it names none, two, or one this relay does not have.
TenantVerdict named_tenant(const mime::Part& root, const std::string& header_name, const tenant::Directory& tenants) {
  std::optional<std::string> named;
  for (const auto& f : root.fields) {
    if (!iequals(f.name, header_name)) continue;
    if (named && *named != f.value) {
      return {reply(550, "5.7.1", fmt::format("Error: more than one {}: header", header_name)), ""};
    }
    named = f.value;
  }
  if (!named) {
    // No header: the client is like any other that no tenant names.
    if (auto fallback = tenants.default_tenant()) return {std::nullopt, *fallback};
    return {reply(550, "5.7.1", fmt::format("Error: no tenant for this client (no {}: header)", header_name)), ""};
  }
  if (!tenants.known(*named)) {
    return {reply(550, "5.7.1", fmt::format("Error: {}: {} names no tenant of this relay", header_name,
                                            printable(*named, 64))), ""};
  }
  return {std::nullopt, *named};
}

/// Every From: field, every address in it, must be the tenant's (DMARC aligns on this header).
std::optional<Reply> foreign_from(const mime::ScanResult& scanned, const std::string& tenant,
                                  const tenant::Directory& tenants) {
  bool any = false;
  for (const auto& f : scanned.root.fields) {
    if (!iequals(f.name, "From")) continue;
    for (const auto& domain : tenant::from_domains(f.value)) {
      any = true;
      if (!tenants.domain_allowed(tenant, domain)) {
        return reply(550, "5.7.1", fmt::format("Error: From: header domain {} is not one of this client's sender "
                                               "domains", printable(domain, 256)));
      }
    }
  }
  if (!scanned.ok || !any) return reply(550, "5.7.1", "Error: the message has no From: header address to check");
  return std::nullopt;
}

}  // namespace

std::optional<Reply> sender_refusal(const std::string& sender, const std::string& tenant,
                                    const tenant::Directory& tenants) {
  const auto domain = tenant::address_domain(sender);
  if (sender.empty() || tenants.domain_allowed(tenant, domain)) return std::nullopt;
  return reply(550, "5.7.1", fmt::format("<{}>: Sender address rejected: domain {} is not one of this client's "
                                         "sender domains", printable(sender, 256), printable(domain, 256)));
}

TenantVerdict check_tenant_content(const mime::ScanResult& scanned, const std::string& tenant,
                                   const std::string& header_name, const std::string& sender,
                                   const tenant::Directory& tenants) {
  TenantVerdict v{std::nullopt, tenant};
  if (!header_name.empty()) {
    if (!scanned.ok) return {reply(550, "5.7.1", "Error: the message header cannot be read to find its tenant"), ""};
    v = named_tenant(scanned.root, header_name, tenants);
    if (v.refusal) return v;
    if ((v.refusal = sender_refusal(sender, v.tenant, tenants))) return v;
  }
  v.refusal = foreign_from(scanned, v.tenant, tenants);
  return v;
}

}  // namespace unsubrelay::smtp
