// https_fetch.hpp: the one outbound HTTP request the feedback side makes:
// GET of an SNS SigningCertURL or SubscribeURL, and the certificate cache.
//
// A URL that an SNS message names is attacker-chosen until proven otherwise,
// so https_get() re-checks the allow-list itself (sns.hpp url_allowed())
// before it resolves or connects: no code path fetches an unlisted URL (no
// SSRF). It verifies the peer (system CAs, or ca_file) and its name, follows
// no redirect (a 3xx is an error), and bounds the whole exchange by
// FetchLimits: one deadline for resolve + connect + handshake + request +
// response, and a body size limit. Blocking, with its own io_context: call it
// off the network threads (common/offload.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace unsubrelay::feedback {

struct FetchLimits {
  std::chrono::milliseconds timeout{5000};  // the whole exchange, resolve to last byte
  std::size_t max_body_bytes = 64 * 1024;   // an SNS certificate is ~2 KB, a confirmation answer ~1 KB
  std::size_t max_header_bytes = 16 * 1024;
};

struct FetchOptions {
  std::vector<std::string> allowed_prefixes;  // feedback.ses_sns.cert_url_prefixes
  std::string ca_file;                        // PEM bundle; "" = the system's CAs
  FetchLimits limits;
};

enum class FetchError {
  none,
  not_allowed,  // the URL fails url_allowed(): nothing was resolved or connected
  resolve,      // no address for the host
  connect,      // no connection
  tls,          // handshake failed: untrusted certificate, wrong name, ...
  timeout,      // limits.timeout passed
  redirect,     // a 3xx answer (never followed)
  http_status,  // any other status but 200
  too_large,    // the body (or header) is over its limit
  protocol,     // not HTTP, or the connection broke mid-answer
};
const char* describe(FetchError e);

struct FetchResult {
  FetchError error = FetchError::none;
  int status = 0;      // the HTTP status, 0 when none was read
  std::string body;    // the body of a 200 answer
  std::string detail;  // what happened, for the log
  bool ok() const { return error == FetchError::none; }
};

/// GET url. Thread-safe: shares nothing between calls.
FetchResult https_get(const std::string& url, const FetchOptions& options);

/// How the cache fetches (https_get with fixed options; tests inject fakes).
using Fetcher = std::function<FetchResult(const std::string& url)>;

/// SigningCertURLs already fetched, keyed by URL. Only 200 answers are kept;
/// at most max_entries (the oldest goes first), each for ttl. SNS names each
/// certificate by a URL of its own, so a cached URL's content does not change.
/// Thread-safe.
class CertificateCache {
 public:
  explicit CertificateCache(Fetcher fetcher, std::size_t max_entries = 32,
                            std::chrono::seconds ttl = std::chrono::hours(24));

  /// The body at url: cached, else fetched now. now: unix seconds.
  FetchResult get(const std::string& url, std::int64_t now);
  std::size_t size() const;

 private:
  struct Entry {
    std::string body;
    std::int64_t fetched = 0;
  };
  Fetcher fetcher_;
  std::size_t max_entries_;
  std::chrono::seconds ttl_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

}  // namespace unsubrelay::feedback
