// The Limiter with its own SDK thread, hit from several application threads at once: exact
// accounting on one key, eviction while readers are inside the key table, waits that time
// out or are cancelled while tokens arrive, and permits (also seen to fail under a store
// that reports twice what it grants, tools/faults). Run under TSan by scripts/test.
// Every loop is bounded in iterations and in time.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "faults/faulty_store.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

Policy policy(std::string match, PolicyKind kind) {
  Policy p;
  p.name = p.match = std::move(match);
  p.kind = kind;
  return p;
}

template <typename F>
void run_threads(int n, F&& body) {
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) threads.emplace_back(body, t);
  for (auto& th : threads) th.join();
}

TEST(LimiterConcurrency, ThreadsOnOneKeyAdmitExactlyTheWindowLimit) {
  Config c;
  Policy p = policy("tenant:*", PolicyKind::kFixedWindow);
  p.limit = 20'000;
  p.window = 3600s;  // one window for the whole test
  c.policies.push_back(p);
  c.leases.max_fraction = 0.05;
  Limiter limiter(c);
  std::atomic<std::uint64_t> admitted{0};
  const auto deadline = Steady::now() + 20s;
  run_threads(4, [&](int) {
    std::uint64_t mine = 0;
    while (Steady::now() < deadline) {
      Decision d = limiter.try_acquire("tenant:a");
      if (d.allowed) {
        ++mine;
      } else if (d.reason == Reason::kOverLimit) {
        break;  // the window is spent and this instance holds nothing more
      } else {
        std::this_thread::yield();
      }
    }
    admitted += mine;
  });
  EXPECT_EQ(admitted.load(), 20'000u);
  EXPECT_EQ(limiter.stats().admitted, 20'000u);
}

TEST(LimiterConcurrency, EvictionUnderPressureWhileReadersAreInside) {
  Config c;
  Policy p = policy("k:*", PolicyKind::kTokenBucket);
  p.rate = 1e6;
  p.burst = 1e6;
  c.policies.push_back(p);
  c.cold_keys.mode = ColdKeyMode::kOptimistic;
  c.cold_keys.allowance = 2;
  c.max_keys = 64;  // 1000 keys compete for 64 places: constant eviction
  Limiter limiter(c);
  std::atomic<std::uint64_t> admitted{0};
  std::atomic<bool> evicted{false};
  run_threads(4, [&](int t) {
    std::mt19937 rng(static_cast<unsigned>(t));
    std::uint64_t mine = 0;
    // 400k tries or 2 s each, and on until an eviction has happened (the SDK thread evicts
    // between its scans, which a loaded machine may run rarely), but never past 30 s.
    const auto start = Steady::now();
    for (int i = 0;; ++i) {
      const bool enough = i >= 400'000 || Steady::now() - start >= 2s;
      if ((enough && evicted.load()) || Steady::now() - start >= 30s) break;
      const std::string key = "k:" + std::to_string(rng() % 1000);
      if (limiter.try_acquire(key).allowed) ++mine;
      if (t == 0 && i % 4096 == 0 && limiter.stats().keys_evicted > 0) evicted = true;
    }
    admitted += mine;
  });
  const Stats st = limiter.stats();
  EXPECT_EQ(st.admitted, admitted.load());
  EXPECT_LE(st.keys_tracked, 64u);
  EXPECT_GT(st.keys_evicted, 0u);
  EXPECT_GT(st.denied[static_cast<int>(Reason::kKeyTableFull)], 0u);
}

TEST(LimiterConcurrency, EveryWaitCompletesExactlyOnce) {
  Config c;
  Policy p = policy("tenant:*", PolicyKind::kTokenBucket);
  p.rate = 2000;
  p.burst = 50;
  c.policies.push_back(p);
  c.max_waiters_per_key = 64;
  std::atomic<std::uint64_t> issued{0}, completed{0}, allowed{0}, timeouts{0}, cancelled{0};
  {
    Limiter limiter(c);
    run_threads(4, [&](int t) {
      std::mt19937 rng(static_cast<unsigned>(100 + t));
      const auto deadline = Steady::now() + 2s;
      for (int i = 0; i < 5000 && Steady::now() < deadline; ++i) {
        ++issued;
        WaitId id =
            limiter.acquire_async("tenant:" + std::to_string(rng() % 4), 1 + rng() % 3,
                                  std::chrono::milliseconds(rng() % 20), [&](const Decision& d) {
                                    ++completed;
                                    if (d.allowed) ++allowed;
                                    if (d.reason == Reason::kTimeout) ++timeouts;
                                    if (d.reason == Reason::kCancelled) ++cancelled;
                                  });
        if (id != 0 && rng() % 4 == 0) limiter.cancel(id);
        if (rng() % 16 == 0) std::this_thread::sleep_for(100us);
      }
    });
  }  // destruction completes whatever still waits (reason shutdown)
  EXPECT_EQ(completed.load(), issued.load());
  EXPECT_GT(allowed.load(), 0u);
  EXPECT_GT(cancelled.load(), 0u);
}

// Permits out at once, counted by the holders: 12 threads, split over two Limiters that
// share one store (two instances), each want 1-3 (24 on average, 3x the limit of 8) and
// hold what they get for 200 us, long enough that a permit granted over the limit
// overlaps the others and is seen (a grant and its release a few instructions apart
// would hardly ever be). Returns the most held at once.
struct PermitRun {
  int most = 0;
  std::uint64_t granted = 0;
  int held_at_end = 0;
};
PermitRun hold_permits(faults::Fault fault, std::chrono::seconds run) {
  Config c;
  Policy p = policy("gpu:*", PolicyKind::kConcurrency);
  p.limit = 8;
  c.policies.push_back(p);
  auto store = faults::with_fault(std::make_shared<InProcessStore>(), fault);
  std::vector<std::unique_ptr<Limiter>> limiters;
  for (int i = 0; i < 2; ++i) {
    c.instance_id = "permits-" + std::to_string(i);
    Limiter::Options options;
    options.store = store;
    limiters.push_back(std::make_unique<Limiter>(c, options));
  }
  std::atomic<int> held{0}, most{0};
  std::atomic<std::uint64_t> granted{0};
  run_threads(12, [&](int t) {
    Limiter& limiter = *limiters[static_cast<std::size_t>(t % 2)];
    std::mt19937 rng(static_cast<unsigned>(7 + t));
    const auto deadline = Steady::now() + run;
    for (int i = 0; i < 50'000 && Steady::now() < deadline; ++i) {
      const auto n = static_cast<std::uint32_t>(1 + rng() % 3);
      Permit permit = limiter.acquire_permit("gpu:pool", n);
      if (!permit) {
        std::this_thread::yield();
        continue;
      }
      ++granted;
      const int now = held.fetch_add(static_cast<int>(n)) + static_cast<int>(n);
      int prev = most.load();
      while (now > prev && !most.compare_exchange_weak(prev, now)) {
      }
      std::this_thread::sleep_for(200us);  // the work the permits are for
      held.fetch_sub(static_cast<int>(n));
    }
  });
  return {most.load(), granted.load(), held.load()};
}

TEST(LimiterConcurrency, PermitsHeldAtOnceNeverExceedTheLimit) {
  const PermitRun r = hold_permits(faults::Fault::kNone, 2s);
  std::printf("permits: %llu grants, at most %d held at once (limit 8)\n",
              static_cast<unsigned long long>(r.granted), r.most);
  EXPECT_GT(r.granted, 0u);
  EXPECT_LE(r.most, 8);
  EXPECT_EQ(r.held_at_end, 0);
}

// The same check against a store that reports twice the permits it reserved: it must see
// more than 8 out at once.
TEST(LimiterConcurrency, PermitLimitCheckFailsUnderDoubleGrant) {
  const PermitRun r = hold_permits(faults::Fault::kDoubleGrant, 2s);
  std::printf("permits under double-grant: at most %d held at once (limit 8)\n", r.most);
  EXPECT_GT(r.most, 8);
}

}  // namespace
}  // namespace tollgate
