// config.cpp: YAML loading and validation with path-and-line errors.
//
// One load_NAME function per top-level section (the field helpers and
// Section are in section.hpp); load_node() runs them all and collects every
// error instead of stopping at the first.
#include "unsubrelay/config/config.hpp"

#include "loaders.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

namespace unsubrelay::config {

std::string Endpoint::to_string() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

const Topic* Unsubscribe::find_topic(std::string_view id) const {
  for (const auto& t : topics) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

const Tenant* Config::find_tenant(std::string_view id) const {
  for (const auto& t : tenants) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

std::string ConfigError::to_string(const std::string& file) const {
  if (line > 0) return fmt::format("{}:{}: {}: {}", file, line, path, message);
  return fmt::format("{}: {}: {}", file, path, message);
}

namespace {

using namespace detail;

/// A header field name (RFC 5322 §3.6.8 ftext: printable ASCII but ':').
bool valid_field_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return c >= 33 && c <= 126 && c != ':'; });
}

/// smtp.tenant_header and smtp.default_tenant (SPEC Part 3); whether the
/// default tenant exists is checked with the tenants (tenants.cpp).
void load_tenant_choice(Section& s, Smtp& smtp) {
  s.string("tenant_header", smtp.tenant_header);
  if (s.present("tenant_header") && !valid_field_name(smtp.tenant_header)) {
    s.error(s.raw("tenant_header"), "smtp.tenant_header",
            "must be a header field name: 1-64 printable ASCII characters without ':' or spaces (X-Tenant)");
  }
  s.string("default_tenant", smtp.default_tenant);
}

void load_smtp(Section& s, Smtp& smtp, Errors& errors) {
  endpoints(s, "listen", smtp.listen);
  endpoints(s, "listen_tls", smtp.listen_tls);
  s.string("hostname", smtp.hostname);
  auto& l = smtp.limits;
  s.integer("max_message_bytes", l.max_message_bytes, 1024, 1ull << 34);
  s.integer("max_recipients", l.max_recipients, 1, 100000);
  s.integer("max_connections", l.max_connections, 1, 100000);
  s.integer("max_errors", l.max_errors, 1, 1000);
  s.integer("command_timeout_seconds", l.command_timeout_seconds, 1, 3600);
  s.integer("data_timeout_seconds", l.data_timeout_seconds, 1, 3600);
  s.integer("io_threads", smtp.io_threads, 0, 64);

  if (s.present("allow_networks")) {
    networks(s, "allow_networks", smtp.allow_networks);
  } else {
    smtp.allow_networks = {*Network::parse("127.0.0.0/8"), *Network::parse("::1/128")};
  }

  if (s.present("tls")) {
    Section t(s.raw("tls"), "smtp.tls", errors);
    TlsFiles files;
    readable_file(t, "cert", files.cert);
    readable_file(t, "key", files.key);
    t.finish();
    if (files.cert.empty() || files.key.empty()) {
      t.error(s.raw("tls"), "smtp.tls", "needs both cert and key");
    } else {
      smtp.tls = files;
    }
  }
  if (!smtp.listen_tls.empty() && !s.present("tls")) {
    s.error(s.raw("listen_tls"), "smtp.listen_tls", "implicit-TLS listeners need smtp.tls cert and key");
  }
  if (s.present("auth")) {
    Section a(s.raw("auth"), "smtp.auth", errors);
    SmtpAuth auth;
    readable_file(a, "users_file", auth.users_file);
    a.boolean("require_tls", auth.require_tls);
    a.finish();
    if (auth.users_file.empty()) {
      a.error(s.raw("auth"), "smtp.auth.users_file", "is required");
    } else {
      smtp.auth = auth;
    }
    if (auth.require_tls && !s.present("tls")) {
      a.error(s.raw("auth"), "smtp.auth.require_tls",
              "AUTH after TLS needs smtp.tls (or set require_tls: false on a trusted network)");
    }
  }
  load_tenant_choice(s, smtp);
  if (smtp.listen.empty() && smtp.listen_tls.empty()) {
    s.error(s.raw("listen"), "smtp.listen", "at least one listener is required");
  }
  s.finish();
  if (smtp.hostname.empty()) smtp.hostname = default_hostname();
}

}  // namespace

