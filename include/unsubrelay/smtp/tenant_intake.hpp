// tenant_intake.hpp: a tenant's message after DATA, before the 250 (SPEC
// Part 3): which tenant it is (smtp.tenant_header), and whether its From:
// header may name the domains it names. Pure: the content in, a verdict out.
//
// The header is trusted only because the client is (smtp.allow_networks and
// no AUTH identity or network that names a tenant): a stranger never gets
// here, and a client a tenant's network or login names is that tenant
// whatever the header says. Once the header has named the tenant, the checks
// are those of MAIL FROM for every other client: the envelope sender's domain,
// then every address of every From: field. The header is removed from every
// copy at delivery (mime::PlanOptions::strip_field).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "unsubrelay/mime/scanner.hpp"
#include "unsubrelay/smtp/reply.hpp"
#include "unsubrelay/tenant/directory.hpp"

namespace unsubrelay::smtp {

struct TenantVerdict {
  std::optional<Reply> refusal;  // 550 5.7.1, or nullopt: go on
  std::string tenant;            // the tenant the message belongs to
};

/// The 550 5.7.1 for an envelope sender whose domain is not the tenant's, or
/// nullopt (the null sender names no domain). At MAIL FROM, or after DATA when
/// the header named the tenant.
std::optional<Reply> sender_refusal(const std::string& sender, const std::string& tenant,
                                    const tenant::Directory& tenants);

/// tenant: the tenant chosen at MAIL FROM, "" when header_name names it.
/// header_name: smtp.tenant_header when the envelope awaits it, else "".
/// sender: the envelope sender (checked here when the header named the tenant).
TenantVerdict check_tenant_content(const mime::ScanResult& scanned, const std::string& tenant,
                                   const std::string& header_name, const std::string& sender,
                                   const tenant::Directory& tenants);

}  // namespace unsubrelay::smtp
