// tenant_test.cpp: tenant selection and sender domains (tenant/directory.hpp),
// and the SMTP session's MAIL FROM checks with tenants (SPEC Part 3).
#include <gtest/gtest.h>

#include "unsubrelay/smtp/session.hpp"
#include "unsubrelay/smtp/tenant_intake.hpp"
#include "unsubrelay/tenant/directory.hpp"

using namespace unsubrelay;

namespace {

config::Tenant tenant(const std::string& id, std::vector<std::string> users, std::vector<std::string> networks,
                      std::vector<std::string> domains) {
  config::Tenant t;
  t.id = id;
  t.smtp_users = std::move(users);
  for (const auto& n : networks) t.networks.push_back(*config::Network::parse(n));
  t.sender_domains = std::move(domains);
  return t;
}

config::Config two_tenants() {
  config::Config c;
  c.tenants.push_back(tenant("acme", {"acme-app"}, {"10.20.0.0/16"}, {"acme.example"}));
  c.tenants.push_back(tenant("beta", {"beta-app"}, {"10.20.30.0/24"}, {"beta.example", "news.acme.example"}));
  return c;
}

boost::asio::ip::address ip(const char* text) { return boost::asio::ip::make_address(text); }

}  // namespace

TEST(TenantDirectory, AuthFirstThenMostSpecificNetworkThenDefault) {
  auto c = two_tenants();
  tenant::Directory d(c);
  EXPECT_EQ(d.select("beta-app", ip("10.20.1.1")), "beta");  // AUTH beats the network
  EXPECT_EQ(d.select("", ip("10.20.1.1")), "acme");
  EXPECT_EQ(d.select("", ip("10.20.30.7")), "beta");         // the /24 inside acme's /16
  EXPECT_EQ(d.select("someone-else", ip("10.20.30.7")), "beta");
  EXPECT_EQ(d.select("", ip("127.0.0.1")), std::nullopt);
  c.smtp.default_tenant = "default";
  EXPECT_EQ(tenant::Directory(c).select("", ip("127.0.0.1")), "default");
}

TEST(TenantDirectory, DomainsBelongToTheMostSpecificOwner) {
  tenant::Directory d(two_tenants());
  EXPECT_TRUE(d.domain_allowed("acme", "acme.example"));
  EXPECT_TRUE(d.domain_allowed("acme", "Mail.ACME.example."));
  EXPECT_FALSE(d.domain_allowed("acme", "news.acme.example"));
  EXPECT_TRUE(d.domain_allowed("beta", "x.news.acme.example"));
  EXPECT_FALSE(d.domain_allowed("beta", "acme.example"));
  EXPECT_FALSE(d.domain_allowed("acme", "notacme.example"));
  EXPECT_FALSE(d.domain_allowed("acme", "elsewhere.example"));
  EXPECT_TRUE(d.domain_allowed("default", "elsewhere.example"));  // nobody's domain: default lists none
  EXPECT_FALSE(d.domain_allowed("default", "acme.example"));
  EXPECT_FALSE(d.domain_allowed("acme", ""));
  EXPECT_TRUE(tenant::Directory().domain_allowed("default", "anything.example"));  // no tenants
}

TEST(TenantDirectory, FromDomainsSeeThroughDisplayNames) {
  using V = std::vector<std::string>;
  EXPECT_EQ(tenant::from_domains("Acme <news@Acme.Example>"), V{"acme.example"});
  EXPECT_EQ(tenant::from_domains("\"boss@other.example\" <a@acme.example>"), V{"acme.example"});  // quoted: a name
  EXPECT_EQ(tenant::from_domains("boss@other.example <a@acme.example>"), (V{"other.example", "acme.example"}));
  EXPECT_EQ(tenant::from_domains("a@acme.example (sent for x@other.example)"), V{"acme.example"});
  EXPECT_EQ(tenant::from_domains("a@acme.example, b@beta.example"), (V{"acme.example", "beta.example"}));
  EXPECT_EQ(tenant::from_domains("\"a@b\"@acme.example"), V{"acme.example"});
  EXPECT_TRUE(tenant::from_domains("undisclosed").empty());
  EXPECT_EQ(tenant::address_domain("x@Acme.Example"), "acme.example");
  EXPECT_EQ(tenant::address_domain(""), "");
}

