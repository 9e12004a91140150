// certificate_cache.cpp: SigningCertURL bodies by URL, bounded in count and age.
#include "unsubrelay/feedback/https_fetch.hpp"

namespace unsubrelay::feedback {

CertificateCache::CertificateCache(Fetcher fetcher, std::size_t max_entries, std::chrono::seconds ttl)
    : fetcher_(std::move(fetcher)), max_entries_(std::max<std::size_t>(1, max_entries)), ttl_(ttl) {}

FetchResult CertificateCache::get(const std::string& url, std::int64_t now) {
  {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(url);
    if (it != entries_.end() && now - it->second.fetched < ttl_.count() && now >= it->second.fetched) {
      FetchResult hit;
      hit.status = 200;
      hit.body = it->second.body;
      hit.detail = "cached";
      return hit;
    }
  }
  // Fetched without the lock: one slow fetch must not stall verifications from the cache.
  auto result = fetcher_(url);
  if (!result.ok()) return result;
  std::lock_guard lock(mutex_);
  entries_.erase(url);
  while (entries_.size() >= max_entries_) {
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.fetched < oldest->second.fetched) oldest = it;
    }
    entries_.erase(oldest);
  }
  entries_[url] = Entry{result.body, now};
  return result;
}

std::size_t CertificateCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace unsubrelay::feedback
