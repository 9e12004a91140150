// certificate_cache.cpp: SigningCertURL bodies and failures by URL, bounded in count and age.
#include "unsubrelay/feedback/certificate_cache.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace unsubrelay::feedback {

namespace {

/// Drops the entry with the smallest time while the map holds limit or more.
template <class Map>
void make_room(Map& map, std::size_t limit) {
  while (!map.empty() && map.size() >= limit) {
    auto oldest = map.begin();
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (it->second.time < oldest->second.time) oldest = it;
    }
    map.erase(oldest);
  }
}

bool fresh(std::int64_t time, std::int64_t now, std::chrono::seconds ttl) {
  return now >= time && now - time < ttl.count();
}

}  // namespace

CertificateCache::CertificateCache(Fetcher fetcher, FetchPool& pool, CacheLimits limits)
    : fetcher_(std::move(fetcher)), pool_(pool), limits_(limits) {
  limits_.max_entries = std::max<std::size_t>(1, limits_.max_entries);
  limits_.max_failures = std::max<std::size_t>(1, limits_.max_failures);
}

std::optional<FetchResult> CertificateCache::cached(const std::string& url, std::int64_t now) const {
  if (const auto it = entries_.find(url); it != entries_.end() && fresh(it->second.time, now, limits_.ttl)) {
    FetchResult hit;
    hit.status = 200;
    hit.body = it->second.body;
    hit.detail = "cached";
    return hit;
  }
  if (const auto it = failed_.find(url); it != failed_.end() && fresh(it->second.time, now, limits_.failure_ttl)) {
    FetchResult again;
    again.error = it->second.error;
    again.detail = fmt::format("{} (failed {} s ago; not fetched again before {} s)", it->second.detail,
                               now - it->second.time, limits_.failure_ttl.count());
    return again;
  }
  return std::nullopt;
}

void CertificateCache::remember(const std::string& url, const FetchResult& result, std::int64_t now) {
  if (result.ok()) {
    failed_.erase(url);
    entries_.erase(url);
    make_room(entries_, limits_.max_entries);
    entries_[url] = Entry{result.body, now};
  } else if (result.error != FetchError::busy) {
    failed_.erase(url);
    make_room(failed_, limits_.max_failures);
    failed_[url] = Failure{result.error, result.detail, now};
  }
}

FetchResult CertificateCache::get(const std::string& url, std::int64_t now) {
  Pending pending;
  std::optional<FetchPool::Admission> admission;
  {
    std::lock_guard lock(mutex_);
    if (auto hit = cached(url, now)) return *hit;
    admission = pool_.admit();
    if (!admission) {
      FetchResult busy;
      busy.error = FetchError::busy;
      busy.detail = fmt::format("all {} places taken", pool_.waiting());
      return busy;
    }
    auto it = pending_.find(url);
    if (it == pending_.end()) {
      // The job holds a copy of the fetcher, never the cache: the waiter stores the result.
      it = pending_.emplace(url, Pending{pool_.post([fetcher = fetcher_, url] { return fetcher(url); }), ++next_id_})
               .first;
    }
    pending = it->second;
  }
  auto result = pending.result.get();  // off the lock: other URLs and cache hits go on meanwhile
  std::lock_guard lock(mutex_);
  if (const auto it = pending_.find(url); it != pending_.end() && it->second.id == pending.id) {
    pending_.erase(it);  // the first waiter back stores the result for everyone
    remember(url, result, now);
  }
  return result;
}

std::size_t CertificateCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

std::size_t CertificateCache::failures() const {
  std::lock_guard lock(mutex_);
  return failed_.size();
}

}  // namespace unsubrelay::feedback
