// tenants.hpp: each tenant's own objects at run time (SPEC Part 3).
//
// A tenant has its own store (store.hpp: a file or a schema of its own), its
// own keys and DKIM signers (its rewriter), its own feedback recorder and
// hooks (its VERP domain), and an HTTP service over its store. The tenant
// "default" is the installation as it was before tenants: run.cpp opens it
// from the top level, the others come from open_tenant().
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/delivery/feedback_hooks.hpp"
#include "unsubrelay/delivery/queue_manager.hpp"
#include "unsubrelay/feedback/recorder.hpp"
#include "unsubrelay/mime/rewriter.hpp"
#include "unsubrelay/store/group_commit.hpp"
#include "unsubrelay/store/store.hpp"

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

  delivery::TenantDelivery delivery(const config::TenantSes& ses) const;
};

/// Opens a tenant other than "default": its store, keys (never created here:
/// tenants[].keys_file is required) and DKIM signers. nullptr and error on failure.
std::unique_ptr<TenantRuntime> open_tenant(const config::Config& top, const config::Tenant& tenant,
                                           feedback::FeedbackMetrics& metrics, std::string& error);

}  // namespace unsubrelay::app