void detail::load_upstream(Section& s, Upstream& u) {
  s.choice("kind", u.kind, {{"smtp", UpstreamKind::smtp}, {"ses", UpstreamKind::ses},
                            {"directory", UpstreamKind::directory}});
  s.string("host", u.host);
  s.integer("port", u.port, 1, 65535);
  s.choice("tls", u.tls, {{"starttls", UpstreamTls::starttls}, {"implicit", UpstreamTls::implicit},
                          {"none", UpstreamTls::none}});
  s.boolean("verify_peer", u.verify_peer);
  readable_file(s, "ca_file", u.ca_file);
  s.string("username", u.username);
  readable_file(s, "username_file", u.username_file);
  readable_file(s, "password_file", u.password_file);
  s.integer("max_connections", u.max_connections, 1, 1000);
  s.number("max_messages_per_second", u.max_messages_per_second, 0, 1e6);
  s.integer("delivery_threads", u.delivery_threads, 0, 64);
  s.string("directory", u.directory);
  if (u.kind != UpstreamKind::directory && u.host.empty()) {
    s.error(s.raw("kind"), s.path("host"), "is required for kind smtp and ses");
  }
  if ((!u.username.empty() || !u.username_file.empty()) && u.password_file.empty()) {
    s.error(s.raw("username"), s.path("password_file"), "is required with username (the password is never inline)");
  }
  if (u.kind == UpstreamKind::directory && u.directory.empty()) {
    s.error(s.raw("directory"), s.path("directory"), "must not be empty for kind directory");
  }
  s.finish();
}

namespace {

/// Topic ids travel in tokens, headers and URLs: a short, plain alphabet.
bool valid_topic_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

void load_topics(Section& s, Unsubscribe& u, Errors& errors) {
  s.string("topic_header", u.topic_header);
  if (s.present("topic_header") && u.topic_header.empty()) {
    s.error(s.raw("topic_header"), s.path("topic_header"), "must not be empty");
  }
  if (s.present("topics")) {
    const auto node = s.raw("topics");
    if (!node.IsSequence()) {
      s.error(node, s.path("topics"), "must be a list of {id, name}");
    } else {
      std::set<std::string> ids;
      u.topics.clear();  // a tenant's list replaces the top level's
      for (std::size_t i = 0; i < node.size(); ++i) {
        const auto path = fmt::format("{}[{}]", s.path("topics"), i);
        Section t(node[i], path, errors);
        Topic topic;
        t.string("id", topic.id);
        t.string("name", topic.name);
        t.finish();
        if (!valid_topic_id(topic.id)) {
          t.error(node[i], path + ".id", "is required: 1-64 of [A-Za-z0-9._-]");
        } else if (!ids.insert(topic.id).second) {
          t.error(node[i], path + ".id", fmt::format("'{}' is listed twice", topic.id));
        }
        if (topic.name.empty() || topic.name.size() > 200) {
          t.error(node[i], path + ".name", "is required (at most 200 bytes): the preference page shows it");
        }
        u.topics.push_back(topic);
      }
      if (node.size() > 100) s.error(node, s.path("topics"), "at most 100 topics");
    }
  }
  if (u.suppression == Suppression::topic && u.topics.empty()) {
    s.error(s.raw("suppression"), s.path("suppression"), "topic needs unsubscribe.topics");
  }
  if (s.present("topic_header") && u.topics.empty()) {
    s.error(s.raw("topic_header"), s.path("topic_header"), "needs unsubscribe.topics (the known topic ids)");
  }
}

bool valid_page_url(const std::string& url) {
  return (url.starts_with("https://") || url.starts_with("http://")) && url.find('#') == std::string::npos &&
         url.find_first_of(" \t\r\n\"<>") == std::string::npos && url.size() <= 300;
}

/// scheme://host[:port], as a browser sends it in Origin: never "*", no path.
bool valid_origin(const std::string& origin) {
  const auto scheme_end = origin.find("://");
  if (scheme_end == std::string::npos) return false;
  const auto scheme = origin.substr(0, scheme_end);
  const auto host = origin.substr(scheme_end + 3);
  if ((scheme != "https" && scheme != "http") || host.empty() || host.size() > 253) return false;
  for (char c : host) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':' && c != '[' && c != ']') {
      return false;
    }
  }
  return true;
}

