// config.hpp: the YAML configuration, loaded and validated in one pass.
//
// Every key of ../shared/SPEC.md is known here; an unknown key, a wrong type,
// a missing file or a bad CIDR is an error reported with its YAML path and
// line, and loading collects every error instead of stopping at the first.
// Each limit the relay enforces is a named field with its default beside it
// (Postfix's VAR_/DEF_ pairs).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/config/network.hpp"

namespace unsubrelay::config {

struct Endpoint {
  std::string host;  // literal address; "::1" for IPv6
  std::uint16_t port = 0;
  std::string to_string() const;
};

struct TlsFiles {
  std::string cert;
  std::string key;
};

struct SmtpAuth {
  std::string users_file;
  bool require_tls = true;  // AUTH offered only after STARTTLS (RFC 4954 §4)
};

/// Every bound an SMTP session enforces, with the RFC reply it gets.
struct SmtpLimits {
  std::uint64_t max_message_bytes = 26214400;  // SIZE (RFC 1870); 552 5.3.4
  std::size_t max_recipients = 1000;           // 452 4.5.3
  std::size_t max_connections = 1000;          // 421 4.7.0 at connect
  std::size_t max_command_line = 512;          // RFC 5321 §4.5.3.1.4; 500 5.5.2
  std::size_t max_text_line = 1000;            // RFC 5321 §4.5.3.1.6, CRLF included
  std::size_t max_auth_line = 12288;           // RFC 4954 §4
  std::size_t max_errors = 10;                 // junk commands before 421 and disconnect
  unsigned command_timeout_seconds = 300;      // RFC 5321 §4.5.3.2.7 (server timeout)
  unsigned data_timeout_seconds = 180;         // RFC 5321 §4.5.3.2.5 (data block)
};

struct Smtp {
  std::vector<Endpoint> listen{{"127.0.0.1", 2525}};
  std::vector<Endpoint> listen_tls;
  std::string hostname;  // default: the machine's host name
  SmtpLimits limits;
  std::vector<Network> allow_networks;
  std::optional<TlsFiles> tls;
  std::optional<SmtpAuth> auth;
  unsigned io_threads = 0;  // SMTP sessions and HTTP; 0 = one per core (2 to 8)
  // SPEC Part 3 (tenants): a trusted client (allow_networks) may name its
  // tenant in this header (stripped before delivery); "" = not read.
  std::string tenant_header;
  // A client that maps to no tenant submits as this one; "" = 550 5.7.1.
  std::string default_tenant;
};

enum class UpstreamKind { smtp, ses, directory };
enum class UpstreamTls { starttls, implicit, none };

struct Upstream {
  UpstreamKind kind = UpstreamKind::directory;
  std::string host;
  std::uint16_t port = 587;
  UpstreamTls tls = UpstreamTls::starttls;
  bool verify_peer = true;
  std::string ca_file;
  std::string username;
  std::string username_file;
  std::string password_file;
  std::size_t max_connections = 10;
  double max_messages_per_second = 0;  // 0 = unlimited
  std::size_t delivery_threads = 0;    // 0 = one per core (1 to 8)
  std::string directory = "var/outbox";
};

enum class BodyLink { footer, warn, reject };
/// global: an opt-out stops every campaign; campaign: the same email_id;
/// topic: the same topic (a copy without a topic: global); off: none.
enum class Suppression { global, campaign, topic, off };

/// A mailing programme a person can leave on its own (unsubscribe.topics).
struct Topic {
  std::string id;    // 1-64 of [A-Za-z0-9._-]: in tokens, headers, the API
  std::string name;  // shown on the preference page
};

struct Unsubscribe {
  std::string base_url = "http://127.0.0.1:8080";
  std::string mailto_domain;
  std::string keys_file;
  unsigned token_ttl_days = 0;
  std::vector<std::string> placeholders{"*|UNSUBSCRIBE|*", "{{unsubscribe_url}}"};
  BodyLink body_link = BodyLink::footer;
  std::string list_id_domain;
  std::string campaign_header = "X-Campaign-Id";
  std::string launch_header = "X-Launch-List-Id";
  std::string launch_kind_header = "X-Launch-Kind";  // "on-event": kept past store.launch_retention_days
  Suppression suppression = Suppression::global;
  std::string topic_header = "X-Topic";  // read (and stripped) only when topics are configured
  std::vector<Topic> topics;             // the preference page shows them in this order
  std::string page_url;                  // body links become PAGE_URL?e=TOKEN (a page on the operator's site)
  std::vector<std::string> page_origins; // origins (scheme://host[:port]) allowed to call the page API (CORS)
  std::string feedback_id;               // Feedback-ID template: {email_id} {launch_list_id} {topic}