TEST(TenantSession, MailFromNeedsATenantAndItsDomain) {
  const auto c = two_tenants();
  const tenant::Directory d(c);
  smtp::SessionPolicy p;
  p.hostname = "relay.test";
  p.client_address = "10.20.30.7";  // beta's network
  p.client_trusted = true;
  p.tenants = &d;
  smtp::Session s(p);
  s.on_line("EHLO client.test");
  auto refused = s.on_line("MAIL FROM:<news@acme.example>");
  EXPECT_EQ(refused.replies.back().code, 550);
  EXPECT_EQ(refused.replies.back().enhanced, "5.7.1");
  EXPECT_NE(refused.replies.back().lines.front().find("acme.example"), std::string::npos);
  EXPECT_EQ(s.on_line("MAIL FROM:<news@beta.example>").replies.back().code, 250);
  EXPECT_EQ(s.envelope().tenant, "beta");
  s.on_line("RSET");
  EXPECT_EQ(s.on_line("MAIL FROM:<>").replies.back().code, 250);  // the null sender names no domain

  p.client_address = "127.0.0.1";  // trusted, but nobody's: no default_tenant
  smtp::Session nobody(p);
  nobody.on_line("EHLO client.test");
  auto none = nobody.on_line("MAIL FROM:<x@elsewhere.example>");
  EXPECT_EQ(none.replies.back().code, 550);
  EXPECT_NE(none.replies.back().lines.front().find("no tenant"), std::string::npos);

  p.client_trusted = false;  // a stranger bringing a bounce: no submission, no tenant
  smtp::Session stranger(p);
  stranger.on_line("EHLO mx.example");
  EXPECT_EQ(stranger.on_line("MAIL FROM:<>").replies.back().code, 250);
  EXPECT_EQ(stranger.envelope().tenant, "");
}

TEST(TenantSession, QuotaRefusalIsTemporary) {
  const auto c = two_tenants();
  const tenant::Directory d(c);
  smtp::SessionPolicy p;
  p.hostname = "relay.test";
  p.client_address = "10.20.1.1";
  p.client_trusted = true;
  p.tenants = &d;
  p.limits.max_recipients = 10;
  p.quota_refusal = [](const std::string& t, std::size_t n) {
    return t == "acme" && n > 1 ? std::string("quota: recipients_per_day reached") : std::string();
  };
  smtp::Session s(p);
  s.on_line("EHLO client.test");
  EXPECT_EQ(s.on_line("MAIL FROM:<a@acme.example>").replies.back().code, 250);
  EXPECT_EQ(s.on_line("RCPT TO:<x@example.org>").replies.back().code, 250);
  auto over = s.on_line("RCPT TO:<y@example.org>");
  EXPECT_EQ(over.replies.back().code, 451);
  EXPECT_EQ(over.replies.back().enhanced, "4.7.1");
}

// smtp.tenant_header: a trusted client that no login or network names waits
// for the header; one that a network names is that tenant whatever it says.
TEST(TenantSession, TheHeaderNamesTheTenantOfAnUnnamedTrustedClient) {
  const auto c = two_tenants();
  const tenant::Directory d(c);
  smtp::SessionPolicy p;
  p.hostname = "relay.test";
  p.client_address = "127.0.0.1";
  p.client_trusted = true;
  p.tenants = &d;
  p.tenant_header = "X-Tenant";
  smtp::Session s(p);
  s.on_line("EHLO client.test");
  EXPECT_EQ(s.on_line("MAIL FROM:<x@anything.example>").replies.back().code, 250);  // checked after DATA
  EXPECT_TRUE(s.envelope().tenant_by_header);
  EXPECT_EQ(s.envelope().tenant, "");
  EXPECT_EQ(s.on_line("RCPT TO:<r@example.org>").replies.back().code, 250);

  p.client_address = "10.20.1.1";  // acme's network: the header changes nothing
  smtp::Session networked(p);
  networked.on_line("EHLO client.test");
  EXPECT_EQ(networked.on_line("MAIL FROM:<x@beta.example>").replies.back().code, 550);
  EXPECT_EQ(networked.on_line("MAIL FROM:<x@acme.example>").replies.back().code, 250);
  EXPECT_FALSE(networked.envelope().tenant_by_header);

  p.client_address = "192.0.2.9";  // not trusted: no header, no relaying
  p.client_trusted = false;
  smtp::Session stranger(p);
  stranger.on_line("EHLO mx.example");
  EXPECT_EQ(stranger.on_line("MAIL FROM:<>").replies.back().code, 250);
  EXPECT_FALSE(stranger.envelope().tenant_by_header);
}