void load_page_origins(Section& s, std::vector<std::string>& out) {
  if (!s.present("page_origins")) return;
  const auto node = s.raw("page_origins");
  s.strings("page_origins", out);
  for (std::size_t i = 0; i < out.size() && node.IsSequence(); ++i) {
    if (!valid_origin(out[i])) {
      s.error(node[i], fmt::format("{}[{}]", s.path("page_origins"), i),
              fmt::format("'{}' is not an origin like https://www.example.com (scheme, host, optional port; "
                          "no path, no wildcard)", out[i]));
    }
  }
}

/// Gmail's Feedback-ID: up to four colon-separated fields, the last one the
/// sender's fixed SenderId. Placeholders: {email_id} {launch_list_id} {topic}.
std::string feedback_id_problem(const std::string& t) {
  if (t.empty() || t.size() > 200) return "must be 1-200 characters";
  for (char c : t) {
    if (c <= 32 || c >= 127) return "must be printable ASCII without spaces";
  }
  std::string rest = t;
  for (const char* name : {"{email_id}", "{launch_list_id}", "{topic}"}) {
    for (auto pos = rest.find(name); pos != std::string::npos; pos = rest.find(name)) rest.replace(pos, std::strlen(name), "x");
  }
  if (rest.find_first_of("{}") != std::string::npos) {
    return "unknown placeholder: only {email_id}, {launch_list_id} and {topic} are filled in";
  }
  const auto last = t.rfind(':');
  if (last == std::string::npos || last + 1 == t.size() || t.find('{', last) != std::string::npos) {
    return "the last field (after the last ':') must be your fixed SenderId, e.g. "
           "\"{email_id}:{launch_list_id}:{topic}:acme\"";
  }
  if (std::count(t.begin(), t.end(), ':') > 3) return "Gmail reads at most four ':'-separated fields";
  return {};
}

}  // namespace

void detail::load_unsubscribe(Section& s, Unsubscribe& u, Errors& errors) {
  s.string("base_url", u.base_url);
  if (!u.base_url.starts_with("http://") && !u.base_url.starts_with("https://")) {
    s.error(s.raw("base_url"), s.path("base_url"), "must start with http:// or https://");
  }
  s.string("mailto_domain", u.mailto_domain);
  readable_file(s, "keys_file", u.keys_file);
  s.integer("token_ttl_days", u.token_ttl_days, 0, 36500);
  s.strings("placeholders", u.placeholders);
  s.choice("body_link", u.body_link, {{"footer", BodyLink::footer}, {"warn", BodyLink::warn},
                                      {"reject", BodyLink::reject}});
  s.string("list_id_domain", u.list_id_domain);
  s.string("campaign_header", u.campaign_header);
  s.string("launch_header", u.launch_header);
  s.string("launch_kind_header", u.launch_kind_header);
  s.choice("suppression", u.suppression, {{"global", Suppression::global}, {"campaign", Suppression::campaign},
                                          {"topic", Suppression::topic}, {"off", Suppression::off}});
  load_topics(s, u, errors);
  s.string("page_url", u.page_url);
  if (s.present("page_url") && !valid_page_url(u.page_url)) {
    s.error(s.raw("page_url"), s.path("page_url"),
            "must be an http:// or https:// URL without a fragment (the token is added as ?e=TOKEN)");
  }
  load_page_origins(s, u.page_origins);
  s.string("feedback_id", u.feedback_id);
  if (s.present("feedback_id")) {
    if (auto why = feedback_id_problem(u.feedback_id); !why.empty()) {
      s.error(s.raw("feedback_id"), s.path("feedback_id"), why);
    }
  }
  s.finish();
}

