// tenants_config_test.cpp: the `tenants:` list (SPEC Part 3), smtp.tenant_header
// and smtp.default_tenant: a good configuration's effective settings, and
// each error with its path, line and message.
#include <algorithm>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "config_errors.hpp"
#include "unsubrelay/config/config.hpp"
#include "unsubrelay/token/token.hpp"

using namespace unsubrelay::config;
namespace fs = std::filesystem;

namespace {

class TenantsConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/unsubrelay-tenants-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    write("users", "# AUTH names\nacme-app:$6$salt$hash\nbeta-app:$y$j9T$salt$hash\nops:$6$salt$hash\n");
    write("top-keys.yaml", unsubrelay::token::generate_keys_file("top1"));
    write("acme-keys.yaml", unsubrelay::token::generate_keys_file("acme1"));
    write("beta-keys.yaml", unsubrelay::token::generate_keys_file("beta1"));
    write("admin-keys", "admin-key-1\n");
    write("acme-api-keys", "acme-key-1 read\nacme-key-2\n");
    write("beta-api-keys", "beta-key-1 read,write\n");
    write("secret", "s3cret\n");
    write("dkim.pem", "not parsed by the configuration\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& content) const {
    std::ofstream(dir_ / name, std::ios::binary) << content;
  }

  /// The top level below (10 lines; tenants: on line 10), then `tenants` from line 11.
  std::string yaml(const std::string& tenants) const {
    return "smtp:\n"                                                                       // 1
           "  allow_networks: [\"10.0.0.0/8\", \"127.0.0.0/8\"]\n"                         // 2
           "  auth: {users_file: " + path("users") + ", require_tls: false}\n"             // 3
           "unsubscribe:\n"                                                                // 4
           "  base_url: https://u.example.com\n"                                           // 5
           "  keys_file: " + path("top-keys.yaml") + "\n"                                  // 6
           "  topics: [{id: news, name: News}]\n"                                          // 7
           "http: {api_keys_file: " + path("admin-keys") + "}\n"                           // 8
           "feedback: {return_path_domain: bounces.example.com}\n"                         // 9
           "tenants:\n" + tenants;                                                         // 10
  }
  /// One minimal good tenant entry, on two lines.
  std::string tenant(const std::string& id, const std::string& domain, const std::string& keys) const {
    return "  - id: " + id + "\n    sender_domains: [" + domain + "]\n    keys_file: " + path(keys) + "\n";
  }

  fs::path dir_;
};

const Tenant& find(const LoadResult& r, const std::string& id) {
  const auto* t = r.config.find_tenant(id);
  if (!t) throw std::runtime_error("no tenant " + id);
  return *t;
}

std::string all_errors(const LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.to_string("f") + "\n";
  return out;
}

}  // namespace

