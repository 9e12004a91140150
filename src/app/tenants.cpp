// tenants.cpp: opening a tenant's own objects (app/tenants.hpp).
#include "unsubrelay/app/tenants.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/delivery/queue_shards.hpp"
#include "unsubrelay/dkim/signer.hpp"
#include "unsubrelay/spool/durable_file.hpp"

namespace unsubrelay::app {

config::Config tenant_view(const config::Config& top, const config::Tenant& tenant) {
  config::Config view = top;
  view.unsubscribe = tenant.unsubscribe;
  view.feedback = tenant.feedback;
  view.dkim = tenant.dkim;
  if (tenant.own_upstream) view.upstream = tenant.upstream;
  view.webhooks = tenant.webhooks;
  return view;
}

std::vector<std::pair<std::string, std::string>> ses_fields(const config::TenantSes& ses) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!ses.configuration_set.empty()) out.emplace_back("X-SES-CONFIGURATION-SET", ses.configuration_set);
  if (!ses.tenant.empty()) out.emplace_back("X-SES-TENANT", ses.tenant);
  return out;
}

delivery::TenantDelivery TenantRuntime::delivery() const {
  return {rewriter.get(), store.get(), recorder.get(), view.unsubscribe.suppression, hooks.get()};
}

std::unique_ptr<TenantRuntime> open_tenant(const config::Config& top, const config::Tenant& tenant,
                                           feedback::FeedbackMetrics& metrics, std::string& error) {
  auto t = std::make_unique<TenantRuntime>();
  t->id = tenant.id;
  t->view = tenant_view(top, tenant);
  std::string err;
  auto keys = mime::load_keys(t->view.unsubscribe, err, false);
  if (!keys) {
    error = fmt::format("tenant {}: keys: {}", tenant.id, err);
    return nullptr;
  }
  std::vector<std::shared_ptr<const dkim::Signer>> signers;
  for (const auto& d : t->view.dkim) {
    auto signer = dkim::Signer::load(d, err);
    if (!signer) {
      error = fmt::format("tenant {}: {}", tenant.id, err);
      return nullptr;
    }
    signers.push_back(signer);
  }
  t->store = store::open(top.store, err, tenant.id);
  if (!t->store) {
    error = fmt::format("tenant {}: {}", tenant.id, err);
    return nullptr;
  }
  t->store->set_erasure_keys(store::ErasureKeys(*keys));
  t->rewriter = std::make_unique<mime::Rewriter>(t->view.unsubscribe, std::move(*keys), signers,
                                                 t->view.upstream.kind == config::UpstreamKind::ses);
  t->rewriter->set_strip_field(top.smtp.tenant_header);
  t->recorder = std::make_unique<store::DeliveryRecorder>(*t->store);
  t->feedback =
      std::make_unique<feedback::Recorder>(*t->store, store::FeedbackPolicy::from(t->view.feedback), metrics, t->id);
  t->hooks = std::make_unique<delivery::FeedbackHooks>(t->view.feedback, t->feedback.get(),
                                                       t->view.unsubscribe.suppression);
  return t;
}

}  // namespace unsubrelay::app

