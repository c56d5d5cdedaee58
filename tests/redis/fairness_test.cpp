// Tenant groups over a real redis-server, seen through Limiters (docs/quotas.md):
//   1. three tenants with weights 1:1:2, all asking for more than the group has, get
//      25/25/50 % of it, and the group as a whole stays within its bound;
//   2. while one tenant is idle the other two use its share; when it comes back it
//      reaches its share within two lease TTLs;
//   3. eight instances of one tenant with 4:1 uneven demand: the tenant gets its whole
//      capacity, and each instance about its demand-proportional part of it.
//   4. two instances of one plain token bucket (rate 100/s, burst 100) with even demand, at
//      the SDK's defaults: each gets its half within 10 % over 10 s.
// Load is open-loop (a paced rate of try_acquire per stream, admitted or denied), so what
// an instance reports as its demand is what it is offered. Redis keeps time by TIME, so
// these tests run on the real clock; they measure over windows and compare with margins
// stated at each assertion. The figures are printed for docs/performance.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "faults/faulty_store.h"
#include "redis_server.h"
#include "store/redis/redis_store.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr auto kSlot = 50ms;  // admissions are counted in slots of this length

// Streams of try_acquire at fixed rates, paced from one thread (the test's), each
// counting its admissions per slot.
class OpenLoad {
 public:
  struct Stream {
    Limiter* limiter;
    std::string key;
    double rate;        // offered per second
    double from_s = 0;  // starts this long into the run
    double due = 0;
    std::vector<std::uint64_t> admitted;  // per slot
    std::uint64_t group_denials = 0;
  };

  std::size_t add(Limiter& l, std::string key, double rate, double from_s = 0) {
    streams_.push_back(Stream{&l, std::move(key), rate, from_s, 0, {}, 0});
    return streams_.size() - 1;
  }

  void run(Steady::duration length) {
    const std::size_t slots = static_cast<std::size_t>(length / kSlot) + 1;
    for (auto& s : streams_) s.admitted.assign(slots, 0);
    start_ = Steady::now();
    auto last = start_;
    for (;;) {
      const auto now = Steady::now();
      if (now - start_ >= length) break;
      const double dt = std::chrono::duration<double>(now - last).count();
      const double at = std::chrono::duration<double>(now - start_).count();
      const auto slot = static_cast<std::size_t>((now - start_) / kSlot);
      last = now;
      for (auto& s : streams_) {
        if (at < s.from_s) continue;
        s.due += s.rate * dt;
        for (; s.due >= 1; s.due -= 1) {
          const Decision d = s.limiter->try_acquire(s.key);
          if (d.allowed) ++s.admitted[slot];
          if (d.reason == Reason::kOverGroupLimit) ++s.group_denials;
        }
      }
      std::this_thread::sleep_for(1ms);  // pacing: the rate is kept by `due`, not by this
    }
  }

  // Admissions of a stream in [from_s, to_s) of the run.
  double admitted(std::size_t i, double from_s, double to_s) const {
    const auto& a = streams_[i].admitted;
    const auto lo = static_cast<std::size_t>(from_s / std::chrono::duration<double>(kSlot).count());
    const auto hi = std::min(
        a.size(), static_cast<std::size_t>(to_s / std::chrono::duration<double>(kSlot).count()));
    double n = 0;
    for (std::size_t k = lo; k < hi; ++k) n += static_cast<double>(a[k]);
    return n;
  }
  double total(std::size_t i) const {
    double n = 0;
    for (auto x : streams_[i].admitted) n += static_cast<double>(x);
    return n;
  }
  const Stream& stream(std::size_t i) const { return streams_[i]; }

 private:
  std::vector<Stream> streams_;
  Steady::time_point start_;
};

