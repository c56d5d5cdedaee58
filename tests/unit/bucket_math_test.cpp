// The global bucket arithmetic shared by the InProcessStore and the Redis scripts, under a
// simulated clock (plain integers: the functions take `now`).
#include "core/bucket_math.h"

#include <gtest/gtest.h>

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
