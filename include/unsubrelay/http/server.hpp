// server.hpp: the HTTP listeners (Boost.Beast), in front of http::Service.
//
// Every read has a deadline and named limits (header and body size, requests
// per minute per client); a client over a limit gets 431, 413 or 429 and the
// connection closes. Beast lives in this one translation unit: it is slow to
// compile.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/http/service.hpp"

namespace unsubrelay::http {

class Server {
 public:
  Server(boost::asio::io_context& io, const config::Http& config, Service& service);
  ~Server();
  std::string start();
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace unsubrelay::http
