// The lease book (two leases a key holds, spent first-in first-out) and the local fallback
// bucket, directly: plain state and a simulated clock (the functions take `now`, in
// limiter milliseconds).
#include <gtest/gtest.h>

#include "limiter/fallback_bucket.h"
#include "limiter/lease_book.h"

namespace tollgate::core {
namespace {

HeldLease lease(std::uint32_t granted, Ms local_expiry) {
  return HeldLease{granted, local_expiry, local_expiry + 20};
}

TEST(LeaseBook, HoldsTwoLeasesOldestFirst) {
  RefillState s;
  book_credit(s, lease(100, 2000));
  book_credit(s, lease(50, 2500));
  ASSERT_EQ(s.lease_count, 2);
  EXPECT_EQ(s.leases[0].granted, 100u);
  EXPECT_EQ(s.leases[1].granted, 50u);
}

TEST(LeaseBook, AThirdGrantFoldsIntoTheNewerLeaseKeepingTheEarlierExpiry) {
  RefillState s;
  book_credit(s, lease(100, 2000));
  book_credit(s, lease(50, 2500));
  book_credit(s, lease(30, 2400));  // ends before the newer one: its expiry wins
  ASSERT_EQ(s.lease_count, 2);
  EXPECT_EQ(s.leases[1].granted, 80u);
  EXPECT_EQ(s.leases[1].local_expiry, 2400u);
  EXPECT_EQ(s.leases[1].store_expiry, 2420u);
  book_credit(s, lease(10, 3000));  // ends later: the newer lease keeps its expiry
  EXPECT_EQ(s.leases[1].granted, 90u);
  EXPECT_EQ(s.leases[1].local_expiry, 2400u);
}

TEST(LeaseBook, TheOldestIsDueAtItsLocalExpiry) {
  RefillState s;
  EXPECT_FALSE(book_oldest_due(s, 5000));  // no lease
  book_credit(s, lease(100, 2000));
  EXPECT_FALSE(book_oldest_due(s, 1999));
  EXPECT_TRUE(book_oldest_due(s, 2000));
  EXPECT_TRUE(book_oldest_due(s, 2001));
}

TEST(LeaseBook, DueAcrossTheWrapOfTheMillisecondClock) {
  RefillState s;
  book_credit(s, lease(1, 5));                   // expiry just after the wrap
  EXPECT_FALSE(book_oldest_due(s, 0xfffffff0));  // just before it
  EXPECT_TRUE(book_oldest_due(s, 5));
}

TEST(LeaseBook, WhatIsLeftOfTheOldestIsTheBalanceBeyondTheNewer) {
  RefillState s;
  book_credit(s, lease(100, 2000));
  EXPECT_EQ(book_oldest_left(s, 70), 70);  // one lease: all of the balance
  book_credit(s, lease(50, 2500));
  EXPECT_EQ(book_oldest_left(s, 120), 70);  // 50 belong to the newer lease
  EXPECT_EQ(book_oldest_left(s, 40), 0);    // the oldest is spent (and some of the newer)
  EXPECT_EQ(book_oldest_left(s, -3), 0);    // never negative
}

TEST(LeaseBook, EndingTheOldestShiftsTheNewerAndKeepsTakenTokensOutOfTheSample) {
  RefillState s;
  s.baseline_balance = 150;
  book_credit(s, lease(100, 2000));
  book_credit(s, lease(50, 2500));
  book_end_oldest(s, 70);
  ASSERT_EQ(s.lease_count, 1);
  EXPECT_EQ(s.leases[0].granted, 50u);
  EXPECT_EQ(s.leases[0].local_expiry, 2500u);
  EXPECT_EQ(s.baseline_balance, 80);
  EXPECT_FALSE(book_oldest_due(s, 2400));
  EXPECT_TRUE(book_oldest_due(s, 2500));
}

TEST(FallbackBucket, StartsFull) {
  const FallbackFill f = fallback_fill(true, 0, 1000, 10, 20, 20, 0);
  EXPECT_EQ(f.add, 20);
  EXPECT_EQ(f.filled, 1000u);
  EXPECT_EQ(fallback_fill(true, 0, 1000, 10, 20, 20, 5).add, 15);  // up to burst
  EXPECT_EQ(fallback_fill(true, 0, 1000, 10, 20, 20, 30).add, 0);  // never takes away
}

TEST(FallbackBucket, RefillsAtTheRateKeepingTheFractionOfATokenNotYetAccrued) {
  // 10 tokens/s: one every 100 ms. 250 ms after being filled up to 1000: 2 tokens, and
  // the bucket is filled up to 1200 (the 50 ms left count towards the next token).
  FallbackFill f = fallback_fill(false, 1000, 1250, 10, 20, 20, 0);
  EXPECT_EQ(f.add, 2);
  EXPECT_EQ(f.filled, 1200u);
  f = fallback_fill(false, f.filled, 1300, 10, 20, 20, 2);
  EXPECT_EQ(f.add, 1);
  EXPECT_EQ(f.filled, 1300u);
}

TEST(FallbackBucket, NothingBeforeATokenHasAccruedOrWhenTimeHasNotMoved) {
  FallbackFill f = fallback_fill(false, 1000, 1050, 10, 20, 20, 0);
  EXPECT_EQ(f.add, 0);
  EXPECT_EQ(f.filled, 1000u);
  f = fallback_fill(false, 1000, 1000, 10, 20, 20, 0);
  EXPECT_EQ(f.add, 0);
  EXPECT_EQ(f.filled, 1000u);
}

TEST(FallbackBucket, AFullBucketStopsAtBurstAndIsFilledUpToNow) {
  const FallbackFill f = fallback_fill(false, 1000, 10'000, 10, 20, 20, 15);
  EXPECT_EQ(f.add, 5);
  EXPECT_EQ(f.filled, 10'000u);
}

TEST(FallbackShare, SixteenBitsHoldTheShareWithinAPercent) {
  for (double v : {0.01, 0.17, 1.0, 3.5, 99.0, 1234.5, 2e6}) {
    EXPECT_NEAR(decode_share(encode_share(v)), v, v * 0.005) << v;
  }
  EXPECT_EQ(decode_share(encode_share(0)), 0);
  EXPECT_EQ(decode_share(encode_share(-3)), 0);
}

TEST(FallbackShare, TheShareFollowsTheGrantsAndNeverPassesTheRate) {
  double share = next_share(0, 50, 1.0, 100);
  EXPECT_DOUBLE_EQ(share, 50) << "the first grant sets it";
  for (int i = 0; i < 20; ++i) share = next_share(share, 10, 1.0, 100);
  EXPECT_NEAR(share, 10, 0.1);
  EXPECT_DOUBLE_EQ(next_share(share, 1000, 0.5, 100), 100) << "at most the policy's rate";
}

TEST(FallbackShare, TheBucketIsOneSecondOfTheShare) {
  ShareBucket b = share_bucket(20.4, 100, 100);
  EXPECT_DOUBLE_EQ(b.rate, 20.4);
  EXPECT_EQ(b.burst, 20);
  EXPECT_EQ(b.start, 20);
  b = share_bucket(0.2, 100, 100);  // a long-tail tenant's share on one of 60 instances
  EXPECT_EQ(b.burst, 1);
  EXPECT_EQ(b.start, 0) << "it starts empty: the instances' buckets sum to the quota";
  EXPECT_EQ(share_bucket(500, 100, 50).burst, 50);
  // A bucket that starts empty still fills at its rate.
  const FallbackFill f = fallback_fill(false, 1000, 6000, 0.2, 1, 0, 0);
  EXPECT_EQ(f.add, 1);
}

}  // namespace
}  // namespace tollgate::core