namespace unsubrelay::app {

namespace {

/// A keys file's keys, or nullopt after logging its errors.
std::optional<std::vector<http::ApiKey>> key_list(const std::string& path, const std::string& what) {
  auto file = http::load_api_keys(path);
  for (const auto& e : file.errors) spdlog::error("{}: {}", what, e);
  if (!file.ok()) return std::nullopt;
  return std::move(file.keys);
}

std::vector<http::ApiKey> joined(std::vector<http::ApiKey> a, const std::vector<http::ApiKey>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<std::string> key_ids(const token::KeySet& keys) {
  std::vector<std::string> out;
  for (const auto& k : keys.keys()) out.push_back(k.id);
  return out;
}

/// Every tenant's own keys file (by tenant id) and the admin file; nullopt after logging.
struct KeyFiles {
  std::vector<http::ApiKey> admin;
  std::map<std::string, std::vector<http::ApiKey>> own;
};
std::optional<KeyFiles> key_files(const config::Config& cfg) {
  KeyFiles out;
  auto admin = key_list(cfg.http.api_keys_file, "http.api_keys_file");
  if (!admin) return std::nullopt;
  out.admin = std::move(*admin);
  for (const auto& t : cfg.tenants) {
    auto own = key_list(t.api_keys_file, fmt::format("tenant {}: api_keys_file", t.id));
    if (!own) return std::nullopt;
    out.own[t.id] = std::move(*own);
  }
  return out;
}

}  // namespace

namespace {

std::vector<std::string> ids_of(const config::Config& cfg) {
  std::vector<std::string> out;
  for (const auto& t : cfg.tenants) out.push_back(t.id);
  return out;
}

}  // namespace

TenantSet::TenantSet(const config::Config& cfg) : counters(ids_of(cfg)) {}

std::string TenantSet::open(const config::Config& cfg, delivery::TenantDelivery default_delivery,
                            feedback::FeedbackMetrics& metrics, std::size_t shards) {
  if (cfg.tenants.empty()) return "";
  std::string err;
  default_recorder = std::make_unique<store::DeliveryRecorder>(*default_delivery.store);
  default_delivery.recorder = default_recorder.get();
  for (const auto& t : cfg.tenants) {
    auto& entry = table[t.id];
    if (t.id == "default") {
      entry = default_delivery;
    } else {
      auto opened = open_tenant(cfg, t, metrics, err);
      if (!opened) return err;
      entry = opened->delivery();
      for (const auto& k : opened->rewriter->keys().keys()) by_key_id_[k.id] = opened.get();
      tenants.push_back(std::move(opened));
    }
    entry.added_fields = ses_fields(t.ses);
    entry.counters = counters.of(t.id);
    if (t.own_upstream) {  // its own pools, as many as the delivery shards
      auto& own = upstreams.emplace_back(delivery::make_shard_upstreams(t.upstream, shards, cfg.smtp.hostname,
                                                                        cfg.tls, err));
      if (own.empty()) return fmt::format("tenant {}: upstream: {}", t.id, err);
      for (auto& u : own) entry.upstreams.push_back(u.get());
    }
  }
  // The installation-wide list that tenants with suppression: shared also honour.
  if (!(shared_list = store::open(cfg.store, err, store::shared_tenant))) {
    return "the shared suppression list: " + err;
  }
  shared_list->set_erasure_keys(store::ErasureKeys(default_delivery.rewriter->keys()));
  for (const auto& t : cfg.tenants) {
    if (t.suppression == config::TenantSuppression::shared) table[t.id].shared = shared_list.get();
  }
  return "";
}

const TenantRuntime* TenantSet::owner_of_key(std::string_view key_id) const {
  const auto it = by_key_id_.find(key_id);
  return it == by_key_id_.end() ? nullptr : it->second;
}

token::KeySet every_key(const token::KeySet& default_keys, const std::vector<std::unique_ptr<TenantRuntime>>& tenants) {
  std::vector<token::Key> keys = default_keys.keys();
  for (const auto& t : tenants) {
    const auto& own = t->rewriter->keys().keys();
    keys.insert(keys.end(), own.begin(), own.end());
  }
  std::vector<std::string> errors;
  if (auto all = token::KeySet::from_keys(std::move(keys), errors)) return std::move(*all);
  for (const auto& e : errors) spdlog::error("tenants' keys together: {}", e);  // config/tenants.cpp checks ids
  return default_keys;
}

std::optional<TenantHttp> tenant_http(const config::Config& cfg, http::Service& default_service,
                                      const token::KeySet& default_keys,
                                      const std::vector<std::unique_ptr<TenantRuntime>>& tenants,
                                      store::Store& shared, const std::string& page,
                                      const std::function<bool()>& spool_healthy) {
  auto files = key_files(cfg);
  if (!files) return std::nullopt;
  TenantHttp out;
  std::map<std::string, http::TenantRouter::Tenant, std::less<>> routes;
  default_service.set_api_keys(http::ApiKeyMatcher(joined(files->own["default"], files->admin)));
  routes["default"] = {&default_service, http::ApiKeyMatcher(files->own["default"]), key_ids(default_keys)};
  for (const auto& t : tenants) {
    const auto* declared = cfg.find_tenant(t->id);
    const auto own_page = declared && !declared->page_template.empty() ? spool::read_file(declared->page_template) : page;
    if (!own_page) {
      spdlog::critical("tenant {}: unsubscribe.page_template {} cannot be read", t->id, declared->page_template);
      return std::nullopt;
    }
    auto& service = out.services[t->id] = std::make_unique<http::Service>(
        t->view, t->rewriter->keys(), *t->store, *own_page,
        http::ApiKeyMatcher(joined(files->own[t->id], files->admin)), spool_healthy);
    routes[t->id] = {service.get(), http::ApiKeyMatcher(files->own[t->id]), key_ids(t->rewriter->keys())};
  }
  auto& list = out.services[store::shared_tenant] = std::make_unique<http::Service>(
      cfg, default_keys, shared, page, http::ApiKeyMatcher(files->admin), spool_healthy);
  routes[store::shared_tenant] = {list.get(), http::ApiKeyMatcher(), {}};
  out.router = std::make_unique<http::TenantRouter>(std::move(routes), http::ApiKeyMatcher(files->admin));
  return out;
}

bool reload_tenant_keys(const config::Config& fresh, TenantHttp& http_side, http::Service& default_service) {
  auto files = key_files(fresh);
  if (!files) return false;
  std::map<std::string, http::ApiKeyMatcher> own;
  for (const auto& [id, keys] : files->own) own.emplace(id, http::ApiKeyMatcher(keys));
  default_service.set_api_keys(http::ApiKeyMatcher(joined(files->own["default"], files->admin)));
  for (auto& [id, service] : http_side.services) {  // a tenant added since the start waits for a restart
    service->set_api_keys(http::ApiKeyMatcher(id == store::shared_tenant ? files->admin
                                                                         : joined(files->own[id], files->admin)));
  }
  http_side.router->set_api_keys(http::ApiKeyMatcher(files->admin), std::move(own));
  return true;
}

}  // namespace unsubrelay::app
