// KeyRef under threads (also run under TSan): two threads decide through one KeyRef while
// the scheduler evicts other keys, so the KeyRef's (entry, erase count) pair is re-resolved
// and republished while it is read.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tollgate/tollgate.hpp"

namespace {

using namespace std::chrono_literals;
using tollgate::Config;
using tollgate::KeyRef;
using tollgate::Limiter;
using tollgate::ManualClock;

TEST(KeyRefConcurrency, ThreadsShareOneKeyRefWhileOtherKeysAreEvicted) {
  auto clock = std::make_shared<ManualClock>();
  Limiter::Options o;
  o.clock = clock;
  o.background_thread = false;
  Limiter limiter(Config::from_json(R"({"idle_timeout_ms": 100, "leases": {"max_fraction": 1},
    "policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 1e9, "burst": 1e9}]})"),
                  o);
  const KeyRef hot = limiter.key_ref("tenant:hot");
  (void)limiter.try_acquire(hot);
  limiter.poll();
  ASSERT_TRUE(limiter.try_acquire(hot).allowed);

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> allowed{0};
  std::atomic<std::uint64_t> decisions{0};
  const std::uint64_t before = limiter.stats().admitted;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        if (limiter.try_acquire(hot).allowed) allowed.fetch_add(1, std::memory_order_relaxed);
        decisions.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (int i = 0; i < 300; ++i) {
    (void)limiter.try_acquire("tenant:cold" + std::to_string(i));  // idle from now on
    clock->advance(50ms);
    limiter.poll();
    // The threads decide between two evictions (no timing: wait for their count to move).
    const std::uint64_t seen = decisions.load();
    while (decisions.load() < seen + 2) std::this_thread::yield();
  }
  stop = true;
  for (auto& t : threads) t.join();
  const tollgate::Stats st = limiter.stats();
  EXPECT_GE(st.keys_evicted, 250u);  // the erase count moved under the readers all along
  EXPECT_GT(allowed.load(), 0u);
  // Every admission through the KeyRef was counted by the limiter, none lost to a stale entry.
  EXPECT_EQ(st.admitted - before, allowed.load());
}

}  // namespace
