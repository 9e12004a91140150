// addresses.cpp: recognising b+TOKEN@return_path_domain and the complaint addresses.
#include "unsubrelay/feedback/addresses.hpp"

#include <algorithm>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::feedback {

namespace {
constexpr std::string_view verp_prefix = "b+";
}

Addresses::Addresses(const config::Feedback& settings)
    : return_path_domain_(to_lower(settings.return_path_domain)) {
  for (const auto& a : settings.complaint_addresses) complaint_addresses_.push_back(to_lower(a));
}

void Addresses::also_accept(std::string_view return_path_domain) {
  if (!return_path_domain.empty()) tenant_domains_.push_back(to_lower(return_path_domain));
}

std::string Addresses::verp_token(std::string_view recipient) const {
  if (return_path_domain_.empty() && tenant_domains_.empty()) return {};
  const auto at = recipient.rfind('@');
  if (at == std::string_view::npos || at <= verp_prefix.size()) return {};
  const auto domain = recipient.substr(at + 1);
  const bool ours = (!return_path_domain_.empty() && iequals(domain, return_path_domain_)) ||
                    std::any_of(tenant_domains_.begin(), tenant_domains_.end(),
                                [&](const std::string& d) { return iequals(domain, d); });
  if (!ours || !istarts_with(recipient, verp_prefix)) return {};
  return std::string(recipient.substr(verp_prefix.size(), at - verp_prefix.size()));
}

AddressKind Addresses::classify(std::string_view recipient) const {
  if (!verp_token(recipient).empty()) return AddressKind::verp;
  const auto lower = to_lower(recipient);
  if (std::find(complaint_addresses_.begin(), complaint_addresses_.end(), lower) != complaint_addresses_.end()) {
    return AddressKind::complaint;
  }
  return AddressKind::none;
}

Addresses intake_addresses(const config::Config& config) {
  Addresses out(config.feedback);
  for (const auto& t : config.tenants) {
    if (!iequals(t.feedback.return_path_domain, config.feedback.return_path_domain)) {
      out.also_accept(t.feedback.return_path_domain);
    }
  }
  return out;
}

std::string Addresses::verp_address(std::string_view token) const {
  return std::string(verp_prefix) + std::string(token) + "@" + return_path_domain_;
}

}  // namespace unsubrelay::feedback
