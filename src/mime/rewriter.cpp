// rewriter.cpp: tokens and URLs per recipient, plan splicing, DKIM.
#include "unsubrelay/mime/rewriter.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/text.hpp"

#include "unsubrelay/dkim/signer.hpp"
#include "unsubrelay/spool/durable_file.hpp"

namespace unsubrelay::mime {

namespace {
constexpr const char* default_keys_path = "var/keys.yaml";
}

Rewriter::Rewriter(const config::Unsubscribe& settings, token::KeySet keys,
                   std::vector<std::shared_ptr<const dkim::Signer>> signers, bool ses_tags)
    : settings_(settings),
      options_(PlanOptions::from(settings)),
      keys_(std::move(keys)),
      signers_(std::move(signers)),
      base_url_(settings.base_url) {
  options_.ses_tags = ses_tags;
  while (base_url_.ends_with('/')) base_url_.pop_back();
}

Rewriter::~Rewriter() = default;

RenderPlan Rewriter::plan(std::string_view content, const std::string& queue_id) const {
  auto plan = build_plan(content, options_, queue_id);
  if (!plan.unknown_topic().empty()) {
    spdlog::error("{}: {}: '{}' is not one of unsubscribe.topics; the message is sent as having no topic", queue_id,
                  settings_.topic_header, printable(plan.unknown_topic(), 64));
  }
  return plan;
}

std::string Rewriter::token_for(const std::string& uid, const std::string& email_id,
                                const std::string& launch_id, const std::string& topic, long long now) const {
  token::Claims c;
  if (const auto parsed = token::parse_uid(uid)) c.uid = *parsed;
  c.email_id = email_id;
  c.launch_list_id = launch_id;
  c.topic = topic;
  c.issued = static_cast<std::uint32_t>(now);
  c.expires = settings_.token_ttl_days ? static_cast<std::uint32_t>(now + settings_.token_ttl_days * 86400LL) : 0;
  return token::sign(c, keys_.signing());
}

std::string Rewriter::url_for(const std::string& uid, const std::string& email_id, const std::string& launch_id,
                              long long now, const std::string& topic) const {
  return base_url_ + "/u/" + token_for(uid, email_id, launch_id, topic, now);
}

std::string Rewriter::body_url_for(const std::string& token) const {
  if (settings_.page_url.empty()) return base_url_ + "/u/" + token;
  return settings_.page_url + (settings_.page_url.find('?') == std::string::npos ? "?e=" : "&e=") + token;
}

std::string Rewriter::copy(const RenderPlan& plan, const std::string& uid, long long now) const {
  if (!plan.rewritten()) return plan.render({});
  const auto token = token_for(uid, plan.email_id(), plan.launch_list_id(), plan.topic(), now);
  RecipientValues v;
  v.url = fmt::format("{}/u/{}", base_url_, token);
  if (!settings_.page_url.empty()) v.body_url = body_url_for(token);
  if (!settings_.mailto_domain.empty()) v.mailto = fmt::format("u+{}@{}", token, settings_.mailto_domain);
  v.uid = uid;
  auto out = plan.render(v);
  for (const auto& signer : signers_) out = signer->sign(out) + out;
  return out;
}

std::optional<token::KeySet> load_keys(const config::Unsubscribe& settings, std::string& error, bool create) {
  std::string path = settings.keys_file.empty() ? default_keys_path : settings.keys_file;
  if (settings.keys_file.empty() && !std::filesystem::exists(path)) {
    if (!create) {
      error = fmt::format("no unsubscribe.keys_file is set and {} does not exist yet (the relay creates it)", path);
      return std::nullopt;
    }
    const auto dir = std::filesystem::path(path).parent_path().string();
    if (auto err = spool::make_directories(dir.empty() ? "." : dir); !err.empty()) {
      error = err;
      return std::nullopt;
    }
    if (auto err = spool::write_file_atomically(dir.empty() ? "." : dir, std::filesystem::path(path).filename(),
                                                token::generate_keys_file("k1"));
        !err.empty()) {
      error = err;
      return std::nullopt;
    }
  }
  std::vector<std::string> errors;
  auto keys = token::KeySet::load(path, errors);
  if (!keys) {
    error.clear();
    for (const auto& e : errors) error += (error.empty() ? "" : "; ") + e;
  }
  return keys;
}

}  // namespace unsubrelay::mime