class Fairness : public ::testing::Test {
 protected:
  // One group with a budget of `rate`/s (burst: half a second of it), its tenants'
  // policies given as (key, weight); each tenant may on its own use the whole group.
  Config config(double rate, const std::vector<std::pair<std::string, double>>& tenants) {
    Config c;
    c.groups.push_back(Group{"gpu", rate, rate / 2});
    for (const auto& [key, weight] : tenants) {
      Policy p;
      p.match = key;
      p.group = "gpu";
      p.rate = rate;
      p.weight = weight;
      c.policies.push_back(p);
    }
    with_leases_and_redis(c);
    return c;
  }

  // Lease TTL kTtl, leases of 100 ms of demand (at most 5 % of a capacity), the server.
  void with_leases_and_redis(Config& c) {
    c.leases.ttl = kTtl;
    c.leases.horizon = 100ms;
    c.leases.max_fraction = 0.05;
    // Every refill with its tick, as when these figures were set: with the default hold
    // (LeaseOptions::refresh, at most TTL/4 = 250 ms here) asks come every 250 ms and a
    // 1 s TTL's shares are quantised (weights measured 27.5/27.5/45 %).
    c.leases.refresh = 0ms;
    c.store.type = "redis";
    c.store.shards = {server.url()};
  }

  Limiter& instance(Config c) {
    c.instance_id = "fair-" + std::to_string(limiters.size());
    Limiter::Options options;  // the store behind `fault` (tools/faults; kNone: as it is)
    options.store = faults::with_fault(std::make_shared<redis::RedisStore>(c.store), fault);
    limiters.push_back(std::make_unique<Limiter>(std::move(c), options));
    return *limiters.back();
  }

  // The weights run below; returns the group's total and its bound. Shares are asserted
  // only without a fault.
  std::pair<double, double> run_weights();

  static constexpr auto kTtl = 1000ms;
  static constexpr double kTtlS = 1.0;
  faults::Fault fault = faults::Fault::kNone;
  testing::RedisServer server;
  std::vector<std::unique_ptr<Limiter>> limiters;  // destroyed before the server
};

// Each tenant is offered the whole group's rate from each of two instances: 7200/s against
// a group of 1200/s, ~5.6x its bound over the run.
std::pair<double, double> Fairness::run_weights() {
  constexpr double kRate = 1200;
  const Config c = config(kRate, {{"t:a", 1}, {"t:b", 1}, {"t:c", 2}});
  const auto t0 = Steady::now();
  Limiter& l1 = instance(c);
  Limiter& l2 = instance(c);
  OpenLoad load;
  std::vector<std::size_t> a, b, cc;
  for (Limiter* l : {&l1, &l2}) {  // each tenant asks for the whole group from each instance
    a.push_back(load.add(*l, "t:a", kRate));
    b.push_back(load.add(*l, "t:b", kRate));
    cc.push_back(load.add(*l, "t:c", kRate));
  }
  load.run(8s);
  const double elapsed = std::chrono::duration<double>(Steady::now() - t0).count();

  const auto sum = [&](const std::vector<std::size_t>& ids, double from, double to) {
    double n = 0;
    for (auto i : ids) n += load.admitted(i, from, to);
    return n;
  };
  // Steady state: after two TTLs, when every tenant's demand is known.
  const double na = sum(a, 2, 8), nb = sum(b, 2, 8), nc = sum(cc, 2, 8);
  const double all = na + nb + nc;
  std::printf(
      "[ figures  ] shares a %.1f %% b %.1f %% c %.1f %% of %.0f admitted in 6 s "
      "(group %.0f/s: %.1f %% used)\n",
      100 * na / all, 100 * nb / all, 100 * nc / all, all, kRate, 100 * all / (6 * kRate));
  // The margin, ±5 % of the group, read as percentage points: on a loaded two-core
  // machine a share measured over 6 s moves by a point or two run to run (leases are
  // spent across the window's edges), so ±5 % of the share itself would be a coin toss.
  if (fault == faults::Fault::kNone) {
    EXPECT_NEAR(na / all, 0.25, 0.05);
    EXPECT_NEAR(nb / all, 0.25, 0.05);
    EXPECT_NEAR(nc / all, 0.50, 0.05);
  }

  // The bound: never more than the burst plus the rate over the whole run.
  double total = 0;
  for (const auto& ids : {a, b, cc})
    for (auto i : ids) total += load.total(i);
  std::uint64_t group_denials = 0;
  for (const auto& ids : {a, b, cc})
    for (auto i : ids) group_denials += load.stream(i).group_denials;
  EXPECT_GT(group_denials, 0u) << "denials of a contended group say over_group_limit";
  return {total, kRate / 2 + kRate * elapsed};
}

