// network.hpp: CIDR networks for smtp.allow_networks.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>

namespace unsubrelay::config {

/// An IPv4 or IPv6 network. IPv4-mapped IPv6 client addresses (::ffff:a.b.c.d,
/// seen on dual-stack listeners) match the IPv4 networks.
class Network {
 public:
  /// Parses "a.b.c.d/len", "x::y/len" or a bare address (a host network).
  static std::optional<Network> parse(std::string_view text);

  bool contains(const boost::asio::ip::address& address) const;
  /// Every address of inner is in this network (same family, prefix no shorter).
  bool contains(const Network& inner) const;
  /// The same addresses (10.1.2.3/16 is 10.1.0.0/16); tenants' networks must differ.
  bool operator==(const Network& other) const { return contains(other) && other.contains(*this); }
  /// Its prefix length: the longer, the more specific (tenants[].networks).
  unsigned prefix_length() const { return prefix_; }
  std::string to_string() const;

 private:
  bool prefix_matches(const std::array<unsigned char, 16>& bytes) const;

  bool v6_ = false;
  std::array<unsigned char, 16> bytes_{};
  unsigned prefix_ = 0;
};

/// Strips the IPv4-mapped form so 127.0.0.1 on a [::] listener reads as IPv4.
boost::asio::ip::address unmap(const boost::asio::ip::address& address);

}  // namespace unsubrelay::config
