// directory.hpp: which tenant a client submits as, and which domains a
// tenant may send as (SPEC Part 3). Pure: built from the configuration, no
// I/O, so the SMTP session asks it at MAIL FROM and after DATA.
//
// A domain belongs to the tenant that lists it, or a parent of it, most
// specifically: with acme.example at acme and news.acme.example at beta,
// mail from x.news.acme.example is beta's. A domain no tenant lists may be
// sent as only by the tenant "default", and only when it lists none itself
// (an installation adding tenants keeps its old senders working).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay::tenant {

inline constexpr std::string_view default_id = "default";

class Directory {
 public:
  Directory() = default;  // no tenants: everything is "default", every domain allowed
  explicit Directory(const config::Config& config);

  bool enabled() const { return enabled_; }
  /// The tenant a relaying client submits as: its AUTH identity's, else the
  /// most specific matching network's, else (with_default) smtp.default_tenant;
  /// nullopt: none. Between the two comes smtp.tenant_header, read after DATA.
  std::optional<std::string> select(std::string_view auth_user, const boost::asio::ip::address& client,
                                    bool with_default = true) const;
  /// smtp.default_tenant, or nullopt when there is none.
  std::optional<std::string> default_tenant() const;
  /// Whether id is a configured tenant ("default" included once tenants exist).
  bool known(std::string_view id) const { return lists_domains_.find(id) != lists_domains_.end(); }
  /// True when the tenant may use domain (lower or upper case) as a sender.
  bool domain_allowed(std::string_view tenant, std::string_view domain) const;

 private:
  bool enabled_ = false;
  std::map<std::string, std::string, std::less<>> by_user_;
  std::vector<std::pair<config::Network, std::string>> networks_;  // longest prefix first
  std::map<std::string, std::string, std::less<>> domain_owner_;   // lower-case domain -> tenant
  std::map<std::string, bool, std::less<>> lists_domains_;         // tenant -> has sender_domains
  std::string default_tenant_;
};

/// The domain of an envelope address, lower case; "" for the null sender or none.
std::string address_domain(std::string_view address);

/// Every domain named by a From: field's value (RFC 5322 mailbox-list), lower
/// case. Deliberately suspicious: an '@' anywhere outside a quoted string or a
/// comment counts (a display name "boss@other.example" <x@acme.example> names
/// other.example too), so a spoof cannot hide behind lax syntax.
std::vector<std::string> from_domains(std::string_view value);

}  // namespace unsubrelay::tenant
