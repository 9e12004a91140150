// fair_queue_test.cpp: the delivery scheduler between tenants on its own
// (fair_queue.hpp): shares by weight, a newcomer's turn, work conservation.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "unsubrelay/delivery/fair_queue.hpp"

using unsubrelay::delivery::FairQueue;
using unsubrelay::delivery::TenantWeights;

namespace {

/// Pops n items and counts them by their tenant (the item is its tenant's name).
std::map<std::string, int> pop_count(FairQueue<std::string>& q, int n) {
  std::map<std::string, int> got;
  for (int i = 0; i < n && !q.empty(); ++i) ++got[q.pop()];
  return got;
}

void fill(FairQueue<std::string>& q, const std::string& tenant, int n) {
  for (int i = 0; i < n; ++i) q.push(tenant, tenant);
}

}  // namespace

// Two tenants of weight 1 with long backlogs alternate: over many picks each
// gets half, and neither ever takes two turns in a row.
TEST(FairQueue, EqualWeightsShareEqually) {
  TenantWeights weights;
  FairQueue<std::string> q(weights);
  fill(q, "a", 10000);
  fill(q, "b", 10000);
  std::string last;
  for (int i = 0; i < 1000; ++i) {
    const auto t = q.pop();
    EXPECT_NE(t, last) << "pick " << i;
    last = t;
  }
  const auto got = pop_count(q, 10000);
  EXPECT_EQ(got.at("a"), 5000);
  EXPECT_EQ(got.at("b"), 5000);
}

// Weights 3:1 give three quarters and one quarter of the picks, in every
// stretch of four picks (not only on average).
TEST(FairQueue, WeightsGiveProportionalShares) {
  TenantWeights weights({{"a", 3}, {"b", 1}});
  FairQueue<std::string> q(weights);
  fill(q, "a", 30000);
  fill(q, "b", 30000);
  for (int round = 0; round < 1000; ++round) {
    const auto got = pop_count(q, 4);
    EXPECT_EQ(got.at("a"), 3) << "round " << round;
    EXPECT_EQ(got.at("b"), 1) << "round " << round;
  }
  // a's 27,000 left go in 9,000 more rounds beside 9,000 of b's; then b, alone, takes every pick.
  const auto got = pop_count(q, 40000);
  EXPECT_EQ(got.at("a"), 27000);
  EXPECT_EQ(got.at("b"), 13000);
  EXPECT_EQ(pop_count(q, 20000).at("b"), 16000);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.tenants(), 0u);
}

// A tenant that starts waiting behind a backlog of 100,000 is served within
// one round: after the heavier tenants' current turns, never after their backlog.
TEST(FairQueue, NewTenantIsServedWithinOneRound) {
  TenantWeights weights({{"a", 5}, {"c", 2}});
  FairQueue<std::string> q(weights);
  fill(q, "a", 100000);
  fill(q, "c", 100000);
  pop_count(q, 12345);  // somewhere in the middle of someone's turn
  q.push("b", "b");
  int picks = 0;
  while (q.pop() != "b") ++picks;
  EXPECT_LE(picks, 5 + 2);  // at most a full turn of every other waiting tenant
  EXPECT_EQ(q.tenants(), 2u);  // b's lane is gone with its last item
}

// Work-conserving: a tenant alone takes every pick, whatever its weight and
// the weights of tenants with nothing waiting; a tenant that left and comes
// back is served again.
TEST(FairQueue, ATenantAloneTakesEverything) {
  TenantWeights weights({{"a", 1}, {"b", 1000}});
  FairQueue<std::string> q(weights);
  fill(q, "a", 5000);
  EXPECT_EQ(pop_count(q, 5000).at("a"), 5000);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.tenants(), 0u);
  fill(q, "b", 3);
  fill(q, "a", 3);
  const auto got = pop_count(q, 10);
  EXPECT_EQ(got.at("a"), 3);
  EXPECT_EQ(got.at("b"), 3);
  EXPECT_TRUE(q.empty());
}

// Each tenant's items come out in the order they went in.
TEST(FairQueue, FifoWithinATenant) {
  TenantWeights weights({{"a", 2}});
  FairQueue<std::string> q(weights);
  for (int i = 0; i < 100; ++i) {
    q.push("a", "a" + std::to_string(i));
    q.push("b", "b" + std::to_string(i));
  }
  int next_a = 0, next_b = 0;
  while (!q.empty()) {
    const auto item = q.pop();
    if (item[0] == 'a') {
      EXPECT_EQ(item, "a" + std::to_string(next_a++));
    } else {
      EXPECT_EQ(item, "b" + std::to_string(next_b++));
    }
  }
  EXPECT_EQ(next_a, 100);
  EXPECT_EQ(next_b, 100);
}

// "" (a queue file without an N record, written before tenants) is the tenant
// "default": one lane, one weight.
TEST(FairQueue, NoTenantIsTheDefaultTenant) {
  TenantWeights weights({{"", 3}});
  EXPECT_EQ(TenantWeights::key(""), "default");
  EXPECT_EQ(weights.weight("default"), 3u);
  EXPECT_EQ(weights.weight("other"), 1u);
  FairQueue<std::string> q(weights);
  q.push("", "x");
  q.push("default", "y");
  EXPECT_EQ(q.tenants(), 1u);
  EXPECT_EQ(q.pop(), "x");
  EXPECT_EQ(q.pop(), "y");
  // A weight of 0 would stop its lane's turns: it counts as 1.
  TenantWeights zero({{"z", 0}});
  EXPECT_EQ(zero.weight("z"), 1u);
}
