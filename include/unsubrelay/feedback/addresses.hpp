// addresses.hpp: which recipients are the relay's own feedback addresses.
//
// b+TOKEN@return_path_domain (VERP: DSNs come back here) and the
// complaint_addresses (ARF reports). The SMTP session takes mail to them from
// anyone and never relays it; the queue manager hands it to the feedback
// processor instead of the upstream. Pure: no store, no token check.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay::feedback {

enum class AddressKind { none, verp, complaint };

class Addresses {
 public:
  Addresses() = default;
  explicit Addresses(const config::Feedback& settings);

  AddressKind classify(std::string_view recipient) const;
  /// TOKEN of b+TOKEN@return_path_domain ("" for any other address).
  std::string verp_token(std::string_view recipient) const;
  /// b+TOKEN@return_path_domain.
  std::string verp_address(std::string_view token) const;
  bool empty() const { return return_path_domain_.empty() && complaint_addresses_.empty() && tenant_domains_.empty(); }
  const std::string& return_path_domain() const { return return_path_domain_; }
  /// A tenant's own return_path_domain (SPEC Part 3): its b+TOKEN@ mail is taken too.
  void also_accept(std::string_view return_path_domain);

 private:
  std::string return_path_domain_;                // lower case; "" = no VERP
  std::vector<std::string> complaint_addresses_;  // lower case
  std::vector<std::string> tenant_domains_;       // lower case: other tenants' return_path_domains
};

/// The installation's feedback addresses: the top level's, and each tenant's
/// own return_path_domain (SPEC Part 3).
Addresses intake_addresses(const config::Config& config);

}  // namespace unsubrelay::feedback
