// loaders.hpp: the section loaders other loaders reuse or that live in their
// own files (private to src/config). A tenant's sections (tenants.cpp) are
// read by the same loaders as the top level's, over a copy of its values.
#pragma once

#include "section.hpp"

namespace unsubrelay::config::detail {

/// http: the unsubscribe service's listeners (plain and HTTPS), limits and exemptions.
void load_http(Section& s, Http& h, Errors& errors);
/// tls: the profile every TLS context uses.
void load_tls(Section& s, Tls& t);
/// feedback (feedback.cpp): present switches the closed loop on.
void load_feedback(Section& s, bool present, Feedback& f, Errors& errors);
/// The feedback keys a tenant may set for itself: return_path_domain,
/// forward_to_sender and the bounce limits.
void load_feedback_sender_keys(Section& s, Feedback& f);
/// upstream and unsubscribe (config.cpp): each key read overrides u's value.
void load_upstream(Section& s, Upstream& u);
void load_unsubscribe(Section& s, Unsubscribe& u, Errors& errors);
/// dkim and webhooks lists (config.cpp); path names the list in errors.
void load_dkim(const YAML::Node& node, const std::string& path, std::vector<Dkim>& out, Errors& errors);
void load_webhooks(const YAML::Node& node, const std::string& path, std::vector<Webhook>& out, Errors& errors);
/// tenants (tenants.cpp): run after every other section, whose values a
/// tenant's sections start from; also checks smtp.default_tenant.
void load_tenants(const YAML::Node& root, Config& config, Errors& errors);

}  // namespace unsubrelay::config::detail