TEST_F(Fairness, WeightsOneOneTwoGetQuarterQuarterHalfAndTheGroupStaysWithinItsBound) {
  const auto [total, bound] = run_weights();
  EXPECT_LE(total, bound);
}

// The same run with stores that report twice what they grant: the group's bound check
// must see it exceeded.
TEST_F(Fairness, GroupBoundCheckFailsUnderDoubleGrant) {
  fault = faults::Fault::kDoubleGrant;
  const auto [total, bound] = run_weights();
  std::printf("[ figures  ] double-grant: the group admitted %.0f, bound %.0f\n", total, bound);
  EXPECT_GT(total, bound) << "the bound check did not see the fault";
}

TEST_F(Fairness, AnIdleTenantsShareIsLentAndComesBackWithinTwoTtls) {
  constexpr double kRate = 1200;
  const Config c = config(kRate, {{"t:a", 1}, {"t:b", 1}, {"t:c", 1}});
  Limiter& l1 = instance(c);
  Limiter& l2 = instance(c);
  OpenLoad load;
  std::vector<std::size_t> busy, late;
  constexpr double kLateAt = 4;  // t:c is idle until then
  for (Limiter* l : {&l1, &l2}) {
    busy.push_back(load.add(*l, "t:a", kRate));
    busy.push_back(load.add(*l, "t:b", kRate));
    late.push_back(load.add(*l, "t:c", kRate, kLateAt));
  }
  load.run(8s);

  double used = 0;
  for (auto i : busy) used += load.admitted(i, 1, kLateAt);
  const double use = used / (kRate * (kLateAt - 1));
  // After t:c starts: the first 250 ms window in which it gets 90 % of its third.
  double reached = -1;
  for (double from = kLateAt; from + 0.25 <= 8; from += 0.05) {
    double n = 0;
    for (auto i : late) n += load.admitted(i, from, from + 0.25);
    if (n >= 0.9 * kRate / 3 * 0.25) {
      reached = from + 0.25 - kLateAt;
      break;
    }
  }
  double late_share = 0, all = 0;
  for (auto i : late) late_share += load.admitted(i, kLateAt + 2 * kTtlS, 8);
  for (auto i : busy) all += load.admitted(i, kLateAt + 2 * kTtlS, 8);
  all += late_share;
  std::printf(
      "[ figures  ] idle tenant: the other two used %.1f %% of the group; it reached "
      "its share %.2f s (%.2f TTLs) after starting; then held %.1f %% of the group\n",
      100 * use, reached, reached / kTtlS, 100 * late_share / all);
  EXPECT_GE(use, 0.95);
  ASSERT_GE(reached, 0) << "never reached its share";
  EXPECT_LE(reached, 2 * kTtlS);
  EXPECT_NEAR(late_share / all, 1.0 / 3, 0.05);
}

