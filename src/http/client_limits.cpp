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

bool ClientLimits::allow(std::string_view client, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  const std::string key(client);
  auto it = index_.find(key);
  if (it != index_.end()) {
    used_.splice(used_.begin(), used_, it->second);  // now the most recently used
  } else if (index_.size() < capacity_) {
    used_.emplace_front(key, fresh());
    index_.emplace(key, used_.begin());
  } else {
    // Full: the client seen least recently makes room. Its bucket has had the
    // longest time to refill, so forgetting it loses the least; a clear() (as
    // before) gave every limited client a full bucket again.
    auto oldest = std::prev(used_.end());
    index_.erase(oldest->first);
    oldest->first = key;
    oldest->second = fresh();
    used_.splice(used_.begin(), used_, oldest);
    index_.emplace(key, used_.begin());
  }
  return used_.front().second.take(now) == Clock::duration::zero();
}

std::string client_bucket(std::string_view client) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(std::string(client), ec);
  if (ec) return std::string(client);
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  if (!address.is_v6()) return address.to_string();
  // One host commonly holds a whole /64 (SLAAC, privacy addresses): count it once.
  auto bytes = address.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

}  // namespace unsubrelay::http
