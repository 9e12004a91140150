// tenants.cpp: the `tenants:` list (SPEC Part 3): several senders on one relay.
//
// Each tenant starts from the top level's unsubscribe, feedback, dkim and
// upstream sections and overrides them key by key with the same loaders, so
// its settings are what the relay will use for it (config.hpp's Tenant).
// What a tenant claims — its id, AUTH names, networks, sender domains, token
// key ids, API keys, return-path domain — must be its own: the same claim by
// two tenants (or a tenant and the top level) would let one act as the other,
// so each is an error naming the first claimant. Files named here are read
// only when they are regular and small (a fuzzed "/dev/zero" costs nothing).
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>

#include "unsubrelay/common/text.hpp"
#include "loaders.hpp"
#include "unsubrelay/http/api_keys.hpp"
#include "unsubrelay/smtp/auth.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::config::detail {

namespace {

constexpr std::uintmax_t max_users_file_bytes = 16u << 20;
constexpr std::uintmax_t max_token_keys_bytes = 1u << 20;
constexpr std::uintmax_t max_api_keys_bytes = 1u << 20;  // http/api_keys.cpp refuses larger files too
// The keys file the relay makes when unsubscribe.keys_file is unset (src/mime/rewriter.cpp).
constexpr const char* generated_keys_path = "var/keys.yaml";
constexpr const char* generated_key_id = "k1";

/// Kept with every stored row and in PostgreSQL schema names: short and plain.
bool valid_tenant_id(std::string_view id) {
  return !id.empty() && id.size() <= 32 &&
         std::all_of(id.begin(), id.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

/// SES configuration set and tenant names.
bool valid_ses_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

/// One string of a list, with where it is.
struct Entry {
  std::string text;
  YAML::Node node;
  std::string path;
};

/// The strings of the list at key; Section::strings reports what is not one.
std::vector<Entry> entries(Section& s, const char* key) {
  std::vector<std::string> texts;
  s.strings(key, texts);
  std::vector<Entry> out;
  const auto node = s.raw(key);
  if (!node || !node.IsSequence()) return out;
  for (std::size_t i = 0; i < node.size(); ++i) {
    if (node[i].IsScalar()) out.push_back({node[i].Scalar(), node[i], fmt::format("{}[{}]", s.path(key), i)});
  }
  return out;
}

/// Everything tenants have claimed so far: value -> who ("tenants[0].sender_domains").
struct Claims {
  std::map<std::string, std::string> ids, users, domains, key_ids, api_keys, return_paths;
  std::vector<std::pair<Network, std::string>> networks;
};

/// Records owner's claim on value; the earlier owner when there is one (nothing recorded then).
std::optional<std::string> claim(std::map<std::string, std::string>& claims, const std::string& value,
                                 const std::string& owner) {
  const auto [it, fresh] = claims.emplace(value, owner);
  if (fresh) return std::nullopt;
  return it->second;
}

/// What every tenant is checked against: the top level's settings and files.
class Context {
 public:
  Context(const Config& top, Errors& errors) : top(top), errors(errors) {}

  const Config& top;
  Errors& errors;
  Claims claims;

  /// smtp.auth.users_file, read once as the SMTP side reads it; nullptr and why when it cannot be.
  const smtp::UsersFile* users(std::string& why) {
    if (!users_tried_) {
      users_tried_ = true;
      const auto& path = top.smtp.auth->users_file;
      users_problem_ = unreadable_whole(path, max_users_file_bytes);
      std::vector<std::string> problems;
      if (users_problem_.empty()) users_ = smtp::UsersFile::load(path, problems);
      if (!problems.empty()) users_problem_ = problems.front();
    }
    why = users_problem_;
    return users_ ? &*users_ : nullptr;
  }

 private:
  bool users_tried_ = false;
  std::optional<smtp::UsersFile> users_;
  std::string users_problem_;
};

/// The key ids of a token keys file, read as the relay reads it; errors say why not.
std::vector<std::string> key_ids(const std::string& path, std::vector<std::string>& errors) {
  if (auto why = unreadable_whole(path, max_token_keys_bytes); !why.empty()) {
    errors.push_back(why);
    return {};
  }
  std::vector<std::string> ids;
  if (const auto keys = token::KeySet::load(path, errors)) {
    for (const auto& k : keys->keys()) ids.push_back(k.id);
  }
  return ids;
}

/// An API keys file as the HTTP side reads it, after a bounded read: a /proc
/// file says it has 0 bytes and load_api_keys would read all of it.
http::ApiKeysFile api_keys_of(const std::string& path) {
  if (auto why = unreadable_whole(path, max_api_keys_bytes); !why.empty()) return {{}, {why}};
  return http::load_api_keys(path);
}

/// The default tenant's key ids (unsubscribe.keys_file, or the file the relay
/// makes without it) and http.api_keys_file's keys, which no tenant may reuse.
void claim_top_level(Context& c) {
  const auto& keys_file = c.top.unsubscribe.keys_file;
  std::vector<std::string> ignored;  // the top level's own errors are reported where it is loaded
  if (!keys_file.empty()) {
    for (const auto& id : key_ids(keys_file, ignored)) c.claims.key_ids.emplace(id, "unsubscribe.keys_file");
  } else {
    const std::string owner = fmt::format("the default tenant's keys ({}: unsubscribe.keys_file is unset)",
                                          generated_keys_path);
    c.claims.key_ids.emplace(generated_key_id, owner);
    if (::access(generated_keys_path, R_OK) == 0) {
      for (const auto& id : key_ids(generated_keys_path, ignored)) c.claims.key_ids.emplace(id, owner);
    }
  }
  if (!c.top.http.api_keys_file.empty() && ::access(c.top.http.api_keys_file.c_str(), R_OK) == 0) {
    const auto file = api_keys_of(c.top.http.api_keys_file);
    for (const auto& k : file.keys) {
      c.claims.api_keys.emplace(k.key, fmt::format("http.api_keys_file ({}:{})", c.top.http.api_keys_file, k.line));
    }
  }
  if (!c.top.feedback.return_path_domain.empty()) {
    c.claims.return_paths.emplace(c.top.feedback.return_path_domain, "feedback.return_path_domain");
  }
}

void load_id(Section& s, Tenant& t, Context& c) {
  s.string("id", t.id);
  if (!valid_tenant_id(t.id)) {
    s.error(s.raw("id"), s.path("id"), "is required: 1-32 characters of [a-z0-9-] (kept with every stored row)");
  } else if (auto first = claim(c.claims.ids, t.id, s.path("id"))) {
    s.error(s.raw("id"), s.path("id"), fmt::format("'{}' is declared twice (also {})", t.id, *first));
  }
}

void load_smtp_users(Section& s, Tenant& t, Context& c) {
  if (!s.present("smtp_users")) return;
  const auto names = entries(s, "smtp_users");
  if (!c.top.smtp.auth) {
    s.error(s.raw("smtp_users"), s.path("smtp_users"), "needs smtp.auth: its users_file holds the AUTH names");
    return;
  }
  std::string why;
  const auto* users = c.users(why);
  if (!users) s.error(s.raw("smtp_users"), s.path("smtp_users"), "cannot check the names in smtp.auth.users_file: " + why);
  for (const auto& name : names) {
    t.smtp_users.push_back(name.text);
    if (users && !users->has(name.text)) {
      s.error(name.node, name.path, fmt::format("'{}' is not in smtp.auth.users_file ({})", name.text,
                                                c.top.smtp.auth->users_file));
    } else if (auto first = claim(c.claims.users, name.text, name.path)) {
      s.error(name.node, name.path, fmt::format("'{}' is also in {}: an AUTH name submits for one tenant", name.text,
                                                *first));
    }
  }
}

void load_tenant_networks(Section& s, Tenant& t, Context& c) {
  networks(s, "networks", t.networks);  // reports what is no CIDR
  const auto node = s.raw("networks");
  for (std::size_t i = 0; node && node.IsSequence() && i < node.size(); ++i) {
    const auto net = node[i].IsScalar() ? Network::parse(node[i].Scalar()) : std::nullopt;
    if (!net) continue;
    const auto path = fmt::format("{}[{}]", s.path("networks"), i);
    const auto& allowed = c.top.smtp.allow_networks;
    if (std::none_of(allowed.begin(), allowed.end(), [&](const Network& a) { return a.contains(*net); })) {
      s.error(node[i], path, fmt::format("'{}' is not inside any smtp.allow_networks entry (only those clients "
                                         "submit without AUTH)", node[i].Scalar()));
      continue;
    }
    const auto same = std::find_if(c.claims.networks.begin(), c.claims.networks.end(),
                                   [&](const auto& claimed) { return claimed.first == *net; });
    if (same != c.claims.networks.end()) {
      s.error(node[i], path, fmt::format("'{}' is also in {} (a network inside another tenant's is allowed: "
                                         "the most specific wins)", node[i].Scalar(), same->second));
    } else {
      c.claims.networks.emplace_back(*net, path);
    }
  }
}

void load_sender_domains(Section& s, Tenant& t, Context& c, bool is_default) {
  const auto list = entries(s, "sender_domains");
  for (const auto& domain : list) {
    const auto d = to_lower(domain.text);
    if (!valid_domain(d)) {
      s.error(domain.node, domain.path, fmt::format("'{}' is not a domain name (acme.example)", domain.text));
      continue;
    }
    t.sender_domains.push_back(d);
    if (auto first = claim(c.claims.domains, d, domain.path)) {
      s.error(domain.node, domain.path, fmt::format("'{}' is also in {}", d, *first));
    }
  }
  const auto node = s.raw("sender_domains");
  if (!is_default && list.empty() && (!node || node.IsSequence())) {
    s.error(node, s.path("sender_domains"),
            "is required: the domains this tenant sends from (MAIL FROM and From:, subdomains included)");
  }
}

void load_keys_file(Section& s, Tenant& t, Context& c, bool is_default) {
  if (is_default) {
    s.refuse("keys_file", "the tenant default signs with unsubscribe.keys_file: set it there");
    return;
  }
  auto& path = t.unsubscribe.keys_file;
  path.clear();
  readable_file(s, "keys_file", path);
  if (!s.present("keys_file")) {
    s.error(s.raw("keys_file"), s.path("keys_file"),
            "is required: the tenant's own token keys (unsubrelay keygen --id ID -o FILE)");
    return;
  }
  if (path.empty() || ::access(path.c_str(), R_OK) != 0) return;  // readable_file said why
  std::vector<std::string> problems;
  for (const auto& id : key_ids(path, problems)) {
    if (auto first = claim(c.claims.key_ids, id, s.path("keys_file"))) {
      s.error(s.raw("keys_file"), s.path("keys_file"),
              fmt::format("key id {} is also in {}: a token names its tenant by its key id", id, *first));
    }
  }
  for (const auto& p : problems) s.error(s.raw("keys_file"), s.path("keys_file"), p);
}

/// Like http.api_keys_file; a key of two files would open one tenant's data to the other (or be an admin key).
void load_tenant_api_keys(Section& s, Tenant& t, Context& c) {
  readable_file(s, "api_keys_file", t.api_keys_file);
  if (t.api_keys_file.empty() || ::access(t.api_keys_file.c_str(), R_OK) != 0) return;
  const auto file = api_keys_of(t.api_keys_file);
  const auto at = s.raw("api_keys_file");
  for (const auto& e : file.errors) s.error(at, s.path("api_keys_file"), e);
  for (const auto& k : file.keys) {
    const auto where = fmt::format("{}:{}", t.api_keys_file, k.line);
    if (auto first = claim(c.claims.api_keys, k.key, fmt::format("{} ({})", s.path("api_keys_file"), where))) {
      s.error(at, s.path("api_keys_file"), fmt::format("{}: this key is also in {}", where, *first));
    }
  }
}

constexpr const char* installation_wide = "installation-wide: set it at the top level";

void load_tenant_unsubscribe(Section& s, Tenant& t, Context& c) {
  if (!s.present("unsubscribe")) return;
  Section u(s.raw("unsubscribe"), s.path("unsubscribe"), c.errors);
  u.refuse("keys_file", fmt::format("a tenant's token keys are {}", s.path("keys_file")));
  // The SMTP side reads these headers before it knows which tenant's rewriter takes the message,
  // and takes mail to u+TOKEN@mailto_domain from anyone before any tenant is known.
  for (const char* key : {"placeholders", "campaign_header", "launch_header", "launch_kind_header", "topic_header",
                          "mailto_domain"}) {
    u.refuse(key, installation_wide);
  }
  // The tenant's own landing and preference page (a file like http.page_template).
  readable_file(u, "page_template", t.page_template);
  load_unsubscribe(u, t.unsubscribe, c.errors);
}

void load_tenant_feedback(Section& s, Tenant& t, Context& c) {
  if (!s.present("feedback")) return;
  Section f(s.raw("feedback"), s.path("feedback"), c.errors);
  for (const char* key : {"complaint_addresses", "max_report_bytes", "ses_sns", "trusted_networks", "forward_per_hour"}) {
    f.refuse(key, installation_wide);
  }
  if (!c.top.feedback.enabled) {
    f.error(s.raw("feedback"), s.path("feedback"),
            "needs the top-level feedback section: the bounce and complaint intake runs from it");
  }
  load_feedback_sender_keys(f, t.feedback);
  f.finish();
  const auto& domain = t.feedback.return_path_domain;
  if (f.present("return_path_domain") && valid_domain(domain)) {
    if (auto first = claim(c.claims.return_paths, domain, f.path("return_path_domain"))) {
      f.error(f.raw("return_path_domain"), f.path("return_path_domain"),
              fmt::format("'{}' is also {}: a bounce must name one tenant", domain, *first));
    }
  }
}

void load_ses(Section& s, Tenant& t, Context& c) {
  if (!s.present("ses")) return;
  Section x(s.raw("ses"), s.path("ses"), c.errors);
  x.string("configuration_set", t.ses.configuration_set);
  x.string("tenant", t.ses.tenant);
  for (const auto& [key, value] : {std::pair{"configuration_set", &t.ses.configuration_set},
                                   std::pair{"tenant", &t.ses.tenant}}) {
    if (x.present(key) && !valid_ses_name(*value)) {
      x.error(x.raw(key), x.path(key), "must be 1-64 characters of [A-Za-z0-9_-]");
    }
  }
  x.finish();
}

void load_limits(Section& s, Tenant& t, Context& c) {
  if (!s.present("limits")) return;
  Section l(s.raw("limits"), s.path("limits"), c.errors);
  l.integer("messages_per_hour", t.limits.messages_per_hour, 0, 1'000'000'000);
  l.integer("recipients_per_day", t.limits.recipients_per_day, 0, 10'000'000'000);
  l.integer("delivery_weight", t.limits.delivery_weight, 1, 1000);
  l.finish();
}

/// The sections that override the top level's (dkim and webhooks: the list replaces it).
void load_overrides(Section& s, Tenant& t, Context& c, bool is_default) {
  if (is_default) {
    for (const char* key : {"unsubscribe", "feedback", "dkim", "upstream", "webhooks"}) {
      s.refuse(key, fmt::format("the tenant default uses the top-level {0} section: set it there", key));
    }
  }
  load_tenant_unsubscribe(s, t, c);
  load_tenant_feedback(s, t, c);
  if (s.present("dkim")) load_dkim(s.raw("dkim"), s.path("dkim"), t.dkim, c.errors);
  if (s.present("upstream")) {
    Section u(s.raw("upstream"), s.path("upstream"), c.errors);
    load_upstream(u, t.upstream);
    t.own_upstream = true;

  }
  if (s.present("webhooks")) load_webhooks(s.raw("webhooks"), s.path("webhooks"), t.webhooks, c.errors);
}

/// A tenant before its own keys: the top level's sections; only the default
/// tenant gets the top level's webhooks (a tenant's receive its events only).
Tenant from_top_level(const Config& top, bool is_default) {
  Tenant t;
  t.unsubscribe = top.unsubscribe;
  t.feedback = top.feedback;
  t.dkim = top.dkim;
  t.upstream = top.upstream;
  if (is_default) t.webhooks = top.webhooks;
  return t;
}

Tenant load_tenant(const YAML::Node& node, const std::string& path, Context& c) {
  Section s(node, path, c.errors);
  std::string id;
  if (node.IsMap() && node["id"] && node["id"].IsScalar()) id = node["id"].Scalar();
  const bool is_default = id == "default";
  Tenant t = from_top_level(c.top, is_default);
  t.line = line_of(node);
  load_id(s, t, c);
  load_smtp_users(s, t, c);
  load_tenant_networks(s, t, c);
  load_sender_domains(s, t, c, is_default);
  load_keys_file(s, t, c, is_default);
  load_tenant_api_keys(s, t, c);
  load_overrides(s, t, c, is_default);
  load_ses(s, t, c);
  s.choice("suppression", t.suppression, {{"tenant", TenantSuppression::tenant}, {"shared", TenantSuppression::shared}});

  load_limits(s, t, c);
  s.finish();
  return t;
}

/// smtp.tenant_header names tenants, so there must be some; and it is removed
/// from every copy, so it cannot be a field the relay reads for anything else.
void check_tenant_header(const YAML::Node& root, const Config& config, Errors& errors) {
  const auto& name = config.smtp.tenant_header;
  if (name.empty()) return;
  const auto& u = config.unsubscribe;
  std::string why;
  if (config.tenants.empty()) {
    why = "needs tenants: it names one of them (docs/tenants.md)";
  } else {
    for (const auto& used : {u.campaign_header, u.launch_header, u.launch_kind_header, u.topic_header,
                             std::string("From"), std::string("Sender"), std::string("To")}) {
      if (!used.empty() && to_lower(used) == to_lower(name)) why = fmt::format("{} is a field the relay reads", used);
    }
  }
  if (why.empty()) return;
  const auto smtp = root["smtp"];
  errors.push_back({"smtp.tenant_header", smtp && smtp.IsMap() ? line_of(smtp["tenant_header"]) : 0, why});
}

/// smtp.default_tenant must name a tenant there is.
void check_default_tenant(const YAML::Node& root, const Config& config, Errors& errors) {
  const auto& name = config.smtp.default_tenant;
  if (name.empty() || name == "default" || config.find_tenant(name)) return;
  const auto smtp = root["smtp"];
  const auto at = smtp && smtp.IsMap() ? smtp["default_tenant"] : smtp;
  errors.push_back({"smtp.default_tenant", at ? line_of(at) : 0,
                    fmt::format("no tenant '{}' is declared in tenants (\"\" refuses such clients; default is the "
                                "top level's tenant)", name)});
}

}  // namespace

void load_tenants(const YAML::Node& root, Config& config, Errors& errors) {
  const auto node = root.IsMap() ? root["tenants"] : YAML::Node(YAML::NodeType::Undefined);
  if (node && !node.IsNull()) {
    if (!node.IsSequence()) {
      errors.push_back({"tenants", line_of(node), "must be a list of tenants ({id, sender_domains, keys_file, ...})"});
    } else if (node.size() == 0) {
      errors.push_back({"tenants", line_of(node), "is empty: remove the key for one tenant (default)"});
    } else {
      Context c(config, errors);
      claim_top_level(c);
      std::vector<Tenant> tenants;
      for (std::size_t i = 0; i < node.size(); ++i) {
        tenants.push_back(load_tenant(node[i], fmt::format("tenants[{}]", i), c));
      }
      // The tenant default always exists once tenants are configured: it holds
      // the data and tokens of before. Undeclared, it is the top level alone.
      if (!c.claims.ids.count("default")) {
        Tenant d = from_top_level(config, true);
        d.id = "default";
        tenants.push_back(std::move(d));
      }
      config.tenants = std::move(tenants);
    }
  }
  check_default_tenant(root, config, errors);
  check_tenant_header(root, config, errors);
}

}  // namespace unsubrelay::config::detail