TEST_F(Fairness, EightInstancesWithUnevenDemandSplitTheTenantInProportion) {
  constexpr double kRate = 1600;  // the tenant's capacity
  Config c;
  Policy p;
  p.match = "t:*";
  p.rate = kRate;
  p.burst = kRate / 4;
  p.fair_instances = true;
  c.policies.push_back(p);
  with_leases_and_redis(c);
  // Four instances offered 4 units, four offered 1: 20 units, twice the capacity.
  const double unit = 2 * kRate / 20;
  OpenLoad load;
  std::vector<std::size_t> ids;
  std::vector<double> offered;
  for (int i = 0; i < 8; ++i) {
    offered.push_back(i < 4 ? 4 * unit : unit);
    ids.push_back(load.add(instance(c), "t:x", offered.back()));
  }
  load.run(6s);

  constexpr double kFrom = 2, kTo = 6;  // after two TTLs
  double total = 0;
  for (auto i : ids) total += load.admitted(i, kFrom, kTo);
  const double capacity = kRate * (kTo - kFrom);
  const double offered_sum = 20 * unit;
  double worst = 0;
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const double expected = capacity * offered[k] / offered_sum;
    const double got = load.admitted(ids[k], kFrom, kTo);
    worst = std::max(worst, (expected - got) / expected);
    std::printf("[ figures  ] instance %zu offered %.0f/s: admitted %.0f/s, proportional %.0f/s\n",
                k, offered[k], got / (kTo - kFrom), expected / (kTo - kFrom));
  }
  std::printf(
      "[ figures  ] tenant used %.1f %% of its capacity; worst instance %.1f %% below "
      "its demand-proportional part\n",
      100 * total / capacity, 100 * worst);
  EXPECT_GE(total, 0.97 * capacity);
  EXPECT_LE(worst, 0.10);
}

// Issue 15's case at the SDK's defaults (leases, refresh, TTL): two instances over one
// redis-server, one plain token-bucket policy (rate 100/s, burst 100), each with the same
// closed-loop demand, as the ASP.NET Core middleware makes it: kWorkers threads per instance
// calling acquire (waiting up to 1 s, the middleware's QueueTimeout) again as soon as it
// returns. Each gets its half within 10 % over 10 s; with fair_instances false it was first
// come, first served (the ASP.NET Core apps: 695/401, 161/935).
class EvenInstances : public Fairness {
 protected:
  // What each of the two instances admitted over kMeasure seconds after kWarm.
  std::pair<double, double> run(std::optional<bool> fair) {
    Config c;
    Policy p;
    p.match = "t:*";
    p.rate = 100;
    p.burst = 100;
    p.fair_instances = fair;
    c.policies.push_back(p);
    c.store.type = "redis";
    c.store.shards = {server.url()};
    Limiter* l[2] = {&instance(c), &instance(c)};
    std::atomic<std::uint64_t> admitted[2] = {0, 0};
    const auto start = Steady::now();
    const auto from =
        start + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(kWarm));
    const auto to = from + std::chrono::duration_cast<Steady::duration>(
                               std::chrono::duration<double>(kMeasure));
    std::vector<std::thread> workers;
    for (int i = 0; i < 2; ++i) {
      for (int w = 0; w < kWorkers; ++w) {
        workers.emplace_back([&, i] {
          while (Steady::now() < to) {
            const Decision d = l[i]->acquire("t:x", 1, 1s);
            const auto at = Steady::now();
            if (d.allowed && at >= from && at < to) admitted[i].fetch_add(1);
          }
        });
      }
    }
    for (auto& t : workers) t.join();
    const double na = static_cast<double>(admitted[0]), nb = static_cast<double>(admitted[1]);
    std::printf(
        "[ figures  ] two instances, even demand (%d waiting callers each), fair_instances "
        "%s: admitted %.0f / %.0f over %.0f s (%.1f %% / %.1f %%; rate x time %.0f)\n",
        kWorkers, !fair ? "default" : (*fair ? "on" : "off"), na, nb, kMeasure,
        100 * na / (na + nb), 100 * nb / (na + nb), 100 * kMeasure);
    return {na, nb};
  }
  static constexpr int kWorkers = 8;
  static constexpr double kWarm = 2;      // both instances' demand known (the 2 s refresh)
  static constexpr double kMeasure = 10;  // the "within 10 % over 10 s"
};

TEST_F(EvenInstances, EqualDemandGetsEqualPartsAtTheDefaults) {
  const auto [na, nb] = run(std::nullopt);
  const double half = (na + nb) / 2;
  EXPECT_NEAR(na, half, 0.10 * half);
  EXPECT_NEAR(nb, half, 0.10 * half);
}

}  // namespace
}  // namespace tollgate
