// listener.hpp: one listening TCP socket, opened the same way for SMTP and HTTP.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay {

/// Opens, binds (SO_REUSEADDR; IPv6 only on IPv6 addresses) and listens.
/// nullptr and error ("cannot listen on [::1]:25 (what): ...") on failure.
std::shared_ptr<boost::asio::ip::tcp::acceptor> open_listener(boost::asio::io_context& io,
                                                              const config::Endpoint& endpoint,
                                                              const std::string& what, std::string& error);

}  // namespace unsubrelay
