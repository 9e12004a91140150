// retry.hpp: when to try a deferred message again, and when to give up.
#pragma once

namespace unsubrelay::delivery {

struct RetryPolicy {
  unsigned min_seconds = 300;   // Postfix minimal_backoff_time
  unsigned max_seconds = 4000;  // Postfix maximal_backoff_time
  unsigned max_age_hours = 120; // Postfix maximal_queue_lifetime
};

/// Delay before the next attempt after `attempts` failed ones: doubles from
/// min_seconds, capped at max_seconds (Postfix's exponential backoff).
long long backoff_seconds(const RetryPolicy& policy, unsigned attempts);

/// True when a message that arrived at `arrival` has been queued too long.
bool expired(const RetryPolicy& policy, long long arrival, long long now);

}  // namespace unsubrelay::delivery
