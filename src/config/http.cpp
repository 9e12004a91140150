// http.cpp: the `http:` section: plain and HTTPS listeners, limits, exemptions.
#include <unistd.h>

#include "loaders.hpp"
#include "unsubrelay/http/api_keys.hpp"

namespace unsubrelay::config::detail {

namespace {

/// Each key line's scopes must be known (http/api_keys.hpp): the errors name the keys file's line.
void check_api_keys(Section& s, const std::string& path) {
  if (path.empty() || ::access(path.c_str(), R_OK) != 0) return;  // readable_file said why
  // Bounded first: a /proc file says it has 0 bytes and load_api_keys would read all of it.
  if (auto why = unreadable_whole(path, 1u << 20); !why.empty()) {
    return s.error(s.raw("api_keys_file"), s.path("api_keys_file"), why);
  }
  for (const auto& e : http::load_api_keys(path).errors) s.error(s.raw("api_keys_file"), s.path("api_keys_file"), e);
}

}  // namespace

void load_http(Section& s, Http& h, Errors& errors) {
  endpoints(s, "listen", h.listen);
  endpoints(s, "listen_tls", h.listen_tls);
  readable_file(s, "api_keys_file", h.api_keys_file);
  check_api_keys(s, h.api_keys_file);
  readable_file(s, "page_template", h.page_template);
  s.integer("max_header_bytes", h.max_header_bytes, 1024, 1 << 20);
  s.integer("max_body_bytes", h.max_body_bytes, 1024, 16 << 20);
  s.integer("max_import_bytes", h.max_import_bytes, 1024, std::uint64_t{1} << 40);  // streamed (docs/suppression.md)
  s.integer("requests_per_minute", h.requests_per_minute, 1, 1000000);
  s.integer("timeout_seconds", h.timeout_seconds, 1, 3600);
  s.integer("max_connections", h.max_connections, 1, 1000000);
  s.integer("hsts_max_age_seconds", h.hsts_max_age_seconds, 0, 10 * 365 * 86400);
  networks(s, "trusted_proxies", h.trusted_proxies);
  networks(s, "metrics_networks", h.metrics_networks);
  if (s.present("tls")) {
    Section t(s.raw("tls"), "http.tls", errors);
    TlsFiles files;
    readable_file(t, "cert", files.cert);
    readable_file(t, "key", files.key);
    t.finish();
    if (files.cert.empty() || files.key.empty()) {
      t.error(s.raw("tls"), "http.tls", "needs both cert and key");
    } else {
      h.tls = files;
    }
    if (h.listen_tls.empty()) {
      s.error(s.raw("tls"), "http.listen_tls", "http.tls needs at least one HTTPS listener here");
    }
  }
  if (!h.listen_tls.empty() && !s.present("tls")) {
    s.error(s.raw("listen_tls"), "http.listen_tls", "HTTPS listeners need http.tls cert and key");
  }
  s.finish();
}

}  // namespace unsubrelay::config::detail
