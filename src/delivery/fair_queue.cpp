// fair_queue.cpp: the tenants' weights (the scheduling itself is the template in fair_queue.hpp).
#include "unsubrelay/delivery/fair_queue.hpp"

#include <algorithm>

namespace unsubrelay::delivery {

TenantWeights::TenantWeights(const std::map<std::string, unsigned>& weights) {
  // The configuration checks 1-1000; 0 here would stall a lane's turns forever.
  for (const auto& [tenant, weight] : weights) weights_[key(tenant)] = std::max(weight, 1u);
}

std::string TenantWeights::key(std::string_view tenant) {
  return tenant.empty() ? std::string("default") : std::string(tenant);
}

unsigned TenantWeights::weight(const std::string& key) const {
  const auto it = weights_.find(key);
  return it == weights_.end() ? 1 : it->second;
}

}  // namespace unsubrelay::delivery
