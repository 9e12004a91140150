// client_limits.hpp: http.requests_per_minute per client, in bounded memory.
//
// One token bucket per client (a burst of ten minutes' worth... at most
// rate * 10 requests, then rate per second). The table holds at most
// `capacity` clients; a new client beyond that takes the place of the one
// seen least recently (O(1): a list in use order and a hash index), so a
// spray of source addresses can push out only clients that have been quiet
// longest, whose buckets have had the most time to refill, and never resets
// an active client's count. IPv6 clients count per /64: one host usually
// has a whole /64 to pick addresses from.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "unsubrelay/delivery/rate_limit.hpp"

namespace unsubrelay::http {

class ClientLimits {
 public:
  using Clock = delivery::RateLimit::Clock;
  static constexpr std::size_t default_capacity = 100000;

  explicit ClientLimits(unsigned requests_per_minute, std::size_t capacity = default_capacity);

  /// Takes one request from the client's bucket: false when it is empty (429).
  bool allow(std::string_view client, Clock::time_point now);
  /// Clients in the table.
  std::size_t size() const;

 private:
  using Entry = std::pair<std::string, delivery::RateLimit>;
  delivery::RateLimit fresh() const;

  double rate_;
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::list<Entry> used_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

/// The bucket a client address counts in: IPv4 as it is, IPv6 its /64
/// ("2001:db8:1:2::/64"); text that is not an address as it is.
std::string client_bucket(std::string_view client);

}  // namespace unsubrelay::http
