// client_limits.cpp: per-client rate limits in bounded memory (client_limits.hpp).
#include "unsubrelay/http/client_limits.hpp"

#include <algorithm>

#include <boost/asio/ip/address.hpp>

namespace unsubrelay::http {

ClientLimits::ClientLimits(unsigned requests_per_minute, std::size_t capacity)
    : rate_(requests_per_minute / 60.0), capacity_(std::max<std::size_t>(1, capacity)) {}

delivery::RateLimit ClientLimits::fresh() const { return delivery::RateLimit(rate_, std::max(1.0, rate_ * 10)); }

std::size_t ClientLimits::size() const {
  std::lock_guard lock(mutex_);
  return index_.size();
}

// BEFORE (issue 22 point 8): the behaviour server.cpp had, extracted as it was.
bool ClientLimits::allow(std::string_view client, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (index_.size() > capacity_) {
    index_.clear();
    used_.clear();
  }
  const std::string key(client);
  auto it = index_.find(key);
  if (it == index_.end()) {
    used_.emplace_front(key, fresh());
    it = index_.emplace(key, used_.begin()).first;
  }
  return it->second->second.take(now) == Clock::duration::zero();
}

std::string client_bucket(std::string_view client) { return std::string(client); }

}  // namespace unsubrelay::http
