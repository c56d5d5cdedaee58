// The global bucket arithmetic shared by the InProcessStore and the Redis scripts, under a
// simulated clock (plain integers: the functions take `now`).
#include "quota/bucket_math.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace tollgate::core {
namespace {

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kSec = 1000 * kMs;
constexpr std::int64_t kTtl = 2 * kSec;

Policy bucket(double rate, double burst) {
  Policy p;
  p.name = p.match = "b";
  p.kind = PolicyKind::kTokenBucket;
  p.rate = rate;
  p.burst = burst;
  return p;
}

Policy window(PolicyKind kind, std::uint64_t limit, std::int64_t len) {
  Policy p;
  p.name = p.match = "w";
  p.kind = kind;
  p.limit = limit;
  p.window = Nanos{len};
  return p;
}

LeaseAsk ask(std::uint64_t want, std::uint64_t min = 1) {
  return LeaseAsk{want, min, kTtl};
}

TEST(TokenBucketMath, NewBucketStartsFullAndGrantsUpToBurst) {
  TokenBucketState s;
  const Policy p = bucket(10, 50);
  auto a = lease_token_bucket(s, p, ask(80), 5 * kSec);
  EXPECT_EQ(a.granted, 50u);
  EXPECT_EQ(a.expires_at, 5 * kSec + kTtl);
  EXPECT_EQ(a.remaining, 0u);
}

TEST(TokenBucketMath, RefillsAtRateAndNeverAboveBurst) {
  TokenBucketState s;
  const Policy p = bucket(10, 50);
  lease_token_bucket(s, p, ask(50), 0);
  EXPECT_EQ(lease_token_bucket(s, p, ask(100), 1 * kSec).granted, 10u);  // one second: 10
  EXPECT_EQ(lease_token_bucket(s, p, ask(100), 1 * kSec + 250 * kMs).granted, 2u);  // 2.5
  // The half token left over is kept, and an hour of idleness only fills up to burst.
  EXPECT_EQ(lease_token_bucket(s, p, ask(1000), 3600 * kSec).granted, 50u);
}

TEST(TokenBucketMath, CostsAboveOneNeedMinAtOnceAndSayWhen) {
  TokenBucketState s;
  const Policy p = bucket(10, 50);
  lease_token_bucket(s, p, ask(47), 0);  // 3 left
  auto a = lease_token_bucket(s, p, ask(8, 8), 0);
  EXPECT_EQ(a.granted, 0u);  // 3 < 8: nothing rather than a useless part
  EXPECT_EQ(a.remaining, 3u);
  EXPECT_EQ(a.wait_until, 500 * kMs);  // 5 more tokens at 10/s
  a = lease_token_bucket(s, p, ask(8, 8), 500 * kMs);
  EXPECT_EQ(a.granted, 8u);
}

TEST(TokenBucketMath, ZeroWantChangesNothing) {
  TokenBucketState s;
  const Policy p = bucket(10, 50);
  lease_token_bucket(s, p, ask(20), 0);
  const double level = s.level;
  auto a = lease_token_bucket(s, p, ask(0), 0);
  EXPECT_EQ(a.granted, 0u);
  EXPECT_EQ(s.level, level);
}

TEST(TokenBucketMath, GivenBackTokensKeepTheirExpiry) {
  TokenBucketState s;
  const Policy p = bucket(1, 100);
  auto first = lease_token_bucket(s, p, ask(100), 0);
  ASSERT_EQ(first.granted, 100u);
  EXPECT_EQ(give_back_token_bucket(s, p, 60, first.expires_at, 100 * kMs), 60u);
  // Handed out again first, with the original expiry, not a fresh TTL.
  auto again = lease_token_bucket(s, p, ask(40), 100 * kMs);
  EXPECT_EQ(again.expires_at, first.expires_at);
  // ...and no more than the asker can spend in the 1.9 s left: 40 x 1.9 / 2 = 38.
  EXPECT_EQ(again.granted, 38u);
  EXPECT_EQ(s.pool, 22u);
}

TEST(TokenBucketMath, PooledTokensAreLentInProportionToTheLifeLeft) {
  TokenBucketState s;
  const Policy p = bucket(1, 1000);
  auto first = lease_token_bucket(s, p, ask(1000), 0);
  give_back_token_bucket(s, p, 500, first.expires_at, 0);
  // Half the TTL left: half of what was asked comes from the pool.
  auto a = lease_token_bucket(s, p, ask(100), kTtl / 2);
  EXPECT_EQ(a.granted, 50u);
  EXPECT_EQ(a.expires_at, first.expires_at);
}

TEST(TokenBucketMath, GiveBackOfExpiredLeaseIsDropped) {
  TokenBucketState s;
  const Policy p = bucket(1, 100);
  auto first = lease_token_bucket(s, p, ask(100), 0);
  EXPECT_EQ(give_back_token_bucket(s, p, 50, first.expires_at, first.expires_at), 0u);
  EXPECT_EQ(s.pool, 0u);
}

TEST(TokenBucketMath, ALateRefundIsCreditedToTheLevelUpToTheBurst) {
  TokenBucketState s;
  const Policy p = bucket(1, 100);
  auto first = lease_token_bucket(s, p, ask(100), 0);  // level 0
  ASSERT_EQ(first.granted, 100u);
  const std::int64_t later = first.expires_at + kSec;  // the lease has ended; 3 s of refill
  EXPECT_EQ(credit_token_bucket(s, p, 30, later), 30u);
  EXPECT_EQ(s.pool, 0u) << "not the pool: its expiry has passed";
  EXPECT_EQ(lease_token_bucket(s, p, ask(200), later).granted,
            30u + static_cast<std::uint64_t>(later / kSec));
  EXPECT_EQ(credit_token_bucket(s, p, 500, later), 100u) << "up to the burst";
  EXPECT_EQ(credit_token_bucket(s, p, 1, later), 0u);
}

TEST(TokenBucketMath, NearlyExpiredPoolIsNotHandedOut) {
  TokenBucketState s;
  const Policy p = bucket(1000, 100);
  auto first = lease_token_bucket(s, p, ask(100), 0);
  give_back_token_bucket(s, p, 50, first.expires_at, 10 * kMs);
  // Less than ttl/4 left on the pool: fresh tokens from the bucket instead.
  const std::int64_t late = first.expires_at - kTtl / 4 + 1;
  auto a = lease_token_bucket(s, p, ask(10), late);
  EXPECT_EQ(a.granted, 10u);
  EXPECT_EQ(a.expires_at, late + kTtl);
  EXPECT_EQ(s.pool, 50u);
}

TEST(TokenBucketMath, PoolExpiryIsTheEarliestOfWhatItHolds) {
  TokenBucketState s;
  const Policy p = bucket(1, 100);
  give_back_token_bucket(s, p, 5, 3 * kSec, 0);
  give_back_token_bucket(s, p, 5, 2 * kSec, 0);
  give_back_token_bucket(s, p, 5, 4 * kSec, 0);
  EXPECT_EQ(s.pool, 15u);
  EXPECT_EQ(s.pool_expires, 2 * kSec);
}

TEST(FixedWindowMath, CountsPerAlignedWindowAndResetsAtTheEdge) {
  WindowState s;
  const Policy p = window(PolicyKind::kFixedWindow, 100, kSec);
  auto a = lease_fixed_window(s, p, ask(70), 10 * kSec + 900 * kMs);
  EXPECT_EQ(a.granted, 70u);
  // Tokens of this window must be spent in it.
  EXPECT_EQ(a.expires_at, 11 * kSec);
  a = lease_fixed_window(s, p, ask(70), 11 * kSec - 1);
  EXPECT_EQ(a.granted, 30u);
  a = lease_fixed_window(s, p, ask(10), 11 * kSec - 1);
  EXPECT_EQ(a.granted, 0u);
  EXPECT_EQ(a.wait_until, 11 * kSec);
  a = lease_fixed_window(s, p, ask(70), 11 * kSec);  // the edge: a new window
  EXPECT_EQ(a.granted, 70u);
  EXPECT_EQ(a.remaining, 30u);
}

TEST(FixedWindowMath, GiveBackOnlyWithinTheSameWindow) {
  WindowState s;
  const Policy p = window(PolicyKind::kFixedWindow, 100, kSec);
  auto a = lease_fixed_window(s, p, ask(100), 100 * kMs);
  EXPECT_EQ(give_back_window(s, p, 40, a.expires_at, 500 * kMs), 40u);
  EXPECT_EQ(s.count, 60u);
  auto b = lease_fixed_window(s, p, ask(100), 600 * kMs);
  EXPECT_EQ(b.granted, 40u);
  lease_fixed_window(s, p, ask(1), 1100 * kMs);  // next window
  EXPECT_EQ(give_back_window(s, p, 40, b.expires_at, 1100 * kMs), 0u);
  EXPECT_EQ(s.count, 1u);
}

TEST(SlidingWindowMath, PreviousWindowWeightedByOverlap) {
  WindowState s;
  const Policy p = window(PolicyKind::kSlidingWindow, 100, kSec);
  EXPECT_EQ(lease_sliding_window(s, p, ask(80), 0).granted, 80u);
  // A quarter into the next window the previous 80 weigh 0.75 × 80 = 60: 40 are free.
  auto a = lease_sliding_window(s, p, ask(100), 1250 * kMs);
  EXPECT_EQ(a.granted, 40u);
  EXPECT_DOUBLE_EQ(sliding_window_estimate(s, p, 1250 * kMs), 100.0);
  // Half-way: 0.5 × 80 + 40 = 80: 20 more.
  EXPECT_EQ(lease_sliding_window(s, p, ask(100), 1500 * kMs).granted, 20u);
}

TEST(SlidingWindowMath, WaitUntilIsWhenTheWeightHasFadedEnough) {
  WindowState s;
  const Policy p = window(PolicyKind::kSlidingWindow, 100, kSec);
  lease_sliding_window(s, p, ask(100), 0);
  auto a = lease_sliding_window(s, p, ask(10, 10), 1000 * kMs);
  EXPECT_EQ(a.granted, 0u);
  // 100 × (1 − e) + 10 ≤ 100  ⇔  e ≥ 0.1 window.
  EXPECT_EQ(a.wait_until, 1100 * kMs);
  EXPECT_EQ(lease_sliding_window(s, p, ask(10, 10), a.wait_until).granted, 10u);
}

TEST(SlidingWindowMath, WindowsTwoApartForgetThePast) {
  WindowState s;
  const Policy p = window(PolicyKind::kSlidingWindow, 100, kSec);
  lease_sliding_window(s, p, ask(100), 0);
  EXPECT_EQ(lease_sliding_window(s, p, ask(100), 2 * kSec).granted, 100u);
  EXPECT_TRUE(idle(s, p, 4 * kSec));
  EXPECT_FALSE(idle(s, p, 4 * kSec - 1));
}

TEST(ConcurrencyMath, ReservationsShareTheLimitAndReleaseReturnsThem) {
  ConcurrencyState s;
  const Policy p = window(PolicyKind::kConcurrency, 10, 0);
  EXPECT_EQ(lease_concurrency(s, p, "a", ask(6), 0).granted, 6u);
  auto b = lease_concurrency(s, p, "b", ask(6), 0);
  EXPECT_EQ(b.granted, 4u);
  EXPECT_EQ(b.remaining, 0u);
  EXPECT_EQ(give_back_concurrency(s, "a", 6, 1), 6u);  // a releases all
  EXPECT_EQ(lease_concurrency(s, p, "b", ask(6), 2).granted, 6u);
}

TEST(ConcurrencyMath, AskingAgainIsIdempotentAndNeverShrinksWhatIsHeld) {
  ConcurrencyState s;
  const Policy p = window(PolicyKind::kConcurrency, 10, 0);
  lease_concurrency(s, p, "a", ask(8), 0);
  EXPECT_EQ(lease_concurrency(s, p, "a", ask(8), 1).granted, 8u);  // absolute, not +8
  lease_concurrency(s, p, "b", ask(2), 1);
  // a wants more than is free: it keeps its 8 and is told to wait.
  auto a = lease_concurrency(s, p, "a", ask(12, 12), 2);
  EXPECT_EQ(a.granted, 8u);
  EXPECT_GT(a.wait_until, 2);
  EXPECT_EQ(lease_concurrency(s, p, "a", ask(3), 3).granted, 3u);  // shrinking is allowed
}

TEST(ConcurrencyMath, UnrenewedReservationLapses) {
  ConcurrencyState s;
  const Policy p = window(PolicyKind::kConcurrency, 10, 0);
  lease_concurrency(s, p, "crashed", ask(10), 0);
  EXPECT_EQ(lease_concurrency(s, p, "b", ask(5), kTtl - 1).granted, 0u);
  EXPECT_EQ(lease_concurrency(s, p, "b", ask(5), kTtl).granted, 5u);
  EXPECT_FALSE(idle(s, kTtl));
  EXPECT_TRUE(idle(s, 2 * kTtl));
}

TEST(TokenBucketMath, IdleOnlyWhenFullAgainAndPoolEmpty) {
  TokenBucketState s;
  const Policy p = bucket(10, 50);
  EXPECT_TRUE(idle(s, p, 0));
  lease_token_bucket(s, p, ask(50), 0);
  EXPECT_FALSE(idle(s, p, 4 * kSec));
  EXPECT_TRUE(idle(s, p, 5 * kSec));
}

}  // namespace
}  // namespace tollgate::core