namespace {

void load_store(Section& s, Store& st) {
  std::string kind = st.kind;
  s.string("kind", kind);
  if (kind != "sqlite" && kind != "postgresql") {
    s.error(s.raw("kind"), "store.kind", "must be one of: sqlite | postgresql");
  }
  st.kind = kind;
  s.string("path", st.path);
  s.string("url", st.url);
  s.integer("launch_retention_days", st.launch_retention_days, 1, 36500);
  s.integer("event_retention_days", st.event_retention_days, 1, 36500);
  s.integer("cache_mb", st.cache_mb, 2, 4096);
  if (st.kind == "postgresql" && st.url.empty()) s.error(s.raw("kind"), "store.url", "is required for postgresql");
  s.finish();
}

void load_spool(Section& s, Spool& sp) {
  s.string("path", sp.path);
  if (sp.path.empty()) s.error(s.raw("path"), "spool.path", "must not be empty");
  s.integer("max_age_hours", sp.max_age_hours, 1, 24 * 365);
  s.integer("retry_min_seconds", sp.retry_min_seconds, 1, 86400);
  s.integer("retry_max_seconds", sp.retry_max_seconds, 1, 86400);
  s.integer("memory_limit_mb", sp.memory_limit_mb, 0, 65536);
  s.choice("format", sp.segments, {{"files", false}, {"segments", true}});
  s.integer("segment_max_kb", sp.segment_max_kb, 1, 1024 * 1024);
  s.integer("segment_file_mb", sp.segment_file_mb, 1, 1024);
  if (sp.retry_max_seconds < sp.retry_min_seconds) {
    s.error(s.raw("retry_max_seconds"), "spool.retry_max_seconds", "must not be less than retry_min_seconds");
  }
  s.finish();
}

}  // namespace

void detail::load_dkim(const YAML::Node& node, const std::string& list, std::vector<Dkim>& out, Errors& errors) {
  if (!node.IsSequence()) {
    errors.push_back({list, line_of(node), "must be a list of {domain, selector, key_file, algorithm}"});
    return;
  }
  out.clear();  // a tenant's list replaces the top level's
  for (std::size_t i = 0; i < node.size(); ++i) {
    const auto path = fmt::format("{}[{}]", list, i);
    Section s(node[i], path, errors);
    Dkim d;
    s.string("domain", d.domain);
    s.string("selector", d.selector);
    readable_file(s, "key_file", d.key_file);
    s.choice("algorithm", d.algorithm, {{"rsa-sha256", std::string("rsa-sha256")},
                                        {"ed25519-sha256", std::string("ed25519-sha256")}});
    for (const char* key : {"domain", "selector", "key_file"}) {
      if (!s.present(key)) s.error(node[i], path + "." + key, "is required");
    }
    s.finish();
    out.push_back(d);
  }
}

void detail::load_webhooks(const YAML::Node& node, const std::string& list, std::vector<Webhook>& out,
                           Errors& errors) {
  if (!node.IsSequence()) {
    errors.push_back({list, line_of(node), "must be a list of {url, secret_file}"});
    return;
  }
  out.clear();
  for (std::size_t i = 0; i < node.size(); ++i) {
    const auto path = fmt::format("{}[{}]", list, i);
    Section s(node[i], path, errors);
    Webhook w;
    s.string("url", w.url);
    readable_file(s, "secret_file", w.secret_file);
    s.integer("lease_seconds", w.lease_seconds, 2, 3600);
    s.integer("batch_size", w.batch_size, 1, 1000);
    s.integer("batch_ms", w.batch_ms, 0, 60000);
    if (s.present("events")) {
      s.strings("events", w.events);
      // The names docs/events.md lists (store::action_named; config sits below the store).
      static const std::set<std::string> known = {"unsubscribe", "resubscribe", "erase",     "delivered", "deferred",
                                                  "bounced",     "blocked",     "complaint", "suppressed"};
      for (const auto& e : w.events) {
        if (!known.count(e)) {
          s.error(s.raw("events"), path + ".events",
                  fmt::format("unknown event \"{}\": one of unsubscribe, resubscribe, erase, delivered, deferred, "
                              "bounced, blocked, complaint, suppressed", e.substr(0, 40)));
        }
      }
      if (w.events.empty()) s.error(s.raw("events"), path + ".events", "must name at least one event");
    }
    if (!w.url.starts_with("http://") && !w.url.starts_with("https://")) {
      s.error(s.raw("url"), path + ".url", "must start with http:// or https://");
    }
    if (!s.present("secret_file")) s.error(node[i], path + ".secret_file", "is required (events are signed)");
    s.finish();
    out.push_back(w);
  }
}

