// retry.cpp: exponential backoff and queue lifetime.
#include "unsubrelay/delivery/retry.hpp"

#include <algorithm>

namespace unsubrelay::delivery {

long long backoff_seconds(const RetryPolicy& policy, unsigned attempts) {
  long long delay = policy.min_seconds;
  for (unsigned i = 1; i < attempts && delay < policy.max_seconds; ++i) delay *= 2;
  return std::min<long long>(delay, policy.max_seconds);
}

bool expired(const RetryPolicy& policy, long long arrival, long long now) {
  return now - arrival >= static_cast<long long>(policy.max_age_hours) * 3600;
}

}  // namespace unsubrelay::delivery
