// feedback.cpp: the `feedback:` section (SPEC Part 2): VERP domain, complaint
// addresses, bounce limits and SES notifications over SNS.
//
// Present, it switches the closed loop on with SPEC's defaults
// (hard_bounce_limit 1, soft_bounce_limit 0, bounce_suppression_days 0,
// forward_to_sender true); absent, the relay behaves as in Part 1.
#include "unsubrelay/common/text.hpp"
#include "loaders.hpp"

#include <algorithm>
#include <cctype>

namespace unsubrelay::config::detail {

namespace {

/// local@domain, with a local part an MTA accepts unquoted.
bool valid_address(std::string_view a) {
  const auto at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at > 64) return false;
  for (char c : a.substr(0, at)) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 0x7f || std::string_view("\"(),:;<>@[\\]").find(c) != std::string_view::npos) return false;
  }
  return valid_domain(a.substr(at + 1));
}

/// "https://host/..." with a path: a bare "https://sns.amazonaws.com" would
/// also match "https://sns.amazonaws.com.attacker.example/".
bool valid_url_prefix(std::string_view p) {
  if (!p.starts_with("https://")) return false;
  const auto host_end = p.find('/', 8);
  if (host_end == std::string_view::npos || host_end == 8) return false;
  const auto host = p.substr(8, host_end - 8);
  return host.find_first_of("@?#\\ ") == std::string_view::npos && p.find_first_of("?# \t") == std::string_view::npos;
}

void load_ses_sns(Section& s, SesSns& sns) {
  s.strings("topic_arns", sns.topic_arns);
  s.strings("cert_url_prefixes", sns.cert_url_prefixes);
  readable_file(s, "ca_file", sns.ca_file);
  s.integer("fetch_timeout_seconds", sns.fetch_timeout_seconds, 1, 120);
  s.integer("max_certificate_bytes", sns.max_certificate_bytes, 4096, 1 << 20);
  // At least an hour: SNS retries a delivery for up to an hour, and a retry must not be refused as a replay.
  s.integer("max_age_seconds", sns.max_age_seconds, 3600, 30 * 86400);
  if (sns.topic_arns.empty()) {
    s.error(s.raw("topic_arns"), s.path("topic_arns"), "at least one topic ARN is required (arn:aws:sns:...)");
  }
  for (std::size_t i = 0; i < sns.topic_arns.size(); ++i) {
    if (!sns.topic_arns[i].starts_with("arn:")) {
      s.error(s.raw("topic_arns")[i], fmt::format("{}[{}]", s.path("topic_arns"), i), "must be an ARN (arn:aws:sns:...)");
    }
  }
  if (sns.cert_url_prefixes.empty()) {
    s.error(s.raw("cert_url_prefixes"), s.path("cert_url_prefixes"),
            "at least one prefix is required (https://sns.REGION.amazonaws.com/)");
  }
  for (std::size_t i = 0; i < sns.cert_url_prefixes.size(); ++i) {
    if (!valid_url_prefix(sns.cert_url_prefixes[i])) {
      s.error(s.raw("cert_url_prefixes")[i], fmt::format("{}[{}]", s.path("cert_url_prefixes"), i),
              "must be https://HOST/ followed by an optional path (the host must end with a '/')");
    }
  }
  s.finish();
}

}  // namespace

void load_feedback_sender_keys(Section& s, Feedback& f) {
  s.string("return_path_domain", f.return_path_domain);
  f.return_path_domain = to_lower(f.return_path_domain);
  if (s.present("return_path_domain") && !valid_domain(f.return_path_domain)) {
    s.error(s.raw("return_path_domain"), s.path("return_path_domain"), "must be a domain name (bounces.example.com)");
  }
  s.boolean("forward_to_sender", f.forward_to_sender);
  s.integer("hard_bounce_limit", f.hard_bounce_limit, 0, 1000);
  s.integer("soft_bounce_limit", f.soft_bounce_limit, 0, 1000);
  s.integer("bounce_suppression_days", f.bounce_suppression_days, 0, 36500);
}

void load_feedback(Section& s, bool present, Feedback& f, Errors& errors) {
  if (!present) return;
  f.enabled = true;
  f.hard_bounce_limit = 1;
  load_feedback_sender_keys(s, f);
  s.strings("complaint_addresses", f.complaint_addresses);
  for (std::size_t i = 0; i < f.complaint_addresses.size(); ++i) {
    auto& a = f.complaint_addresses[i];
    a = to_lower(a);
    if (!valid_address(a)) {
      s.error(s.raw("complaint_addresses")[i], fmt::format("{}[{}]", s.path("complaint_addresses"), i),
              fmt::format("'{}' is not an address (fbl@example.com)", a));
    }
  }
  s.integer("max_report_bytes", f.max_report_bytes, 65536, 64ull << 20);
  networks(s, "trusted_networks", f.trusted_networks);
  s.integer("forward_per_hour", f.forward_per_hour, 1, 1000000);
  if (s.present("ses_sns")) {
    Section sns_section(s.raw("ses_sns"), s.path("ses_sns"), errors);
    SesSns sns;
    load_ses_sns(sns_section, sns);
    f.ses_sns = std::move(sns);
  }
  s.finish();
}

}  // namespace unsubrelay::config::detail