TEST_F(TenantsConfig, ThreeTenantsAndTheirEffectiveSettings) {
  const auto r = load_text(yaml(
      "  - id: acme\n"                                                         // 11
      "    smtp_users: [acme-app]\n"                                           // 12
      "    networks: [\"10.20.0.0/16\"]\n"                                     // 13
      "    sender_domains: [Acme.Example, acme-mail.example]\n"                // 14
      "    keys_file: " + path("acme-keys.yaml") + "\n"                        // 15
      "    api_keys_file: " + path("acme-api-keys") + "\n"                     // 16
      "    unsubscribe: {base_url: \"https://unsub.acme.example\", feedback_id: \"{email_id}::acme\"}\n"
      "    feedback: {return_path_domain: Bounces.Acme.Example, soft_bounce_limit: 3}\n"
      "    dkim: [{domain: acme.example, selector: s1, key_file: " + path("dkim.pem") + "}]\n"
      "    ses: {configuration_set: acme-marketing, tenant: acme}\n"          // 20
      "    suppression: shared\n"
      "    limits: {messages_per_hour: 100000, recipients_per_day: 10000000000, delivery_weight: 5}\n"
      "    webhooks: [{url: \"https://hooks.acme.example/e\", secret_file: " + path("secret") + "}]\n"
      "  - id: beta\n"                                                         // 24
      "    networks: [\"10.20.30.0/24\"]\n"  // inside acme's: the most specific wins
      "    sender_domains: [beta.example]\n"
      "    keys_file: " + path("beta-keys.yaml") + "\n"
      "    api_keys_file: " + path("beta-api-keys") + "\n"
      "  - id: default\n"                                                      // 29
      "    smtp_users: [ops]\n"
      "    networks: [\"127.0.0.1/32\"]\n"
      "    limits: {delivery_weight: 2}\n"
      "webhooks: [{url: \"https://hooks.example.com/all\", secret_file: " + path("secret") + "}]\n"
      "dkim: [{domain: example.com, selector: top, key_file: " + path("dkim.pem") + "}]\n"));
  ASSERT_TRUE(r.ok()) << all_errors(r);
  ASSERT_EQ(r.config.tenants.size(), 3u);  // "default" declared: not added again

  const auto& acme = find(r, "acme");
  EXPECT_EQ(acme.line, 11);
  EXPECT_EQ(acme.smtp_users, std::vector<std::string>{"acme-app"});
  ASSERT_EQ(acme.networks.size(), 1u);
  EXPECT_EQ(acme.networks[0].to_string(), "10.20.0.0/16");
  EXPECT_EQ(acme.sender_domains, (std::vector<std::string>{"acme.example", "acme-mail.example"}));
  EXPECT_EQ(acme.api_keys_file, path("acme-api-keys"));
  // unsubscribe: key by key over the top level's.
  EXPECT_EQ(acme.unsubscribe.base_url, "https://unsub.acme.example");
  EXPECT_EQ(acme.unsubscribe.feedback_id, "{email_id}::acme");
  EXPECT_EQ(acme.unsubscribe.keys_file, path("acme-keys.yaml"));
  ASSERT_EQ(acme.unsubscribe.topics.size(), 1u);  // inherited
  EXPECT_EQ(acme.unsubscribe.topics[0].id, "news");
  EXPECT_EQ(acme.unsubscribe.campaign_header, "X-Campaign-Id");
  // feedback: its own domain and soft limit, the top level's hard limit.
  EXPECT_TRUE(acme.feedback.enabled);
  EXPECT_EQ(acme.feedback.return_path_domain, "bounces.acme.example");
  EXPECT_EQ(acme.feedback.soft_bounce_limit, 3u);
  EXPECT_EQ(acme.feedback.hard_bounce_limit, 1u);
  ASSERT_EQ(acme.dkim.size(), 1u);  // replaces the top level's list
  EXPECT_EQ(acme.dkim[0].domain, "acme.example");
  EXPECT_FALSE(acme.own_upstream);
  EXPECT_EQ(acme.ses.configuration_set, "acme-marketing");
  EXPECT_EQ(acme.ses.tenant, "acme");
  EXPECT_EQ(acme.suppression, TenantSuppression::shared);
  EXPECT_EQ(acme.limits.messages_per_hour, 100000u);
  EXPECT_EQ(acme.limits.recipients_per_day, 10000000000u);
  EXPECT_EQ(acme.limits.delivery_weight, 5u);
  ASSERT_EQ(acme.webhooks.size(), 1u);
  EXPECT_EQ(acme.webhooks[0].url, "https://hooks.acme.example/e");

  const auto& beta = find(r, "beta");
  EXPECT_EQ(beta.line, 24);
  EXPECT_EQ(beta.unsubscribe.base_url, "https://u.example.com");  // the top level's
  EXPECT_EQ(beta.unsubscribe.keys_file, path("beta-keys.yaml"));
  EXPECT_EQ(beta.feedback.return_path_domain, "bounces.example.com");
  ASSERT_EQ(beta.dkim.size(), 1u);
  EXPECT_EQ(beta.dkim[0].domain, "example.com");
  EXPECT_FALSE(beta.own_upstream);
  EXPECT_EQ(beta.suppression, TenantSuppression::tenant);
  EXPECT_EQ(beta.limits.messages_per_hour, 0u);
  EXPECT_EQ(beta.limits.delivery_weight, 1u);
  EXPECT_TRUE(beta.webhooks.empty());  // a tenant's webhooks get its events only

  const auto& d = find(r, "default");
  EXPECT_EQ(d.line, 29);
  EXPECT_EQ(d.smtp_users, std::vector<std::string>{"ops"});
  EXPECT_TRUE(d.sender_domains.empty());
  EXPECT_EQ(d.unsubscribe.keys_file, path("top-keys.yaml"));
  EXPECT_EQ(d.limits.delivery_weight, 2u);
  ASSERT_EQ(d.webhooks.size(), 1u);  // the top level's
  EXPECT_EQ(d.webhooks[0].url, "https://hooks.example.com/all");
}