// ---------------------------------------------------------------------------------------
// Shares (docs/quotas.md), on the simulated clock.

namespace tollgate::core {
namespace {

std::vector<double> fill(double capacity, const std::vector<Claim>& claims) {
  std::vector<double> out(claims.size());
  water_fill(capacity, claims, out);
  return out;
}

TEST(WaterFill, DoormansExampleGivesSixtyFiftyTen) {
  const auto s = fill(120, {{1, 0, 1000}, {1, 0, 50}, {1, 0, 10}});
  EXPECT_DOUBLE_EQ(s[0], 60);
  EXPECT_DOUBLE_EQ(s[1], 50);
  EXPECT_DOUBLE_EQ(s[2], 10);
}

TEST(WaterFill, WeightsSplitWhatTheSmallDemandsLeave) {
  const auto s = fill(100, {{1, 0, 1000}, {1, 0, 1000}, {2, 0, 1000}, {1, 0, 4}});
  EXPECT_DOUBLE_EQ(s[3], 4);
  EXPECT_DOUBLE_EQ(s[0], 24);
  EXPECT_DOUBLE_EQ(s[1], 24);
  EXPECT_DOUBLE_EQ(s[2], 48);
}

TEST(WaterFill, AGuaranteeHoldsAgainstHeavierWeights) {
  // Weighted share alone would give the first 100/11 ≈ 9; its guarantee is 30.
  const auto s = fill(100, {{1, 30, 1000}, {10, 0, 1000}});
  EXPECT_DOUBLE_EQ(s[0], 30);
  EXPECT_DOUBLE_EQ(s[1], 70);
  // A guarantee is not a grant: without the demand it is lent out.
  const auto t = fill(100, {{1, 30, 5}, {10, 0, 1000}});
  EXPECT_DOUBLE_EQ(t[0], 5);
  EXPECT_DOUBLE_EQ(t[1], 95);
}

TEST(WaterFill, GuaranteesThatDoNotFitAreScaledDown) {
  const auto s = fill(100, {{1, 80, 1000}, {1, 120, 1000}});
  EXPECT_DOUBLE_EQ(s[0], 40);
  EXPECT_DOUBLE_EQ(s[1], 60);
}

TEST(WaterFill, UncontendedCapacityIsLentByWeight) {
  const auto s = fill(100, {{1, 0, 10}, {3, 0, 10}});
  EXPECT_DOUBLE_EQ(s[0], 10 + 80.0 / 4);
  EXPECT_DOUBLE_EQ(s[1], 10 + 80.0 * 3 / 4);
}

TEST(WaterFill, AlwaysHandsOutExactlyTheCapacity) {
  for (int seed = 1; seed < 200; ++seed) {
    std::vector<Claim> claims;
    unsigned x = static_cast<unsigned>(seed) * 2654435761u;
    for (int i = 0; i < 1 + seed % 9; ++i) {
      x = x * 1103515245u + 12345u;
      const double w = 0.5 + (x % 7);
      const double lo = (x >> 8) % 3 == 0 ? (x >> 4) % 20 : 0;
      const double hi = (x >> 12) % 200;
      claims.push_back({w, lo, hi});
    }
    const auto s = fill(150, claims);
    double sum = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      sum += s[i];
      EXPECT_GE(s[i], 0);
    }
    EXPECT_NEAR(sum, 150, 1e-6) << "seed " << seed;
  }
}

ResolvedPolicy grouped(double rate, double weight, double group_rate) {
  ResolvedPolicy p{bucket(rate, rate)};
  p.group = "g";
  p.weight = weight;
  p.group_rate = group_rate;
  p.group_burst = group_rate / 4;
  return p;
}

// Instances asking every `step` for a TTL's worth of their demand, which is more than
// they can get; returns tokens granted per (tenant, instance) between from and to.
struct Asker {
  std::string tenant;
  std::string holder;
  const ResolvedPolicy* policy;
  double demand;       // tokens per second it reports
  std::int64_t start;  // first ask
  std::uint64_t granted = 0;
};

void run(GroupState* group, std::map<std::string, TenantState>& tenants, std::vector<Asker>& who,
         std::int64_t from, std::int64_t to, std::int64_t count_from) {
  constexpr std::int64_t kStep = 10 * kMs;
  for (std::int64_t now = from; now < to; now += kStep) {
    for (Asker& a : who) {
      if (now < a.start) continue;
      const auto want = static_cast<std::uint64_t>(a.demand / 10);  // 100 ms of demand
      const LeaseAnswer r = lease_shared(tenants[a.tenant], group, *a.policy, a.tenant, a.holder,
                                         a.demand, 0, LeaseAsk{want, 1, kTtl}, now);
      if (now >= count_from) a.granted += r.granted;
    }
  }
}

TEST(SharedBucket, ContendedTenantsGetTheirWeightedSharesAndTheGroupItsRate) {
  const ResolvedPolicy a = grouped(1000, 1, 400), b = grouped(1000, 1, 400),
                       c = grouped(1000, 2, 400);
  GroupState group;
  std::map<std::string, TenantState> tenants;
  std::vector<Asker> who = {
      {"a", "h1", &a, 1000, 0}, {"b", "h1", &b, 1000, 0}, {"c", "h1", &c, 1000, 0}};
  run(&group, tenants, who, 0, 2 * kSec, 2 * kSec);  // until every demand is known
  run(&group, tenants, who, 2 * kSec, 20 * kSec, 2 * kSec);
  const double all = static_cast<double>(who[0].granted + who[1].granted + who[2].granted);
  EXPECT_LE(all, 100 + 400 * 18);  // burst + rate × time
  EXPECT_GE(all, 0.98 * 400 * 18);
  EXPECT_NEAR(static_cast<double>(who[0].granted) / all, 0.25, 0.01);
  EXPECT_NEAR(static_cast<double>(who[1].granted) / all, 0.25, 0.01);
  EXPECT_NEAR(static_cast<double>(who[2].granted) / all, 0.50, 0.01);
}

TEST(SharedBucket, AnIdleTenantsShareIsLentAndReturnsWithinATtl) {
  const ResolvedPolicy p = grouped(1000, 1, 300);
  GroupState group;
  std::map<std::string, TenantState> tenants;
  std::vector<Asker> who = {
      {"a", "h1", &p, 1000, 0}, {"b", "h1", &p, 1000, 0}, {"c", "h1", &p, 1000, 10 * kSec}};
  run(&group, tenants, who, 0, 10 * kSec, 2 * kSec);
  EXPECT_GE(static_cast<double>(who[0].granted + who[1].granted), 0.99 * 300 * 8);
  // c starts: over the second after one TTL it holds its third.
  for (auto& w : who) w.granted = 0;
  run(&group, tenants, who, 10 * kSec, 10 * kSec + kTtl + kSec, 10 * kSec + kTtl);
  EXPECT_NEAR(static_cast<double>(who[2].granted), 100, 5);
}

TEST(SharedBucket, InstancesGetPartsInProportionToTheirDemand) {
  ResolvedPolicy p{bucket(800, 200)};
  p.fair_instances = true;
  std::map<std::string, TenantState> tenants;
  std::vector<Asker> who;
  for (int i = 0; i < 8; ++i)
    who.push_back({"t", "h" + std::to_string(i), &p, i < 4 ? 640.0 : 160.0, 0});
  run(nullptr, tenants, who, 0, 10 * kSec, 2 * kSec);
  double all = 0;
  for (auto& w : who) all += static_cast<double>(w.granted);
  EXPECT_GE(all, 0.99 * 800 * 8);
  for (int i = 0; i < 8; ++i) {
    const double expected = 800 * 8 * (i < 4 ? 0.2 : 0.05);
    EXPECT_NEAR(static_cast<double>(who[static_cast<std::size_t>(i)].granted), expected,
                0.05 * expected)
        << "instance " << i;
  }
}

// Parts follow reported demand, and a report can be wrong: an instance that reported 90 %
// of the demand and then takes one token every 1.5 s leaves most of the key's rate in the
// bucket. The instance that does ask (reporting 10/s) gets it (work-conserving parts) and
// waits no longer than the bucket takes to refill it, within the bucket's bound; without
// the lending it would get its part, about a hundredth of the rate, a token a second.
TEST(SharedBucket, AnUnspentPartIsLentToTheInstanceThatAsksWithinTheBound) {
  ResolvedPolicy p{bucket(100, 100)};
  p.fair_instances = true;
  TenantState t;
  std::uint64_t busy = 0, quiet = 0;
  std::int64_t longest_wait = 0;
  for (std::int64_t now = 0; now < 10 * kSec; now += 10 * kMs) {
    if (now % (1500 * kMs) == 0)
      quiet += lease_shared(t, nullptr, p, "t", "quiet", 900, 0, LeaseAsk{1, 1, kTtl}, now).granted;
    const LeaseAnswer r =
        lease_shared(t, nullptr, p, "t", "busy", 10, 0, LeaseAsk{10, 1, kTtl}, now);
    busy += r.granted;
    if (r.granted == 0) longest_wait = std::max(longest_wait, r.wait_until - now);
  }
  EXPECT_LE(longest_wait, 100 * kMs);  // the bucket refills a token in 10 ms
  const double all = static_cast<double>(busy + quiet);
  EXPECT_LE(all, 100 + 100 * 10);  // burst + rate × time
  EXPECT_GE(all, 0.9 * 100 * 10);  // the rate, not the busy instance's part of it
  EXPECT_GE(static_cast<double>(busy), 0.85 * 100 * 10);
}

TEST(SharedBucket, TheTighterBoundSaysWhichLevelDenied) {
  ResolvedPolicy p = grouped(10, 1, 1000);  // the tenant's own rate binds
  GroupState group;
  TenantState t;
  auto r = lease_shared(t, &group, p, "a", "h1", 50, 0, LeaseAsk{50, 1, kTtl}, 0);
  EXPECT_EQ(r.granted, 10u);
  EXPECT_EQ(r.limited_by, 1);
  ResolvedPolicy q = grouped(1000, 1, 8);  // the group binds (burst 2)
  GroupState group2;
  TenantState t2;
  r = lease_shared(t2, &group2, q, "a", "h1", 50, 0, LeaseAsk{50, 1, kTtl}, 0);
  EXPECT_EQ(r.granted, 2u);
  EXPECT_EQ(r.limited_by, 2);
  r = lease_shared(t2, &group2, q, "a", "h1", 50, 0, LeaseAsk{50, 1, kTtl}, 0);
  EXPECT_EQ(r.granted, 0u);
  EXPECT_EQ(r.limited_by, 2);
  EXPECT_GT(r.wait_until, 0);
}

// A group's bucket that another instance of the key emptied: the instance that finds it so
// waits its turn, its part (half the group's 100/s here) refilling its ask of 100, at most
// the group's fill time (burst 25: 250 ms), not the 9 ms in which the group holds one token
// again. An instance alone on its key is told the group's time for one token, as before.
TEST(SharedBucket, AnInstanceThatFindsTheGroupEmptiedByOthersWaitsItsTurn) {
  ResolvedPolicy p = grouped(1000, 1, 100);
  p.fair_instances = true;
  GroupState group;
  TenantState t;
  auto r = lease_shared(t, &group, p, "a", "h1", 100, 0, LeaseAsk{100, 1, kTtl}, 0);
  ASSERT_EQ(r.granted, 25u);  // the group's burst
  r = lease_shared(t, &group, p, "a", "h2", 100, 0, LeaseAsk{100, 1, kTtl}, kMs);
  EXPECT_EQ(r.granted, 0u);
  EXPECT_EQ(r.limited_by, 2);
  EXPECT_EQ(r.wait_until - kMs, 250 * kMs);

  GroupState alone_group;
  TenantState alone;
  r = lease_shared(alone, &alone_group, p, "a", "h1", 100, 0, LeaseAsk{100, 1, kTtl}, 0);
  ASSERT_EQ(r.granted, 25u);
  r = lease_shared(alone, &alone_group, p, "a", "h1", 100, 0, LeaseAsk{100, 1, kTtl}, kMs);
  EXPECT_EQ(r.granted, 0u);
  EXPECT_LE(r.wait_until - kMs, 10 * kMs);  // 0.9 tokens more at 100/s: 9 ms
}

TEST(SharedBucket, GivenBackTokensAreLentAgainWithoutCountingTheGroupTwice) {
  ResolvedPolicy p = grouped(1000, 1, 40);  // group burst 10
  GroupState group;
  TenantState t;
  auto r = lease_shared(t, &group, p, "a", "h1", 100, 0, LeaseAsk{10, 1, kTtl}, 0);
  ASSERT_EQ(r.granted, 10u);
  EXPECT_EQ(give_back_token_bucket(t.bucket, p, 6, r.expires_at, kMs), 6u);
  r = lease_shared(t, &group, p, "a", "h1", 100, 0, LeaseAsk{6, 1, kTtl}, 2 * kMs);
  EXPECT_EQ(r.granted, 6u);  // from the pool: the group is still empty
  EXPECT_LT(group.bucket.level, 1);
}

}  // namespace
}  // namespace tollgate::core