namespace {

void load_log(Section& s, Log& l) {
  s.choice("level", l.level, {{"trace", std::string("trace")}, {"debug", std::string("debug")},
                              {"info", std::string("info")}, {"warn", std::string("warn")},
                              {"error", std::string("error")}});
  s.choice("format", l.format, {{"text", std::string("text")}, {"json", std::string("json")}});
  s.finish();
}

LoadResult load_node(const YAML::Node& root, const std::string& source) {
  LoadResult r;
  r.config.source = source;
  Errors& errors = r.errors;
  Section top(root, "", errors);

  const std::pair<const char*, std::function<void(Section&)>> sections[] = {
      {"smtp", [&](Section& s) { load_smtp(s, r.config.smtp, errors); }},
      {"upstream", [&](Section& s) { load_upstream(s, r.config.upstream); }},
      {"unsubscribe", [&](Section& s) { load_unsubscribe(s, r.config.unsubscribe, errors); }},
      {"http", [&](Section& s) { load_http(s, r.config.http, errors); }},
      {"store", [&](Section& s) { load_store(s, r.config.store); }},
      {"spool", [&](Section& s) { load_spool(s, r.config.spool); }},
      {"log", [&](Section& s) { load_log(s, r.config.log); }},
      {"tls", [&](Section& s) { load_tls(s, r.config.tls); }},
      {"feedback", [&](Section& s) { load_feedback(s, top.present("feedback"), r.config.feedback, errors); }},
  };
  for (const auto& [name, load] : sections) {
    Section s(top.raw(name), name, errors);
    load(s);
  }
  if (top.present("dkim")) load_dkim(top.raw("dkim"), "dkim", r.config.dkim, errors);
  if (top.present("webhooks")) load_webhooks(top.raw("webhooks"), "webhooks", r.config.webhooks, errors);
  top.raw("tenants");  // last: a tenant's sections start from the top level's
  load_tenants(root, r.config, errors);
  top.finish();
  if (r.config.smtp.hostname.empty()) r.config.smtp.hostname = default_hostname();
  return r;
}

}  // namespace

/// Counts documents without building them (YAML::EventHandler is yaml-cpp's public event API).
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  YAML::Mark start;
};

LoadResult load_text(const std::string& yaml, const std::string& source) {
  try {
    // A second document (a "---", or a key pasted after a closing brace) is an
    // error: YAML::Load would silently ignore it. Not YAML::LoadAll: on some
    // malformed input (found by tests/fuzz/fuzz_config) it never returns.
    // Asking the parser for at most two documents is bounded.
    std::istringstream stream(yaml);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    if (parser.HandleNextDocument(counter) && parser.HandleNextDocument(counter)) {
      LoadResult r;
      r.errors.push_back({"(syntax)", counter.start.line + 1, "more than one YAML document; only one is allowed"});
      return r;
    }
    return load_node(YAML::Load(yaml), source);
  } catch (const YAML::Exception& e) {
    LoadResult r;
    r.errors.push_back({"(syntax)", e.mark.line >= 0 ? e.mark.line + 1 : 0, e.msg});
    return r;
  }
}

LoadResult load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult r;
    r.errors.push_back({"(file)", 0, fmt::format("cannot open: {}", std::strerror(errno))});
    return r;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_text(text.str(), path);
}

}  // namespace unsubrelay::config