TEST_F(TenantsConfig, DefaultExistsWithoutBeingDeclared) {
  const auto r = load_text(yaml(tenant("acme", "acme.example", "acme-keys.yaml")));
  ASSERT_TRUE(r.ok()) << all_errors(r);
  ASSERT_EQ(r.config.tenants.size(), 2u);
  const auto& d = find(r, "default");
  EXPECT_EQ(d.line, 0);
  EXPECT_EQ(d.unsubscribe.base_url, "https://u.example.com");
  EXPECT_EQ(d.unsubscribe.keys_file, path("top-keys.yaml"));
  EXPECT_TRUE(r.config.smtp.default_tenant.empty());
}

TEST_F(TenantsConfig, NoTenantsKeyNoTenants) {
  const auto r = load_text("smtp: {default_tenant: default}\n");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_TRUE(r.config.tenants.empty());
  EXPECT_EQ(r.config.smtp.default_tenant, "default");
}

// Parsed, but refused until the runtime has them: an operator would believe them in force.
TEST_F(TenantsConfig, MailtoDomainIsInstallationWide) {
  // u+TOKEN@mailto_domain mail comes from anyone, before any tenant is known.
  const auto r = load_text(yaml(tenant("acme", "acme.example", "acme-keys.yaml") +
                                "    unsubscribe: {mailto_domain: unsub.acme.example}\n"));
  EXPECT_TRUE(std::any_of(r.errors.begin(), r.errors.end(), [](const ConfigError& e) {
    return e.path == "tenants[0].unsubscribe.mailto_domain" && e.message.find("installation-wide") != std::string::npos;
  })) << all_errors(r);
}

TEST_F(TenantsConfig, TenantHeaderNeedsTenantsAndAFieldOfItsOwn) {
  EXPECT_TRUE(has_error(load_text("smtp:\n  tenant_header: X-Tenant\n"), "smtp.tenant_header", 2, "needs tenants"));
  const auto with = [&](const std::string& header) {
    auto text = yaml(tenant("acme", "acme.example", "acme-keys.yaml"));
    return load_text(text.replace(text.find("  auth:"), 0, "  tenant_header: " + header + "\n"));
  };
  const auto good = with("X-Tenant");
  EXPECT_TRUE(good.ok()) << all_errors(good);
  EXPECT_EQ(good.config.smtp.tenant_header, "X-Tenant");
  EXPECT_TRUE(has_error(with("x-campaign-id"), "smtp.tenant_header", 3, "a field the relay reads"));
  EXPECT_TRUE(has_error(with("From"), "smtp.tenant_header", 3, "a field the relay reads"));
}

TEST_F(TenantsConfig, AnUpstreamOverridesKeyByKey) {
  const auto r = load_text(yaml(tenant("acme", "acme.example", "acme-keys.yaml") +
                                "    upstream: {max_connections: 5}\n    suppression: shared\n"));
  EXPECT_TRUE(r.ok()) << all_errors(r);
  EXPECT_TRUE(r.config.find_tenant("acme")->own_upstream);
  EXPECT_EQ(r.config.find_tenant("acme")->upstream.max_connections, 5u);
}

TEST_F(TenantsConfig, TenantHeaderAndDefaultTenant) {
  EXPECT_TRUE(has_error(load_text("smtp:\n  tenant_header: \"X Tenant\"\n"), "smtp.tenant_header", 2,
                        "header field name"));
  EXPECT_TRUE(has_error(load_text("smtp:\n  tenant_header: \"X-Tenant:\"\n"), "smtp.tenant_header", 2,
                        "header field name"));
  EXPECT_TRUE(has_error(load_text("smtp:\n  tenant_header: " + std::string(65, 'x') + "\n"), "smtp.tenant_header",
                        2, "1-64"));
  EXPECT_TRUE(has_error(load_text("smtp:\n  default_tenant: acme\n"), "smtp.default_tenant", 2,
                        "no tenant 'acme' is declared"));
  const auto good = "  default_tenant: acme\n" + yaml(tenant("acme", "acme.example", "acme-keys.yaml")).substr(6);
  const auto r = load_text("smtp:\n" + good);
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_EQ(r.config.smtp.default_tenant, "acme");
}

