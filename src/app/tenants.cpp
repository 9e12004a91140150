// tenants.cpp: opening a tenant's own objects (app/tenants.hpp).
#include "unsubrelay/app/tenants.hpp"

#include <fmt/format.h>

#include "unsubrelay/dkim/signer.hpp"

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

delivery::TenantDelivery TenantRuntime::delivery(const config::TenantSes& ses) const {
  return {rewriter.get(), store.get(), recorder.get(), view.unsubscribe.suppression, hooks.get(), ses_fields(ses)};
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
  t->recorder = std::make_unique<store::DeliveryRecorder>(*t->store);
  t->feedback =
      std::make_unique<feedback::Recorder>(*t->store, store::FeedbackPolicy::from(t->view.feedback), metrics);
  t->hooks = std::make_unique<delivery::FeedbackHooks>(t->view.feedback, t->feedback.get(),
                                                       t->view.unsubscribe.suppression);
  return t;
}

}  // namespace unsubrelay::app