  const Topic* find_topic(std::string_view id) const;
};

/// The TLS profile of every TLS context: the SMTP listeners (STARTTLS and
/// implicit TLS), the HTTPS listeners, the upstream client and webhooks (docs/tls.md).
enum class TlsProfile { intermediate, modern };

struct Tls {
  TlsProfile profile = TlsProfile::intermediate;  // Mozilla "intermediate": TLS 1.2 ECDHE+AEAD, TLS 1.3
  std::string ciphers;       // TLS 1.2 cipher list (OpenSSL syntax); "" = the profile's
  std::string ciphersuites;  // TLS 1.3 suites; "" = OpenSSL's (all AEAD)
};

struct Http {
  std::vector<Endpoint> listen{{"127.0.0.1", 8080}};
  std::vector<Endpoint> listen_tls;           // HTTPS listeners; need tls
  std::optional<TlsFiles> tls;                // reloaded on SIGHUP
  unsigned hsts_max_age_seconds = 31536000;   // Strict-Transport-Security on HTTPS answers; 0 = none
  std::size_t max_connections = 1000;         // and never more than the descriptor budget leaves (docs/configuration.md)
  std::vector<Network> metrics_networks;      // GET /metrics from these is exempt from requests_per_minute
  std::string api_keys_file;
  std::string page_template = "conf/unsubscribe.html";
  std::size_t max_header_bytes = 16384;       // 431 above it
  std::size_t max_body_bytes = 65536;         // 413 above it
  std::uint64_t max_import_bytes = 2147483648;  // POST /api/v1/suppressions/import, streamed: 413 above it
  unsigned requests_per_minute = 600;         // per client address; 429 above it
  unsigned timeout_seconds = 30;              // per request read and write
  std::vector<Network> trusted_proxies;       // X-Forwarded-For is believed only from these
};

struct Store {
  std::string kind = "sqlite";
  std::string path = "var/unsubrelay.db";
  std::string url;
  unsigned launch_retention_days = 60;
  unsigned event_retention_days = 30;  // copy outcome events (docs/events.md); opt-outs are kept
  unsigned cache_mb = 32;              // SQLite: the page cache of each store's writing connection
};

struct Spool {
  std::string path = "var/spool";
  unsigned max_age_hours = 120;        // Postfix maximal_queue_lifetime = 5d
  unsigned retry_min_seconds = 300;    // Postfix minimal_backoff_time
  unsigned retry_max_seconds = 4000;   // Postfix maximal_backoff_time
  unsigned memory_limit_mb = 8;        // message content kept in memory for first attempts
  bool segments = true;                // format: segments (group-committed, docs/spool.md); format: files, a file each
  unsigned segment_max_kb = 256;       // larger messages are queue files even with segments
  unsigned segment_file_mb = 64;       // a segment file past this size is closed and a new one begun
};

struct Dkim {
  std::string domain;
  std::string selector;
  std::string key_file;
  std::string algorithm = "rsa-sha256";
};

/// A receiver of events (POST, JSON, HMAC-signed; docs/events.md).
struct Webhook {
  std::string url;          // http:// or https://
  std::string secret_file;  // the HMAC-SHA256 key, one line
  unsigned lease_seconds = 30;  // a fleet: how soon another relay takes over a stopped sender
  /// The event names it gets; empty (absent) = unsubscribe, resubscribe, erase (before issue 26).
  std::vector<std::string> events;
  /// 1 (default): one JSON object per POST, as before; more: a JSON array of up to batch_size.
  unsigned batch_size = 1;
  unsigned batch_ms = 1000;  // a batch waits at most this long for more events before it goes
};

/// feedback.ses_sns: Amazon SES notifications through SNS (POST /feedback/ses).
struct SesSns {
  std::vector<std::string> topic_arns;         // only these topics are taken
  std::vector<std::string> cert_url_prefixes;  // SigningCertURL and SubscribeURL must start with one
  std::string ca_file;                         // optional: CA bundle for those fetches
  unsigned fetch_timeout_seconds = 10;         // one certificate or SubscribeURL fetch
  std::size_t max_certificate_bytes = 65536;   // a signing certificate larger than this is refused
  unsigned max_age_seconds = 86400;            // a notification whose Timestamp is older is refused (no replay)
};

/// feedback: bounces and complaints (SPEC Part 2). Absent: the Part 1
/// behaviour (no VERP, no feedback addresses, bounces never suppress).
struct Feedback {
  bool enabled = false;                         // the section is present
  std::string return_path_domain;               // VERP: MAIL FROM <b+TOKEN@this>; "" = off
  std::vector<std::string> complaint_addresses; // ARF reports (lower case)
  bool forward_to_sender = true;
  unsigned hard_bounce_limit = 0;               // 1 when the section is present; 0 = never suppress
  unsigned soft_bounce_limit = 0;               // in a row; 0 = never
  unsigned bounce_suppression_days = 0;         // 0 = until lifted
  std::uint64_t max_report_bytes = 1048576;     // mail to a feedback address: 552 5.3.4 above it
  std::optional<SesSns> ses_sns;
  // Issue 22: an ARF report naming its contact by address only (no token of
  // ours) is applied only from these SMTP clients; from others it is unverified.
  std::vector<Network> trusted_networks;
  unsigned forward_per_hour = 100;              // forwards per launch sender and hour (each report once)
};

struct Log {
  std::string level = "info";
  std::string format = "text";
};

/// tenants[].ses: headers added to the tenant's copies when absent (SES tenants, 2025).
struct TenantSes {
  std::string configuration_set;  // X-SES-CONFIGURATION-SET
  std::string tenant;             // X-SES-TENANT
};

/// tenants[].limits; 0 = unlimited.
struct TenantLimits {
  std::uint64_t messages_per_hour = 0;   // messages accepted (250 after DATA) per clock hour, fleet-wide
  std::uint64_t recipients_per_day = 0;  // recipients accepted per UTC day, fleet-wide
  unsigned delivery_weight = 1;          // share of delivery when tenants compete (1-1000)
};

/// tenant (default): the tenant's own suppression list only; shared: also the
/// installation-wide entries an admin filed with "tenant": "*".
enum class TenantSuppression { tenant, shared };

/// SPEC Part 3: one sender on a shared relay. The unsubscribe, feedback,
/// dkim and upstream members are the effective settings: the top level's,
/// overridden key by key by the tenant's own section (dkim: the tenant's list
/// replaces the top level's when given).
struct Tenant {
  std::string id;                           // 1-32 of [a-z0-9-]
  int line = 0;                             // where it is declared (errors found at start-up)
  std::vector<std::string> smtp_users;      // AUTH identities of smtp.auth.users_file
  std::vector<Network> networks;            // clients here submit as this tenant without AUTH
  std::vector<std::string> sender_domains;  // lower case; subdomains included
  std::string api_keys_file;                // bearer keys for this tenant's data only
  Unsubscribe unsubscribe;                  // keys_file: tenants[].keys_file
  std::string page_template;                // tenants[].unsubscribe.page_template; "" = http.page_template
  Feedback feedback;
  std::vector<Dkim> dkim;
  Upstream upstream;
  bool own_upstream = false;                // tenants[].upstream given: its own connection pool
  TenantSes ses;
  TenantSuppression suppression = TenantSuppression::tenant;
  TenantLimits limits;
  std::vector<Webhook> webhooks;            // receive this tenant's events only (default: the top level's)
};

struct Config {
  std::string source;  // the file it came from
  Smtp smtp;
  Upstream upstream;
  Unsubscribe unsubscribe;
  Http http;
  Store store;
  Spool spool;
  std::vector<Dkim> dkim;
  std::vector<Webhook> webhooks;
  Feedback feedback;
  Log log;
  Tls tls;
  std::vector<Tenant> tenants;  // empty: one tenant, "default", from the top-level sections
                                // else every tenant, "default" included (appended with line 0 when
                                // not declared); config/tenants.cpp checks what they claim is their own

  const Tenant* find_tenant(std::string_view id) const;
};

/// One problem found in a configuration file.
struct ConfigError {
  std::string path;  // YAML path, e.g. "smtp.allow_networks[1]"
  int line = 0;      // 1-based; 0 when the error has no place in the file
  std::string message;
  std::string to_string(const std::string& file) const;
};

struct LoadResult {
  Config config;
  std::vector<ConfigError> errors;
  bool ok() const { return errors.empty(); }
};

/// Reads and validates a configuration file. Never throws for bad input.
LoadResult load_file(const std::string& path);

/// Same, from YAML text (unit tests); file checks still use the file system.
LoadResult load_text(const std::string& yaml, const std::string& source = "<text>");

}  // namespace unsubrelay::config