TEST_F(TenantsConfig, TenantsMustBeANonEmptyList) {
  EXPECT_TRUE(has_error(load_text("tenants: {id: acme}\n"), "tenants", 1, "must be a list"));
  EXPECT_TRUE(has_error(load_text("tenants: []\n"), "tenants", 1, "remove the key for one tenant"));
}

TEST_F(TenantsConfig, IdIsRequiredPlainAndUnique) {
  auto r = load_text(yaml("  - sender_domains: [a.example]\n    keys_file: " + path("acme-keys.yaml") + "\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].id", 11, "is required: 1-32 characters of [a-z0-9-]")) << all_errors(r);
  r = load_text(yaml("  - id: Acme\n    sender_domains: [a.example]\n    keys_file: " + path("acme-keys.yaml") + "\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].id", 11, "[a-z0-9-]"));
  r = load_text(yaml("  - id: " + std::string(33, 'a') + "\n    sender_domains: [a.example]\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].id", 11, "1-32"));
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + tenant("acme", "b.example", "beta-keys.yaml")));
  EXPECT_TRUE(has_error(r, "tenants[1].id", 14, "'acme' is declared twice (also tenants[0].id)")) << all_errors(r);
}

TEST_F(TenantsConfig, SmtpUsersMustExistAndBelongToOneTenant) {
  auto r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    smtp_users: [acme-app, nobody]\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].smtp_users[1]", 14, "'nobody' is not in smtp.auth.users_file")) << all_errors(r);
  EXPECT_EQ(r.errors.size(), 1u);
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    smtp_users: [acme-app]\n" +
                     tenant("beta", "b.example", "beta-keys.yaml") + "    smtp_users: [acme-app]\n"));
  EXPECT_TRUE(has_error(r, "tenants[1].smtp_users[0]", 18, "'acme-app' is also in tenants[0].smtp_users[0]"))
      << all_errors(r);
}

TEST_F(TenantsConfig, SmtpUsersNeedSmtpAuth) {
  const auto r = load_text(
      "tenants:\n"
      "  - id: acme\n"
      "    sender_domains: [a.example]\n"
      "    keys_file: " + path("acme-keys.yaml") + "\n"
      "    smtp_users: [acme-app]\n");
  EXPECT_TRUE(has_error(r, "tenants[0].smtp_users", 5, "needs smtp.auth")) << all_errors(r);
}

TEST_F(TenantsConfig, NetworksLieInsideAllowNetworksAndAreNotShared) {
  auto r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    networks: [\"192.0.2.0/24\", x]\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].networks[0]", 14, "'192.0.2.0/24' is not inside any smtp.allow_networks"))
      << all_errors(r);
  EXPECT_TRUE(has_error(r, "tenants[0].networks[1]", 14, "not a CIDR"));
  // 10.0.0.0/7 holds 10.0.0.0/8 but is not inside it.
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    networks: [\"10.0.0.0/7\"]\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].networks[0]", 14, "not inside")) << all_errors(r);
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    networks: [\"10.1.0.0/16\"]\n" +
                     tenant("beta", "b.example", "beta-keys.yaml") + "    networks: [\"10.1.9.9/16\"]\n"));
  EXPECT_TRUE(has_error(r, "tenants[1].networks[0]", 18, "'10.1.9.9/16' is also in tenants[0].networks[0]"))
      << all_errors(r);
}

