// rewriter.hpp: the per-recipient copies of a spooled message.
//
// Joins the render plan (mime), the signed tokens (token) and, when
// configured, DKIM signing (dkim): plan() once per message, copy() once
// per recipient.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/mime/render_plan.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::dkim {
class Signer;
}

namespace unsubrelay::mime {

class Rewriter {
 public:
  Rewriter(const config::Unsubscribe& settings, token::KeySet keys,
           std::vector<std::shared_ptr<const dkim::Signer>> signers = {}, bool ses_tags = false);
  ~Rewriter();

  /// Logs (as an error) a topic header that names no configured topic.
  RenderPlan plan(std::string_view content, const std::string& queue_id) const;
  /// The copy for one recipient (uid from the store): its own token, URL, and DKIM signature.
  std::string copy(const RenderPlan& plan, const std::string& uid, long long now) const;

  /// The URL the relay injects for this contact, campaign, launch and topic.
  std::string url_for(const std::string& uid, const std::string& email_id, const std::string& launch_id,
                      long long now, const std::string& topic = "") const;
  /// The link a copy's body carries: PAGE_URL?e=TOKEN with unsubscribe.page_url, else BASE/u/TOKEN.
  std::string body_url_for(const std::string& token) const;
  const token::KeySet& keys() const { return keys_; }
  /// smtp.tenant_header: a field no copy keeps, campaign or transactional (RenderPlan::stripped).
  void set_strip_field(const std::string& name) { options_.strip_field = name; }

 private:
  std::string token_for(const std::string& uid, const std::string& email_id, const std::string& launch_id,
                        const std::string& topic, long long now) const;

  config::Unsubscribe settings_;
  PlanOptions options_;
  token::KeySet keys_;
  std::vector<std::shared_ptr<const dkim::Signer>> signers_;
  std::string base_url_;  // unsubscribe.base_url without trailing slashes
};

/// Loads unsubscribe.keys_file, or, when it is not set, var/keys.yaml,
/// creating that with a fresh random key on first use (quick start).
std::optional<token::KeySet> load_keys(const config::Unsubscribe& settings, std::string& error, bool create);

}  // namespace unsubrelay::mime
