// The load of the guarantee tests (tests/unit/guarantee_concurrency_test.cpp, and over
// Redis tests/redis/guarantee_processes_test.cpp with its driver): 8 instances x 2
// threads offer 4 keys tokens at costs 1..4, open loop, in 1 ms ticks:
//
//   0 – 5 s      2x the rate (the utilisation is measured from 1 s to 4.5 s)
//   5 – 5.5 s    nothing: leases expire, the buckets fill up again
//   5.5 – 5.8 s  a spike of 200x the rate
//   5.8 – 6.3 s  nothing
//   6.3 – 6.6 s  a spike of 200x the rate
//
// The bound is checked over windows of 50 ms, 250 ms, 1 s, 2 s and the whole run. With a
// lease TTL of 250 ms it is 1600 tokens per key over 50 ms, 2000 over 250 ms, 3500 over
// 1 s, 5500 over 2 s and 14 700 over the run; a spike offers 20 000 over 50 ms (12x), and
// every window length is offered at least 3x its bound, so a limiter that admitted
// everything would fail each. Over a spike after an idle gap a store that reports twice
// what it grants lets the instances admit about 2 x (burst + rate x T): 2200 over 50 ms,
// 3000 over 250 ms, and more than the bound over every longer window too.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

namespace tollgate::testing::guarantee {

constexpr int kInstances = 8;
constexpr int kThreadsPerInstance = 2;
constexpr int kKeys = 4;
constexpr double kRate = 2000;   // tokens per second per key
constexpr double kBurst = 1000;  // half a second of rate
constexpr double kTtlMs = 250;   // leases.ttl: short, so that the bound is tight for short windows
constexpr double kHorizonMs = 100;
constexpr double kMaxFraction = 0.05;
constexpr double kMeanCost = 2.5;  // costs 1..4, uniform
constexpr double kSteady = 5.0;    // seconds at 2x
constexpr double kIdle = 0.5, kSpike = 0.3;
constexpr double kSpikeDemand = 200;  // x the rate, per key
constexpr double kRun = kSteady + 2 * (kIdle + kSpike);
// The steady part over which utilisation is measured.
constexpr double kSteadyFrom = 1.0, kSteadyUntil = kSteady - 0.5;

// Offered load at `t` seconds from the start, as a multiple of the rate (per key).
inline double demand_at(double t) {
  if (t < kSteady) return 2.0;
  const double s = t - kSteady;
  const double phase = kIdle + kSpike;
  const double in = s - phase * static_cast<int>(s / phase);
  return in < kIdle ? 0.0 : kSpikeDemand;
}

// Requests per second one load thread offers at `t` (all keys together).
inline double requests_per_thread(double t) {
  return demand_at(t) * kRate * kKeys / (kInstances * kThreadsPerInstance) / kMeanCost;
}

inline std::array<double, 5> windows() {
  return {0.05, 0.25, 1.0, 2.0, kRun};
}

// rate x (T + lease TTL) + burst (docs/architecture.md).
inline double bound(double window_s) {
  return kRate * (window_s + kTtlMs / 1000) + kBurst;
}

struct Event {
  std::int64_t at_ns;  // since the start
  std::uint32_t cost;
};

// Largest sum of costs within any window [a, a + window] (input sorted by time).
inline std::uint64_t max_in_window(const std::vector<Event>& sorted, std::int64_t window_ns) {
  std::uint64_t best = 0, sum = 0;
  std::size_t lo = 0;
  for (std::size_t hi = 0; hi < sorted.size(); ++hi) {
    sum += sorted[hi].cost;
    while (sorted[hi].at_ns - sorted[lo].at_ns > window_ns) sum -= sorted[lo++].cost;
    best = std::max(best, sum);
  }
  return best;
}

inline void sort_by_time(std::vector<Event>& v) {
  std::sort(v.begin(), v.end(), [](const Event& a, const Event& b) { return a.at_ns < b.at_ns; });
}

// One load thread: from 0 until kRun seconds by `now_ns()` (ns since the start), every
// millisecond it offers what requests_per_thread() says is due since the last tick, each
// of a random key and cost, through `acquire(key, cost) -> bool`, and records every
// request in offered[key] and every admission in admitted[key]. A thread that fell behind
// offers what is due at once, so the counts do not depend on how fast the machine is.
template <typename NowNs, typename Acquire>
void offer_load(unsigned seed, NowNs now_ns, Acquire acquire,
                std::vector<std::vector<Event>>& offered,
                std::vector<std::vector<Event>>& admitted) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick_key(0, kKeys - 1), pick_cost(1, 4);
  offered.assign(kKeys, {});
  admitted.assign(kKeys, {});
  double due = 0;
  std::int64_t last = now_ns();
  for (;;) {
    const std::int64_t now = now_ns();
    if (now >= static_cast<std::int64_t>(kRun * 1e9)) break;
    due +=
        requests_per_thread(static_cast<double>(now) / 1e9) * static_cast<double>(now - last) / 1e9;
    last = now;
    for (; due >= 1; due -= 1) {
      const int k = pick_key(rng);
      const auto cost = static_cast<std::uint32_t>(pick_cost(rng));
      offered[static_cast<std::size_t>(k)].push_back({now, cost});
      if (acquire(k, cost)) admitted[static_cast<std::size_t>(k)].push_back({now_ns(), cost});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the next tick
  }
}

}  // namespace tollgate::testing::guarantee