TEST(TenantIntake, TheHeaderIsCheckedLikeAnEnvelope) {
  const auto c = two_tenants();
  const tenant::Directory d(c);
  const auto check = [&](const std::string& header, const std::string& sender, const std::string& tenant = "") {
    return smtp::check_tenant_content(mime::scan(header + "\r\nbody\r\n"), tenant, tenant.empty() ? "X-Tenant" : "",
                                      sender, d);
  };
  auto ok = check("X-Tenant: beta\r\nFrom: <n@beta.example>\r\n", "n@beta.example");
  EXPECT_FALSE(ok.refusal);
  EXPECT_EQ(ok.tenant, "beta");
  EXPECT_FALSE(check("x-tenant:  beta \r\nX-TENANT: beta\r\nFrom: n@beta.example\r\n", "").refusal);
  const auto refused = [&](const smtp::TenantVerdict& v, const std::string& text) {
    if (!v.refusal) return ::testing::AssertionFailure() << "not refused";
    if (v.refusal->code != 550 || v.refusal->lines.front().find(text) == std::string::npos) {
      return ::testing::AssertionFailure() << v.refusal->code << " " << v.refusal->lines.front();
    }
    return ::testing::AssertionSuccess();
  };
  EXPECT_TRUE(refused(check("X-Tenant: beta\r\nFrom: n@acme.example\r\n", ""), "From: header domain acme.example"));
  EXPECT_TRUE(refused(check("X-Tenant: beta\r\nFrom: n@beta.example\r\n", "n@acme.example"), "domain acme.example"));
  EXPECT_TRUE(refused(check("X-Tenant: beta\r\nX-Tenant: acme\r\nFrom: n@beta.example\r\n", ""), "more than one"));
  EXPECT_TRUE(refused(check("X-Tenant: gamma\r\nFrom: n@beta.example\r\n", ""), "names no tenant"));
  EXPECT_TRUE(refused(check("From: n@beta.example\r\n", ""), "no X-Tenant: header"));
  EXPECT_TRUE(refused(check("X-Tenant: beta\r\n", ""), "no From: header"));
  // A tenant chosen at MAIL FROM: only its From: is checked here.
  EXPECT_TRUE(refused(check("X-Tenant: beta\r\nFrom: n@beta.example\r\n", "", "acme"), "beta.example"));

  auto with_default = c;
  with_default.smtp.default_tenant = "acme";
  const tenant::Directory dd(with_default);
  auto fallback = smtp::check_tenant_content(mime::scan("From: n@acme.example\r\n\r\nbody\r\n"), "", "X-Tenant",
                                             "", dd);
  EXPECT_FALSE(fallback.refusal);
  EXPECT_EQ(fallback.tenant, "acme");
}

TEST(TenantIntake, TheHeaderLeavesEveryCopy) {
  EXPECT_EQ(mime::without_field("A: 1\r\nX-Tenant: a\r\n b\r\nB: 2\r\nx-tenant: c\r\n\r\nX-Tenant: body\r\n", "X-Tenant"),
            "A: 1\r\nB: 2\r\n\r\nX-Tenant: body\r\n");
  EXPECT_EQ(mime::without_field("A: 1\r\n\r\nX-Tenant: body\r\n", "X-Tenant"), std::nullopt);
}
