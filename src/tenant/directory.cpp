// directory.cpp: tenant selection and sender-domain ownership (directory.hpp).
#include "unsubrelay/tenant/directory.hpp"

#include <algorithm>
#include <cctype>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::tenant {

namespace {

bool domain_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'; }

}  // namespace

Directory::Directory(const config::Config& config) : enabled_(!config.tenants.empty()) {
  default_tenant_ = config.smtp.default_tenant;
  for (const auto& t : config.tenants) {
    for (const auto& u : t.smtp_users) by_user_.emplace(u, t.id);
    for (const auto& n : t.networks) networks_.emplace_back(n, t.id);
    for (const auto& d : t.sender_domains) domain_owner_.emplace(to_lower(d), t.id);
    lists_domains_[t.id] = !t.sender_domains.empty();
  }
  std::stable_sort(networks_.begin(), networks_.end(),
                   [](const auto& a, const auto& b) { return a.first.prefix_length() > b.first.prefix_length(); });
}

std::optional<std::string> Directory::select(std::string_view auth_user, const boost::asio::ip::address& client,
                                             bool with_default) const {
  if (!enabled_) return std::string(default_id);
  if (!auth_user.empty()) {
    if (const auto it = by_user_.find(auth_user); it != by_user_.end()) return it->second;
  }
  for (const auto& [network, id] : networks_) {
    if (network.contains(client)) return id;
  }
  return with_default ? default_tenant() : std::nullopt;
}

std::optional<std::string> Directory::default_tenant() const {
  if (!enabled_) return std::string(default_id);
  if (!default_tenant_.empty()) return default_tenant_;
  return std::nullopt;
}

bool Directory::domain_allowed(std::string_view tenant, std::string_view domain) const {
  if (!enabled_) return true;
  std::string d = to_lower(domain);
  while (!d.empty() && d.back() == '.') d.pop_back();
  if (d.empty()) return false;
  for (std::string_view rest = d;;) {
    if (const auto it = domain_owner_.find(rest); it != domain_owner_.end()) return it->second == tenant;
    const auto dot = rest.find('.');
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  // Nobody's domain: only a "default" tenant that claims none may use it.
  const auto listed = lists_domains_.find(tenant);
  return tenant == default_id && (listed == lists_domains_.end() || !listed->second);
}

std::string address_domain(std::string_view address) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos) return "";
  return to_lower(address.substr(at + 1));
}

std::vector<std::string> from_domains(std::string_view value) {
  std::vector<std::string> out;
  int comment = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\\' && (quoted || comment)) {
      ++i;  // quoted-pair
    } else if (quoted) {
      quoted = c != '"';
    } else if (c == '(') {
      ++comment;
    } else if (c == ')' && comment) {
      --comment;
    } else if (comment) {
      continue;
    } else if (c == '"') {
      quoted = true;
    } else if (c == '@') {
      std::size_t end = i + 1;
      while (end < value.size() && (domain_char(value[end]) || value[end] == '[' || value[end] == ']' ||
                                    value[end] == ':')) {
        ++end;
      }
      out.push_back(to_lower(value.substr(i + 1, end - i - 1)));
      i = end - 1;
    }
  }
  return out;
}

}  // namespace unsubrelay::tenant