TEST_F(TenantsConfig, SenderDomainsRequiredValidAndNotShared) {
  auto r = load_text(yaml("  - id: acme\n    keys_file: " + path("acme-keys.yaml") + "\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].sender_domains", 11, "is required")) << all_errors(r);
  r = load_text(yaml("  - id: acme\n    sender_domains: []\n    keys_file: " + path("acme-keys.yaml") + "\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].sender_domains", 12, "is required")) << all_errors(r);
  r = load_text(yaml(tenant("acme", "\"acme..example\"", "acme-keys.yaml")));
  EXPECT_TRUE(has_error(r, "tenants[0].sender_domains[0]", 12, "'acme..example' is not a domain name"));
  r = load_text(yaml(tenant("acme", "acme.example", "acme-keys.yaml") + tenant("beta", "ACME.example", "beta-keys.yaml")));
  EXPECT_TRUE(has_error(r, "tenants[1].sender_domains[0]", 15, "'acme.example' is also in tenants[0].sender_domains[0]"))
      << all_errors(r);
  r = load_text(yaml("  - id: default\n    smtp_users: [ops]\n"));  // default: optional
  EXPECT_TRUE(r.ok()) << all_errors(r);
}

TEST_F(TenantsConfig, KeysFileRequiredReadableAndItsKeyIdsUnique) {
  auto r = load_text(yaml("  - id: acme\n    sender_domains: [a.example]\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].keys_file", 11, "is required")) << all_errors(r);
  r = load_text(yaml(tenant("acme", "a.example", "missing.yaml")));
  EXPECT_TRUE(has_error(r, "tenants[0].keys_file", 13, "cannot read file")) << all_errors(r);
  r = load_text(yaml(tenant("acme", "a.example", "top-keys.yaml")));
  EXPECT_TRUE(has_error(r, "tenants[0].keys_file", 13, "key id top1 is also in unsubscribe.keys_file")) << all_errors(r);
  write("acme-again.yaml", unsubrelay::token::generate_keys_file("acme1"));
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + tenant("beta", "b.example", "acme-again.yaml")));
  EXPECT_TRUE(has_error(r, "tenants[1].keys_file", 16, "key id acme1 is also in tenants[0].keys_file")) << all_errors(r);
  write("bad-keys.yaml", "keys: [{id: x, secret: c2hvcnQ=}]\n");
  r = load_text(yaml(tenant("acme", "a.example", "bad-keys.yaml")));
  EXPECT_TRUE(has_error(r, "tenants[0].keys_file", 13, "at least 32 bytes")) << all_errors(r);
  r = load_text(yaml("  - id: default\n    keys_file: " + path("acme-keys.yaml") + "\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].keys_file", 12, "signs with unsubscribe.keys_file")) << all_errors(r);
}

TEST_F(TenantsConfig, KeysFileThatIsNoRegularFileIsNotRead) {
  const auto r = load_text(yaml("  - id: acme\n    sender_domains: [a.example]\n    keys_file: /dev/zero\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].keys_file", 13, "'/dev/zero' is not a regular file")) << all_errors(r);
}

TEST_F(TenantsConfig, KeyIdOfTheGeneratedKeysFileIsTaken) {
  // Without unsubscribe.keys_file the relay makes var/keys.yaml with key id k1 (the default tenant's).
  write("k1.yaml", unsubrelay::token::generate_keys_file("k1"));
  const auto r = load_text("tenants:\n" + tenant("acme", "a.example", "k1.yaml"));
  EXPECT_TRUE(has_error(r, "tenants[0].keys_file", 4, "key id k1 is also in the default tenant's keys")) << all_errors(r);
}

TEST_F(TenantsConfig, ApiKeysAreCheckedAndBelongToOneTenant) {
  write("bad-api-keys", "k3y reed\n");
  auto r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    api_keys_file: " + path("bad-api-keys") + "\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].api_keys_file", 14, path("bad-api-keys") + ":1:")) << all_errors(r);
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    api_keys_file: " + path("nope") + "\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].api_keys_file", 14, "cannot read file"));
  write("reused", "# a comment\nadmin-key-1 read\n");
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    api_keys_file: " + path("reused") + "\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].api_keys_file", 14,
                        path("reused") + ":2: this key is also in http.api_keys_file (" + path("admin-keys") + ":1)"))
      << all_errors(r);
  EXPECT_EQ(all_errors(r).find("admin-key-1"), std::string::npos);  // errors never quote a key
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    api_keys_file: " + path("acme-api-keys") + "\n" +
                     tenant("beta", "b.example", "beta-keys.yaml") + "    api_keys_file: " + path("acme-api-keys") + "\n"));
  EXPECT_TRUE(has_error(r, "tenants[1].api_keys_file", 18, ":1: this key is also in tenants[0].api_keys_file")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "tenants[1].api_keys_file", 18, ":2: this key is also in tenants[0].api_keys_file"));
}

