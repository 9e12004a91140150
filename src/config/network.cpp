// network.cpp: CIDR parsing and matching.
#include "unsubrelay/config/network.hpp"

#include <charconv>

namespace unsubrelay::config {

namespace ip = boost::asio::ip;

ip::address unmap(const ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, address.to_v6());
  }
  return address;
}

std::optional<Network> Network::parse(std::string_view text) {
  std::string_view addr_text = text;
  std::optional<unsigned> prefix;
  if (const auto slash = text.find('/'); slash != std::string_view::npos) {
    addr_text = text.substr(0, slash);
    const auto len_text = text.substr(slash + 1);
    unsigned len = 0;
    const auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
    if (ec != std::errc{} || end != len_text.data() + len_text.size() || len_text.empty()) {
      return std::nullopt;
    }
    prefix = len;
  }
  boost::system::error_code ec;
  const auto address = ip::make_address(std::string(addr_text), ec);
  if (ec) return std::nullopt;

  Network net;
  net.v6_ = address.is_v6();
  const unsigned max = net.v6_ ? 128 : 32;
  net.prefix_ = prefix.value_or(max);
  if (net.prefix_ > max) return std::nullopt;
  if (net.v6_) {
    const auto b = address.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), net.bytes_.begin());
  } else {
    const auto b = address.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), net.bytes_.begin());
  }
  return net;
}

bool Network::contains(const ip::address& raw) const {
  const auto address = unmap(raw);
  if (address.is_v6() != v6_) return false;
  std::array<unsigned char, 16> b{};
  if (v6_) {
    const auto v = address.to_v6().to_bytes();
    std::copy(v.begin(), v.end(), b.begin());
  } else {
    const auto v = address.to_v4().to_bytes();
    std::copy(v.begin(), v.end(), b.begin());
  }
  return prefix_matches(b);
}

bool Network::contains(const Network& inner) const {
  return inner.v6_ == v6_ && inner.prefix_ >= prefix_ && prefix_matches(inner.bytes_);
}

bool Network::prefix_matches(const std::array<unsigned char, 16>& b) const {
  unsigned bits = prefix_;
  for (std::size_t i = 0; bits > 0; ++i, bits = bits >= 8 ? bits - 8 : 0) {
    const unsigned take = bits >= 8 ? 8 : bits;
    const auto mask = static_cast<unsigned char>(0xff << (8 - take));
    if ((b[i] & mask) != (bytes_[i] & mask)) return false;
  }
  return true;
}

std::string Network::to_string() const {
  std::string addr;
  if (v6_) {
    ip::address_v6::bytes_type b;
    std::copy(bytes_.begin(), bytes_.end(), b.begin());
    addr = ip::address_v6(b).to_string();
  } else {
    ip::address_v4::bytes_type b;
    std::copy(bytes_.begin(), bytes_.begin() + 4, b.begin());
    addr = ip::address_v4(b).to_string();
  }
  return addr + "/" + std::to_string(prefix_);
}

}  // namespace unsubrelay::config
