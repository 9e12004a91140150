// certificate_cache.hpp: SigningCertURL bodies by URL, and the failures too.
//
// A certificate that was fetched is kept for limits.ttl (SNS names each
// certificate by a URL of its own, so a cached URL's content does not
// change). A URL whose fetch failed is remembered as failed for
// limits.failure_ttl, so that deliveries naming it (anyone who knows a topic
// ARN can send them) fetch nothing more in that time. Both are bounded in
// entries (the oldest goes first). Deliveries that need the same URL while it
// is being fetched wait for that one fetch. Fetches run on a FetchPool: a
// caller that finds no place to wait gets FetchError::busy at once.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "unsubrelay/feedback/fetch_pool.hpp"
#include "unsubrelay/feedback/https_fetch.hpp"

namespace unsubrelay::feedback {

/// How long a failed fetch is remembered. SNS retries an HTTPS delivery that
/// got a 5xx three times, 20 s apart, by default: the third retry, 60 s
/// after the first try, finds the failure forgotten and fetches again.
constexpr std::chrono::seconds failed_fetch_ttl{30};

struct CacheLimits {
  std::size_t max_entries = 32;                      // certificates kept
  std::chrono::seconds ttl = std::chrono::hours(24);
  std::size_t max_failures = 256;                    // failed URLs remembered
  std::chrono::seconds failure_ttl = failed_fetch_ttl;
};

class CertificateCache {
 public:
  /// fetcher runs on pool; pool must outlive the cache's callers' waits.
  CertificateCache(Fetcher fetcher, FetchPool& pool, CacheLimits limits = {});

  /// The body at url: cached, else fetched now (or joined to the fetch under
  /// way); a remembered failure again; busy when the pool has no place.
  /// now: unix seconds.
  FetchResult get(const std::string& url, std::int64_t now);
  std::size_t size() const;           // certificates kept
  std::size_t failures() const;       // failed URLs remembered

 private:
  struct Entry {
    std::string body;
    std::int64_t time = 0;
  };
  struct Failure {
    FetchError error = FetchError::none;
    std::string detail;
    std::int64_t time = 0;
  };
  struct Pending {
    std::shared_future<FetchResult> result;
    std::uint64_t id = 0;
  };
  std::optional<FetchResult> cached(const std::string& url, std::int64_t now) const;
  void remember(const std::string& url, const FetchResult& result, std::int64_t now);

  Fetcher fetcher_;
  FetchPool& pool_;
  CacheLimits limits_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, Failure> failed_;
  std::map<std::string, Pending> pending_;
  std::uint64_t next_id_ = 0;
};

}  // namespace unsubrelay::feedback
