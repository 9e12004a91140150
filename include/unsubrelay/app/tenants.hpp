// tenants.hpp: each tenant's own objects at run time (SPEC Part 3).
//
// A tenant has its own store (store.hpp: a file or a schema of its own), its
// own keys and DKIM signers (its rewriter), its own feedback recorder and
// hooks (its VERP domain), and an HTTP service over its store. The tenant
// "default" is the installation as it was before tenants: run.cpp opens it
// from the top level, the others come from open_tenant().
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/delivery/feedback_hooks.hpp"
#include "unsubrelay/delivery/queue_manager.hpp"
#include "unsubrelay/feedback/recorder.hpp"
#include "unsubrelay/http/service.hpp"
#include "unsubrelay/http/tenant_router.hpp"
#include "unsubrelay/mime/rewriter.hpp"
#include "unsubrelay/store/group_commit.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/tenant/counters.hpp"

namespace unsubrelay::app {

/// The configuration as one tenant sees it: the top level with the tenant's
/// effective unsubscribe, feedback, dkim, upstream and webhooks sections.
config::Config tenant_view(const config::Config& top, const config::Tenant& tenant);

/// X-SES-CONFIGURATION-SET and X-SES-TENANT for tenants[].ses (SES tenants, 2025).
std::vector<std::pair<std::string, std::string>> ses_fields(const config::TenantSes& ses);

struct TenantRuntime {
  std::string id;
  config::Config view;  // tenant_view()
  std::unique_ptr<store::Store> store;
  std::unique_ptr<mime::Rewriter> rewriter;
  std::unique_ptr<store::DeliveryRecorder> recorder;
  std::unique_ptr<feedback::Recorder> feedback;
  std::unique_ptr<delivery::FeedbackHooks> hooks;

  delivery::TenantDelivery delivery() const;
};

/// Opens a tenant other than "default": its store, keys (never created here:
/// tenants[].keys_file is required) and DKIM signers. nullptr and error on failure.
std::unique_ptr<TenantRuntime> open_tenant(const config::Config& top, const config::Tenant& tenant,
                                           feedback::FeedbackMetrics& metrics, std::string& error);

/// Every tenant's run-time objects and the queue's table of them. run.cpp
/// keeps one, declared before the queue so it outlives the delivery threads.
struct TenantSet {
  explicit TenantSet(const config::Config& cfg);  // the counters' table: one entry per tenant

  std::vector<std::unique_ptr<TenantRuntime>> tenants;  // every tenant but default
  std::vector<std::vector<std::unique_ptr<delivery::Upstream>>> upstreams;  // tenants[].upstream, per shard
  delivery::TenantTable table;                          // for the queue, default included
  tenant::CounterTable counters;                        // /metrics by tenant
  std::unique_ptr<store::DeliveryRecorder> default_recorder;
  std::unique_ptr<store::Store> shared_list;            // suppression: shared (store::shared_tenant)

  /// Opens every tenant of cfg (nothing without tenants); default's delivery
  /// is the top level's objects (its recorder is made here). "" or the error.
  std::string open(const config::Config& cfg, delivery::TenantDelivery default_delivery,
                   feedback::FeedbackMetrics& metrics, std::size_t shards);
  /// The tenant whose keys hold this key id (unique in the installation);
  /// nullptr for default's keys and for ids nobody has.
  const TenantRuntime* owner_of_key(std::string_view key_id) const;

 private:
  std::map<std::string, const TenantRuntime*, std::less<>> by_key_id_;
};

/// Every tenant's token keys in one set (key ids are unique in the installation):
/// what verifies a report's token before its tenant is known.
token::KeySet every_key(const token::KeySet& default_keys, const std::vector<std::unique_ptr<TenantRuntime>>& tenants);

/// The HTTP side of tenants: a Service per tenant other than default, over its
/// store and keys, and the router in front of them all (http/tenant_router.hpp).
struct TenantHttp {
  std::map<std::string, std::unique_ptr<http::Service>> services;  // by tenant id
  std::unique_ptr<http::TenantRouter> router;
};

/// A Service accepts its tenant's keys and the admin keys (the router decides
/// who reaches it); the router knows each tenant's keys alone. The shared
/// suppression list (store::shared_tenant) has a Service that only admin keys
/// reach, as ?tenant=*. Each tenant's Service serves its own page_template, or
/// page. nullopt after logging the keys files' (or a page's) errors.
std::optional<TenantHttp> tenant_http(const config::Config& cfg, http::Service& default_service,
                                      const token::KeySet& default_keys,
                                      const std::vector<std::unique_ptr<TenantRuntime>>& tenants,
                                      store::Store& shared, const std::string& page,
                                      const std::function<bool()>& spool_healthy);

/// SIGHUP: every API keys file again, into the router and each tenant's
/// Service; false (after logging why) leaves the running keys in force.
bool reload_tenant_keys(const config::Config& fresh, TenantHttp& http_side, http::Service& default_service);

}  // namespace unsubrelay::app