TEST_F(TenantsConfig, UnsubscribeOverridesButNotInstallationWideKeys) {
  auto r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") +
                          "    unsubscribe:\n"                          // 14
                          "      keys_file: " + path("beta-keys.yaml") + "\n"
                          "      topic_header: X-T\n"                   // 16
                          "      placeholders: [\"%%U%%\"]\n"
                          "      campaign_header: X-C\n"
                          "      launch_header: X-L\n"
                          "      launch_kind_header: X-K\n"             // 20
                          "      base_url: ftp://x\n"
                          "      colour: blue\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].unsubscribe.keys_file", 15, "a tenant's token keys are tenants[0].keys_file"))
      << all_errors(r);
  for (const auto& [key, line] : std::initializer_list<std::pair<const char*, int>>{
           {"topic_header", 16}, {"placeholders", 17}, {"campaign_header", 18}, {"launch_header", 19},
           {"launch_kind_header", 20}}) {
    EXPECT_TRUE(has_error(r, std::string("tenants[0].unsubscribe.") + key, line, "installation-wide: set it at the top level"))
        << key;
  }
  EXPECT_TRUE(has_error(r, "tenants[0].unsubscribe.base_url", 21, "must start with http:// or https://"));
  EXPECT_TRUE(has_error(r, "tenants[0].unsubscribe.colour", 22, "unknown key"));
  EXPECT_EQ(r.errors.size(), 8u) << all_errors(r);
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") +
                     "    unsubscribe: {topics: [{id: deals, name: Deals}], suppression: topic}\n"));
  ASSERT_TRUE(r.ok()) << all_errors(r);
  const auto& topics = find(r, "acme").unsubscribe.topics;
  ASSERT_EQ(topics.size(), 1u);  // its list replaces the top level's
  EXPECT_EQ(topics[0].id, "deals");
}

TEST_F(TenantsConfig, FeedbackTakesOnlyTheSendersKeys) {
  const auto r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") +
                                "    feedback:\n"                        // 14
                                "      complaint_addresses: [fbl@a.example]\n"
                                "      forward_per_hour: 3\n"
                                "      hard_bounce_limit: 1001\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].feedback.complaint_addresses", 15, "installation-wide: set it at the top level"))
      << all_errors(r);
  EXPECT_TRUE(has_error(r, "tenants[0].feedback.forward_per_hour", 16, "installation-wide"));
  EXPECT_TRUE(has_error(r, "tenants[0].feedback.hard_bounce_limit", 17, "between 0 and 1000"));
  EXPECT_EQ(r.errors.size(), 3u);
}

TEST_F(TenantsConfig, FeedbackNeedsTheTopLevelSection) {
  const auto r = load_text("tenants:\n" + tenant("acme", "a.example", "acme-keys.yaml") +
                           "    feedback: {return_path_domain: b.a.example}\n");
  EXPECT_TRUE(has_error(r, "tenants[0].feedback", 5, "needs the top-level feedback section")) << all_errors(r);
}

TEST_F(TenantsConfig, ReturnPathDomainsAreNotShared) {
  auto r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") +
                          "    feedback: {return_path_domain: BOUNCES.example.com}\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].feedback.return_path_domain", 14,
                        "'bounces.example.com' is also feedback.return_path_domain"))
      << all_errors(r);
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    feedback: {return_path_domain: b.x.example}\n" +
                     tenant("beta", "b.example", "beta-keys.yaml") + "    feedback: {return_path_domain: b.x.example}\n"));
  EXPECT_TRUE(has_error(r, "tenants[1].feedback.return_path_domain", 18,
                        "'b.x.example' is also tenants[0].feedback.return_path_domain"))
      << all_errors(r);
  r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    feedback: {return_path_domain: \"-x\"}\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].feedback.return_path_domain", 14, "must be a domain name"));
}

