// fair_queue.hpp: delivery shared between tenants by weight (SPEC Part 3,
// "Quotas and fairness"; issue 24).
//
// A tenant with a backlog must not delay another tenant's new message by the
// length of that backlog. The queue manager keeps what waits for delivery
// (due messages, copies waiting for a copy slot) in one FIFO per tenant and
// serves the tenants by deficit round robin (Shreedhar and Varghese, 1995),
// each item costing one: a tenant of weight w takes up to w items per turn,
// then goes behind the others. So a tenant that starts waiting is served
// within one round (the sum of the other waiting tenants' weights), tenants
// that all wait share in proportion to their weights, and a tenant alone
// takes everything (nothing is held back for tenants with nothing to send).
// Each push and pop is O(1) whatever the backlog: the tenants with nothing
// waiting have no lane, and a lane's weight is looked up once, when it opens.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace unsubrelay::delivery {

/// The tenants' delivery weights (tenants[].limits.delivery_weight); 1 for a
/// tenant not named.
class TenantWeights {
 public:
  TenantWeights() = default;
  explicit TenantWeights(const std::map<std::string, unsigned>& weights);
  /// The tenant a queue file's N record names: "" (no record) is "default".
  static std::string key(std::string_view tenant);
  unsigned weight(const std::string& key) const;

 private:
  std::map<std::string, unsigned> weights_;  // by key(); at least 1 each
};

/// FIFOs of T, one per tenant, served by weighted deficit round robin.
template <class T>
class FairQueue {
 public:
  /// weights must outlive the queue; it may change while nothing waits.
  explicit FairQueue(const TenantWeights& weights) : weights_(&weights) {}

  void push(std::string_view tenant, T item);
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  /// Tenants with something waiting.
  std::size_t tenants() const { return lanes_.size(); }
  /// The next item in fair order. Not when empty().
  T pop();

 private:
  struct Lane {
    std::deque<T> items;
    unsigned weight = 1;
    unsigned credit = 0;  // items it may still take in this turn
  };
  using Node = std::pair<const std::string, Lane>;

  const TenantWeights* weights_;
  std::unordered_map<std::string, Lane> lanes_;  // only tenants with items
  std::deque<Node*> ring_;                       // their turns; the front is serving (nodes never move)
  std::size_t size_ = 0;
};

template <class T>
void FairQueue<T>::push(std::string_view tenant, T item) {
  auto key = TenantWeights::key(tenant);
  auto [it, opened] = lanes_.try_emplace(std::move(key));
  auto& lane = it->second;
  if (opened) {  // behind the tenants already waiting, with a full turn
    lane.weight = weights_->weight(it->first);
    lane.credit = lane.weight;
    ring_.push_back(&*it);
  }
  lane.items.push_back(std::move(item));
  ++size_;
}

template <class T>
T FairQueue<T>::pop() {
  auto* node = ring_.front();
  auto& lane = node->second;
  T item = std::move(lane.items.front());
  lane.items.pop_front();
  --size_;
  if (lane.items.empty()) {  // nothing left: no credit kept for later (DRR)
    ring_.pop_front();
    lanes_.erase(node->first);
  } else if (--lane.credit == 0) {  // its turn is over: behind the others, with a new one
    lane.credit = lane.weight;
    ring_.pop_front();
    ring_.push_back(node);
  }
  return item;
}

}  // namespace unsubrelay::delivery
