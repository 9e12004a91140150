// rate_limit.hpp: a token bucket for upstream.max_messages_per_second.
//
// SES enforces a sending rate and answers "454 Throttling failure" above it;
// pacing sends to the configured rate keeps the relay under it. Pure: the
// caller passes the clock, the bucket says how long to wait.
#pragma once

#include <algorithm>
#include <chrono>

namespace unsubrelay::delivery {

class RateLimit {
 public:
  using Clock = std::chrono::steady_clock;

  /// rate: tokens per second (0 = unlimited); burst: tokens that may be saved up.
  RateLimit(double rate, double burst) : rate_(rate), burst_(std::max(1.0, burst)), tokens_(burst_) {}

  /// Takes a token if one is there and returns zero; otherwise returns how
  /// long to wait before asking again.
  Clock::duration take(Clock::time_point now) {
    if (rate_ <= 0) return Clock::duration::zero();
    if (last_ != Clock::time_point{}) {
      tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    }
    last_ = now;
    if (tokens_ >= 1.0) {
      tokens_ -= 1.0;
      return Clock::duration::zero();
    }
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>((1.0 - tokens_) / rate_));
  }

 private:
  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_{};
};

}  // namespace unsubrelay::delivery
