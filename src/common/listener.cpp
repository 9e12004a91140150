// listener.cpp: opening listening sockets.
#include "unsubrelay/common/listener.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <fmt/format.h>

namespace unsubrelay {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::shared_ptr<tcp::acceptor> open_listener(asio::io_context& io, const config::Endpoint& ep, const std::string& what,
                                             std::string& error) {
  boost::system::error_code ec;
  const tcp::endpoint endpoint(asio::ip::make_address(ep.host, ec), ep.port);
  auto acceptor = std::make_shared<tcp::acceptor>(io);
  if (!ec) acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && endpoint.address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = fmt::format("cannot listen on {} ({}): {}", ep.to_string(), what, ec.message());
    return nullptr;
  }
  return acceptor;
}

}  // namespace unsubrelay
