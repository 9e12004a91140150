// make_seeds.cpp: writes seed inputs the fuzzers cannot find by themselves:
// tokens signed with the fuzz key (a random input almost never carries a valid
// HMAC), and requests and SMTP dialogues that reach every verb and route.
// Found by scripts/fuzz-coverage.sh: without them, AUTH, STARTTLS, RSET and the
// token-holding HTTP routes were never reached. Usage: make_seeds CORPUS_DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "unsubrelay/spool/segment_log.hpp"
#include "unsubrelay/token/token.hpp"

namespace {

void put(const std::filesystem::path& dir, const std::string& name, const std::string& content) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << content;
}

/// config: tenants (SPEC Part 3) whose files exist, so that the loader gets
/// past "cannot read file" to the checks across tenants. The files live
/// beside the corpus directories (not in one: they are no inputs).
void put_tenants_seed(const std::filesystem::path& root) {
  const auto files = std::filesystem::absolute(root / "config-files");
  const auto file = [&](const std::string& name, const std::string& content) {
    put(files, name, content);
    return (files / name).string();
  };
  const auto users = file("users", "acme-app:$6$salt$hash\nops:$6$salt$hash\n");
  const auto top_keys = file("top-keys.yaml", unsubrelay::token::generate_keys_file("top1"));
  const auto acme_keys = file("acme-keys.yaml", unsubrelay::token::generate_keys_file("acme1"));
  const auto beta_keys = file("beta-keys.yaml", unsubrelay::token::generate_keys_file("beta1"));
  const auto admin = file("admin-keys", "admin-1\n");
  const auto acme_api = file("acme-api-keys", "acme-1 read\n");
  const auto secret = file("secret", "s3cret\n");
  put(root / "config", "tenants.yaml",
      "smtp:\n  allow_networks: [\"10.0.0.0/8\", \"127.0.0.0/8\"]\n"
      "  auth: {users_file: " + users + ", require_tls: false}\n"
      "  tenant_header: X-Tenant\n  default_tenant: default\n"
      "unsubscribe: {keys_file: " + top_keys + ", topics: [{id: news, name: News}]}\n"
      "http: {api_keys_file: " + admin + "}\n"
      "feedback: {return_path_domain: bounces.example.com}\n"
      "tenants:\n"
      "  - id: acme\n    smtp_users: [acme-app]\n    networks: [\"10.20.0.0/16\"]\n"
      "    sender_domains: [acme.example]\n    keys_file: " + acme_keys + "\n"
      "    api_keys_file: " + acme_api + "\n"
      "    unsubscribe: {base_url: \"https://unsub.acme.example\", topics: [{id: deals, name: Deals}]}\n"
      "    feedback: {return_path_domain: bounces.acme.example, soft_bounce_limit: 3}\n"
      "    dkim: [{domain: acme.example, selector: s1, key_file: " + secret + "}]\n"
      "    upstream: {kind: ses, host: email-smtp.eu-west-1.amazonaws.com}\n"
      "    ses: {configuration_set: acme-marketing, tenant: acme}\n    suppression: shared\n"
      "    limits: {messages_per_hour: 100000, recipients_per_day: 1000000, delivery_weight: 5}\n"
      "    webhooks: [{url: \"https://hooks.acme.example/e\", secret_file: " + secret + "}]\n"
      "  - id: beta\n    networks: [\"10.20.30.0/24\"]\n    sender_domains: [beta.example]\n"
      "    keys_file: " + beta_keys + "\n"
      "  - id: default\n    smtp_users: [ops]\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace unsubrelay::token;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
    return 2;
  }
  const std::filesystem::path root = argv[1];
  std::vector<std::string> errors;
  const auto keys = KeySet::from_keys({{"k1", std::string(32, 'k')}}, errors);  // the fuzzers' key
  if (!keys) return 1;
  Claims c;
  for (std::size_t i = 0; i < c.uid.size(); ++i) c.uid[i] = static_cast<unsigned char>(i * 7 + 1);
  c.email_id = "222222222";
  c.launch_list_id = "111111111";
  c.issued = 1'700'000'000;
  const auto token = sign(c, keys->signing());
  Claims expiring = c;
  expiring.expires = 1'700'000'100;
  const auto expired = sign(expiring, keys->signing());

  put(root / "token", "valid", token);
  put(root / "token", "url", "https://unsub.example.com/u/" + token);
  put(root / "token", "expired", expired);
  Claims topical = c;
  topical.topic = "offers";
  const auto with_topic = sign(topical, keys->signing());  // version 2
  put(root / "token", "topic", with_topic);

  // http: METHOD \n TARGET \n CONTENT-TYPE \n AUTHORIZATION \n BODY
  const auto http = root / "http";
  put(http, "page", "GET\n/u/" + token + "\n\n\n");
  put(http, "head", "HEAD\n/u/" + token + "\n\n\n");
  put(http, "one-click", "POST\n/u/" + token + "\napplication/x-www-form-urlencoded\n\nList-Unsubscribe=One-Click");
  put(http, "one-click-multipart",
      "POST\n/u/" + token + "\nmultipart/form-data; boundary=b\n\n--b\r\nContent-Disposition: form-data; "
      "name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b--\r\n");
  put(http, "confirm", "POST\n/u/" + token + "\napplication/x-www-form-urlencoded\n\nconfirm=1");
  put(http, "resubscribe", "POST\n/u/" + token + "/resubscribe\napplication/x-www-form-urlencoded\n\n");
  put(http, "expired", "GET\n/u/" + expired + "\n\n\n");
  put(http, "token-api", "GET\n/api/v1/tokens/" + token + "\n\n\n");
  put(http, "token-api-topic", "GET\n/api/v1/tokens/" + with_topic + "\n\n\n");
  put(http, "token-unsubscribe", "POST\n/api/v1/tokens/" + token + "/unsubscribe\n\n\n");
  put(http, "token-resubscribe", "POST\n/api/v1/tokens/" + with_topic + "/resubscribe\n\n\n");
  put(http, "token-preflight", "OPTIONS\n/api/v1/tokens/" + token + "/unsubscribe\n\n\n");
  put(http, "page-script", "GET\n/js/unsubscribe.js\n\n\n");
  put(http, "emarsys",
      "POST\n/api/v2/email/unsubscribe\napplication/json\nBearer key\n"
      "{\"launch_list_id\":\"111111111\",\"email_id\":\"222222222\",\"uid\":\"" + uid_text(c.uid) + "\"}");
  put(http, "emarsys-numbers",
      "POST\n/api/v2/email/unsubscribe\napplication/json\nBearer key\n"
      "{\"launch_list_id\":111111111,\"email_id\":222222222,\"uid\":\"x\"}");
  put(http, "summary", "GET\n/api/v2/email/222222222/responses/summary?launch_list_id=111111111\n\nBearer key\n");
  put(http, "contact-show", "GET\n/api/v1/contacts/Alice%40Example.org\n\nBearer key\n");
  put(http, "contact-erase", "DELETE\n/api/v1/contacts/alice@example.org\n\nBearer key\n");
  put(http, "events", "GET\n/api/v1/events?types=bounced,complaint&since=1&cursor=0&limit=10\n\nBearer key\n");
  put(http, "metrics", "GET\n/metrics\n\n\n");
  put(http, "health", "GET\n/healthz\n\n\n");

  const auto smtp = root / "smtp";
  put(smtp, "auth-plain",
      "EHLO x\r\nAUTH PLAIN AHUAcA==\r\nMAIL FROM:<a@b.c> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<d@e.f>\r\n"
      "RSET\r\nNOOP\r\nVRFY x\r\nEXPN y\r\nHELP\r\nQUIT\r\n");
  put(smtp, "auth-login", "EHLO x\r\nAUTH LOGIN\r\ndQ==\r\ncA==\r\nMAIL FROM:<>\r\nRCPT TO:<u+" + token +
                              "@unsub.test>\r\nDATA\r\nSubject: x\r\n\r\n.\r\n");
  put(smtp, "auth-plain-split", "EHLO x\r\nAUTH PLAIN\r\nAHUAcA==\r\nAUTH LOGIN dQ==\r\ncA==\r\n*\r\n");
  put(smtp, "starttls", "EHLO x\r\nSTARTTLS\r\nEHLO y\r\nMAIL FROM:<a@b.c>\r\nBDAT 10 LAST\r\nHELO z\r\n");
  put_tenants_seed(root);
  // segment: records with valid checksums (a random input never has one), and one torn at the end.
  using unsubrelay::spool::RecordKind;
  using unsubrelay::spool::encode_record;
  const auto records = encode_record(RecordKind::message, "0123456789ABCDEFUNSUBRELAY-QUEUE 1\nT 1\n") +
                       encode_record(RecordKind::done, std::string("0123456789ABCDEF\0\0\0\0D", 21)) +
                       encode_record(RecordKind::removed, "0123456789ABCDEF");
  put(root / "segment", "records", records);
  put(root / "segment", "torn", records + encode_record(RecordKind::deferred, "0123456789ABCDEF 1 2 451").substr(0, 20));
  return 0;
}
