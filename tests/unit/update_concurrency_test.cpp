// Config updates while application threads decide (also run under TSan: scripts/test's
// tsan stage takes every *_concurrency_test). The checks do not depend on timing: buckets
// that refill nothing within the run bound what any interleaving may admit.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

constexpr int kKeys = 8;
constexpr std::uint64_t kBurstA = 40, kBurstB = 25;  // tokens, refilling ~nothing
constexpr std::uint64_t kPermitsA = 4, kPermitsB = 3;

// Two configs the test swaps between: every key of each kind under one policy or another.
Config config(bool b) {
  Config c;
  Policy tokens;
  tokens.name = b ? "tokens-b" : "tokens-a";
  tokens.match = "tenant:*";
  tokens.rate = 0.001;
  tokens.burst = static_cast<double>(b ? kBurstB : kBurstA);
  Policy permits;
  permits.name = b ? "permits-b" : "permits-a";
  permits.match = "gpu:*";
  permits.kind = PolicyKind::kConcurrency;
  permits.limit = b ? kPermitsB : kPermitsA;
  c.policies = {tokens, permits};
  c.leases.max_fraction = 0.2;
  c.instance_id = "update-concurrency";
  return c;
}

TEST(UpdateUnderLoad, DecisionsWhileTheConfigSwapsStayWithinBothPolicies) {
  auto store = std::make_shared<InProcessStore>();
  Limiter::Options options;
  options.store = store;
  Limiter limiter(config(false), options);
  std::atomic<bool> stop{false};
  std::vector<std::atomic<std::uint64_t>> admitted(kKeys);
  std::atomic<std::uint32_t> held{0}, most_held{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t i = t; !stop.load(std::memory_order_relaxed); ++i) {
        const int k = static_cast<int>(i % kKeys);
        if (limiter.try_acquire("tenant:" + std::to_string(k)).allowed) admitted[k].fetch_add(1);
        if (i % 64 == 0) std::this_thread::sleep_for(20us);  // leave the SDK's thread a core
      }
    });
  }
  threads.emplace_back([&] {
    std::vector<Permit> mine;
    for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      if (Permit p = limiter.acquire_permit("gpu:0")) {
        const std::uint32_t now = held.fetch_add(1) + 1;
        std::uint32_t m = most_held.load();
        while (now > m && !most_held.compare_exchange_weak(m, now)) {
        }
        mine.push_back(std::move(p));
      }
      if (i % 64 == 0) std::this_thread::sleep_for(20us);
      if (mine.size() > 5 || (i % 7 == 0 && !mine.empty())) {  // up to 6 wanted at once
        held.fetch_sub(1);
        mine.erase(mine.begin());
      }
    }
    held.fetch_sub(static_cast<std::uint32_t>(mine.size()));
  });
  threads.emplace_back([&] {  // readers of the running config
    while (!stop.load(std::memory_order_relaxed)) {
      const auto c = limiter.config();
      EXPECT_EQ(c->policies.size(), 2u);
      std::this_thread::sleep_for(50us);
    }
  });
  constexpr int kUpdates = 200;
  for (int u = 1; u <= kUpdates; ++u) {
    limiter.update(config(u % 2 == 1));
    std::this_thread::sleep_for(1ms);  // let keys move and lease between swaps
  }
  // A third config at the end: however the threads were scheduled (A and B may both have
  // come between two ticks of the SDK's thread, and the last one is A again), keys move.
  Config last = config(false);
  last.policies[0].name = "tokens-c";
  last.policies[1].name = "permits-c";
  limiter.update(last);
  // However the threads were scheduled, some decisions were admitted and keys moved.
  const auto admitted_any = [&] {
    for (auto& a : admitted)
      if (a.load() > 0) return true;
    return false;
  };
  for (int i = 0; i < 1000 && (!admitted_any() || limiter.stats().keys_moved == 0); ++i)
    std::this_thread::sleep_for(10ms);
  stop = true;
  for (auto& t : threads) t.join();

  const Stats s = limiter.stats();
  EXPECT_EQ(s.config_updates, static_cast<std::uint64_t>(kUpdates) + 1);
  EXPECT_EQ(s.config_rejected, 0u);
  EXPECT_GT(s.keys_moved, 0u);
  std::uint64_t total = 0;
  for (int k = 0; k < kKeys; ++k) {
    // Spent tokens never come back; given-back ones may be leased again under their policy.
    EXPECT_LE(admitted[k].load(), 2 * kBurstA + kBurstB) << "tenant:" << k;  // a, b and c
    total += admitted[k].load();
  }
  EXPECT_GT(total, 0u);
  EXPECT_LE(most_held.load(), std::max(kPermitsA, kPermitsB));
}

}  // namespace
}  // namespace tollgate
