// network_match.hpp: whether a client address, as text (a socket's peer, the
// queue file's C record, the address after trusted_proxies), lies in one of a
// list of configured networks (http.metrics_networks, feedback.trusted_networks).
#pragma once

#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "unsubrelay/config/network.hpp"

namespace unsubrelay::config {

/// False for text that is no address: an unreadable client is trusted by no list.
inline bool in_networks(std::string_view client, const std::vector<Network>& networks) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(client, ec);
  if (ec) return false;
  for (const auto& net : networks) {
    if (net.contains(address)) return true;
  }
  return false;
}

}  // namespace unsubrelay::config
