// https_fetch.hpp: the one outbound HTTP request the feedback side makes:
// GET of an SNS SigningCertURL or SubscribeURL.
//
// A URL that an SNS message names is attacker-chosen until proven otherwise,
// so https_get() re-checks the allow-list itself (sns.hpp url_allowed())
// before it resolves or connects: no code path fetches an unlisted URL (no
// SSRF). It verifies the peer (the CA store of FetchOptions::tls) and its
// name, follows no redirect (a 3xx is an error), and bounds the whole
// exchange by FetchLimits: one deadline for the host name lookup, connect,
// handshake, request and response, and a body size limit. Blocking, with its
// own io_context: call it off the network threads (feedback/fetch_pool.hpp).
// The cache of certificates is feedback/certificate_cache.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace unsubrelay::feedback {

struct FetchLimits {
  std::chrono::milliseconds timeout{5000};  // the whole exchange, host name lookup to last byte
  std::size_t max_body_bytes = 64 * 1024;   // an SNS certificate is ~2 KB, a confirmation answer ~1 KB
  std::size_t max_header_bytes = 16 * 1024;
};

struct FetchOptions {
  std::vector<std::string> allowed_prefixes;  // feedback.ses_sns.cert_url_prefixes
  /// The client context: the TLS profile and the CA store (common/tls.hpp
  /// make_client_context). Shared by every fetch; null: every fetch fails.
  std::shared_ptr<boost::asio::ssl::context> tls;
  FetchLimits limits;
};

enum class FetchError {
  none,
  not_allowed,  // the URL fails url_allowed(): nothing was resolved or connected
  resolve,      // no address for the host
  connect,      // no connection
  tls,          // handshake failed: untrusted certificate, wrong name, no shared cipher, ...
  timeout,      // limits.timeout passed (the host name lookup included)
  redirect,     // a 3xx answer (never followed)
  http_status,  // any other status but 200
  too_large,    // the body (or header) is over its limit
  protocol,     // not HTTP, or the connection broke mid-answer
  busy,         // not tried: too many fetches waiting already (fetch_pool.hpp)
};
const char* describe(FetchError e);

struct FetchResult {
  FetchError error = FetchError::none;
  int status = 0;      // the HTTP status, 0 when none was read
  std::string body;    // the body of a 200 answer
  std::string detail;  // what happened, for the log
  bool ok() const { return error == FetchError::none; }
};

/// GET url. Thread-safe: shares nothing between calls but options.tls.
FetchResult https_get(const std::string& url, const FetchOptions& options);

/// How the cache fetches (https_get with fixed options; tests inject fakes).
using Fetcher = std::function<FetchResult(const std::string& url)>;

}  // namespace unsubrelay::feedback
