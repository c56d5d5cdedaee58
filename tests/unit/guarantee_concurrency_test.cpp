// The guarantee: 8 Limiters share one InProcessStore, 2 threads each, 4 keys, mixed
// costs, open-loop load of 2x capacity for 5 s and then two spikes of 200x after idle gaps
// (tests/common/guarantee_load.h). Over every interval of length T, what all of them
// admitted together stays within rate*(T + lease_ttl) + burst, and in steady state at
// least 97 % of the capacity is used. Every window length checked is offered at least 3x
// its bound, and the same run against a store that reports twice what it grants
// (tools/faults) must exceed the bound over every window length. Also runs under TSan
// (label "concurrency").
#include <gtest/gtest.h>

#include <cstdio>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/guarantee_load.h"
#include "faults/faulty_store.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

namespace g = testing::guarantee;

// The bound is asserted in every build. Utilisation is a performance figure: >= 97 % in
// the plain build; sanitizers slow every thread several-fold on two cores, so there a
// floor only catches gross regressions, and the load threads may not keep up with a
// spike (the offered-3x check is made in the plain build only).
#ifdef TOLLGATE_SANITIZED
constexpr double kMinUtilisation = 0.90;
constexpr bool kSanitized = true;
#else
constexpr double kMinUtilisation = 0.97;
constexpr bool kSanitized = false;
#endif

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

Config shared_config(int instance) {
  Config c;
  Policy p;
  p.name = "tenants";
  p.match = "tenant:*";
  p.rate = g::kRate;
  p.burst = g::kBurst;
  c.policies.push_back(p);
  c.leases.ttl = std::chrono::milliseconds(static_cast<int>(g::kTtlMs));
  c.leases.horizon = std::chrono::milliseconds(static_cast<int>(g::kHorizonMs));
  c.leases.max_fraction = g::kMaxFraction;
  // Every refill with its tick, as when its utilisation floor was set: at a 250 ms TTL the
  // default hold (TTL/8, 31 ms) measured 90.8-93.8 % against the 97 % floor.
  c.leases.refresh = std::chrono::milliseconds(0);
  c.instance_id = "instance-" + std::to_string(instance);
  return c;
}

struct FleetRun {
  std::vector<std::vector<g::Event>> offered, admitted;  // per key, sorted by time
  std::uint64_t sdk_admitted = 0;                        // the Limiters' own count
};

FleetRun run_fleet(faults::Fault fault) {
  auto store = faults::with_fault(std::make_shared<InProcessStore>(), fault);
  std::vector<std::unique_ptr<Limiter>> limiters;
  for (int i = 0; i < g::kInstances; ++i) {
    Limiter::Options options;
    options.store = store;
    limiters.push_back(std::make_unique<Limiter>(shared_config(i), options));
  }
  const std::vector<std::string> keys = {"tenant:a", "tenant:b", "tenant:c", "tenant:d"};
  FleetRun run;
  run.offered.assign(g::kKeys, {});
  run.admitted.assign(g::kKeys, {});
  std::mutex mu;
  const auto start = Steady::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < g::kInstances; ++i) {
    for (int t = 0; t < g::kThreadsPerInstance; ++t) {
      threads.emplace_back([&, i, t] {
        std::vector<std::vector<g::Event>> offered, admitted;
        g::offer_load(
            static_cast<unsigned>(i * 16 + t),
            [&] { return std::chrono::nanoseconds(Steady::now() - start).count(); },
            [&](int k, std::uint32_t cost) {
              return limiters[static_cast<std::size_t>(i)]
                  ->try_acquire(keys[static_cast<std::size_t>(k)], cost)
                  .allowed;
            },
            offered, admitted);
        std::lock_guard lk(mu);
        for (std::size_t k = 0; k < g::kKeys; ++k) {
          run.offered[k].insert(run.offered[k].end(), offered[k].begin(), offered[k].end());
          run.admitted[k].insert(run.admitted[k].end(), admitted[k].begin(), admitted[k].end());
        }
      });
    }
  }
  for (auto& th : threads) th.join();
  for (auto& l : limiters) run.sdk_admitted += l->stats().admitted;
  for (std::size_t k = 0; k < g::kKeys; ++k) {
    g::sort_by_time(run.offered[k]);
    g::sort_by_time(run.admitted[k]);
  }
  return run;
}

TEST(GuaranteeTest, SharedQuotaIsNeverExceededAndIsFullyUsed) {
  const FleetRun run = run_fleet(faults::Fault::kNone);
  std::uint64_t counted = 0, offered = 0;
  for (std::size_t k = 0; k < g::kKeys; ++k) {
    const auto& adm = run.admitted[k];
    counted += adm.size();
    offered += run.offered[k].size();
    for (double window_s : g::windows()) {
      const auto w = static_cast<std::int64_t>(window_s * 1e9);
      const double bound = g::bound(window_s);
      const auto most = g::max_in_window(adm, w);
      const auto most_offered = g::max_in_window(run.offered[k], w);
      std::printf(
          "key %zu, window %.2f s: admitted at most %llu, offered %llu (%.1fx), bound %.0f\n", k,
          window_s, static_cast<unsigned long long>(most),
          static_cast<unsigned long long>(most_offered), static_cast<double>(most_offered) / bound,
          bound);
      EXPECT_LE(static_cast<double>(most), bound) << "key " << k << " window " << window_s << " s";
      if (!kSanitized) {
        EXPECT_GE(static_cast<double>(most_offered), 3 * bound)
            << "key " << k << " window " << window_s << " s: the check could not fail";
      }
    }
    // Steady state: from 1 s (the initial burst is spent) to 0.5 s before the steady load
    // ends (leases still held locally when it stops are not lost capacity).
    std::uint64_t steady = 0;
    for (auto& a : adm) {
      if (a.at_ns >= static_cast<std::int64_t>(g::kSteadyFrom * 1e9) &&
          a.at_ns < static_cast<std::int64_t>(g::kSteadyUntil * 1e9)) {
        steady += a.cost;
      }
    }
    const double capacity = g::kRate * (g::kSteadyUntil - g::kSteadyFrom);
    std::printf("key %zu: steady-state utilisation %.1f%%\n", k,
                100.0 * static_cast<double>(steady) / capacity);
    EXPECT_GE(static_cast<double>(steady), kMinUtilisation * capacity)
        << "key " << k << ": steady-state utilisation " << static_cast<double>(steady) / capacity;
  }
  EXPECT_EQ(run.sdk_admitted, counted) << "SDK stats disagree with the test's own count";
  EXPECT_GT(offered, counted);
}

// The same run and check against a store that reports every grant twice over: the check
// must see the bound exceeded over every window length. (Sanitized builds: over the
// windows of 1 s and longer only; there the instances may not drain a spike within 50 ms.)
TEST(GuaranteeTest, BoundCheckFailsUnderDoubleGrant) {
  const FleetRun run = run_fleet(faults::Fault::kDoubleGrant);
  for (double window_s : g::windows()) {
    const auto w = static_cast<std::int64_t>(window_s * 1e9);
    std::uint64_t most = 0;
    for (std::size_t k = 0; k < g::kKeys; ++k) {
      most = std::max(most, g::max_in_window(run.admitted[k], w));
    }
    std::printf("double-grant, window %.2f s: admitted at most %llu, bound %.0f\n", window_s,
                static_cast<unsigned long long>(most), g::bound(window_s));
    if (kSanitized && window_s < 1.0) continue;
    EXPECT_GT(static_cast<double>(most), g::bound(window_s))
        << "window " << window_s << " s: the check did not see the fault";
  }
}

}  // namespace
}  // namespace tollgate