TEST_F(TenantsConfig, DkimUpstreamAndWebhooksErrorsNameTheTenant) {
  const auto r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") +
                                "    dkim: [{domain: a.example}]\n"                      // 14
                                "    upstream: {kind: smtp, host: \"\"}\n"                // 15
                                "    webhooks: [{url: ftp://x, secret_file: " + path("secret") + "}]\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].dkim[0].selector", 14, "is required")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "tenants[0].dkim[0].key_file", 14, "is required"));
  EXPECT_TRUE(has_error(r, "tenants[0].upstream.host", 15, "is required for kind smtp and ses"));
  EXPECT_TRUE(has_error(r, "tenants[0].webhooks[0].url", 16, "must start with http:// or https://"));
  EXPECT_EQ(r.errors.size(), 4u);
  EXPECT_TRUE(has_error(load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    dkim: {}\n")),
                        "tenants[0].dkim", 14, "must be a list"));
}

TEST_F(TenantsConfig, DefaultUsesTheTopLevelSections) {
  const auto r = load_text(yaml("  - id: default\n"
                                "    unsubscribe: {base_url: \"https://x.example\"}\n"   // 12
                                "    upstream: {kind: directory}\n"
                                "    webhooks: []\n"));
  EXPECT_TRUE(has_error(r, "tenants[0].unsubscribe", 12, "uses the top-level unsubscribe section")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "tenants[0].upstream", 13, "uses the top-level upstream section"));
  EXPECT_TRUE(has_error(r, "tenants[0].webhooks", 14, "uses the top-level webhooks section"));
  EXPECT_EQ(r.errors.size(), 3u);
}

TEST_F(TenantsConfig, SesSuppressionLimitsAndUnknownKeys) {
  const auto r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") +
                                "    ses: {configuration_set: \"a b\", tenant: \"\", region: x}\n"   // 14
                                "    suppression: global\n"                                          // 15
                                "    limits:\n"                                                      // 16
                                "      messages_per_hour: 1000000001\n"
                                "      recipients_per_day: 10000000001\n"
                                "      delivery_weight: 0\n"
                                "    colour: blue\n"));                                              // 20
  EXPECT_TRUE(has_error(r, "tenants[0].ses.configuration_set", 14, "1-64 characters of [A-Za-z0-9_-]")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "tenants[0].ses.tenant", 14, "1-64 characters"));
  EXPECT_TRUE(has_error(r, "tenants[0].ses.region", 14, "unknown key"));
  EXPECT_TRUE(has_error(r, "tenants[0].suppression", 15, "must be one of: tenant | shared"));
  EXPECT_TRUE(has_error(r, "tenants[0].limits.messages_per_hour", 17, "between 0 and 1000000000"));
  EXPECT_TRUE(has_error(r, "tenants[0].limits.recipients_per_day", 18, "between 0 and 10000000000"));
  EXPECT_TRUE(has_error(r, "tenants[0].limits.delivery_weight", 19, "between 1 and 1000"));
  EXPECT_TRUE(has_error(r, "tenants[0].colour", 20, "unknown key"));
  EXPECT_EQ(r.errors.size(), 8u);
}

TEST_F(TenantsConfig, ErrorsPrintAsFileLinePathMessage) {
  const auto r = load_text(yaml(tenant("acme", "a.example", "acme-keys.yaml") + "    colour: blue\n"), "t.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string("t.yaml"), "t.yaml:14: tenants[0].colour: unknown key");
}

TEST(TenantNetworks, ContainmentAndEquality) {
  const auto outer = *Network::parse("10.0.0.0/8");
  EXPECT_TRUE(outer.contains(*Network::parse("10.20.0.0/16")));
  EXPECT_TRUE(outer.contains(outer));
  EXPECT_FALSE(outer.contains(*Network::parse("10.0.0.0/7")));
  EXPECT_FALSE(outer.contains(*Network::parse("11.0.0.0/16")));
  EXPECT_FALSE(outer.contains(*Network::parse("::a00:0/104")));  // another family
  EXPECT_TRUE(*Network::parse("10.1.2.3/16") == *Network::parse("10.1.0.0/16"));
  EXPECT_FALSE(*Network::parse("10.1.0.0/16") == *Network::parse("10.1.0.0/17"));
  EXPECT_EQ(Network::parse("2001:db8::/48")->prefix_length(), 48u);
}
