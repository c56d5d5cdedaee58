// Direct tests of the lease-sizing functions (core/lease_sizing.h): pure, no clock.
#include "limiter/lease_sizing.h"

#include <gtest/gtest.h>

namespace tollgate::core {
namespace {

LeaseSizing sizing(std::uint64_t max_lease = 1000) {
  LeaseSizing s;
  s.horizon_s = 2;
  s.refresh_s = 1;
  s.min_tokens = 1;
  s.max_lease = max_lease;
  return s;
}

TEST(LeaseSizing, ALeaseCoversTheHorizonOfDemandWithinItsBounds) {
  EXPECT_EQ(lease_want(100, 1, sizing()), 200u);         // 100/s over 2 s
  EXPECT_EQ(lease_want(0.2, 1, sizing()), 1u);           // a slow key: one token
  EXPECT_EQ(lease_want(10'000, 1, sizing()), 1000u);     // at most max_lease
  EXPECT_EQ(lease_want(10'000, 5000, sizing()), 5000u);  // or what it needs now
  EXPECT_EQ(lease_want(1, 30, sizing()), 30u);
}

TEST(LeaseSizing, DemandIsSampledFromSpendAndDenialsAndADropIsReportedAfterAHorizon) {
  RefillState s;
  s.baseline_balance = 500;
  s.baseline_time = 1000;
  s.baseline_denials = 2;
  // No lease held, or under a millisecond: no sample.
  EXPECT_EQ(sample_demand(s, false, 2000, 2, 400, 2, 1), -1);
  EXPECT_EQ(sample_demand(s, true, 1000, 2, 400, 2, 1), -1);
  EXPECT_EQ(s.rate, 0);
  // 100 spent and 10 denials of cost 5 over 1 s: 150/s, the first sample taken whole;
  // within the horizon nothing is reported.
  EXPECT_EQ(sample_demand(s, true, 2000, 2, 400, 12, 5), -1);
  EXPECT_FLOAT_EQ(s.rate, 150);
  // Nothing spent over 4 s (more than the horizon): the average falls, the drop is reported.
  s.baseline_balance = 400;
  s.baseline_time = 2000;
  s.baseline_denials = 12;
  EXPECT_EQ(sample_demand(s, true, 6000, 2, 400, 12, 5), 0);
  EXPECT_LT(s.rate, 1);
}

TEST(LeaseSizing, AKeyWithoutDemandAsksForAnEighthOfTheLargestLease) {
  EXPECT_EQ(lease_want(0, 1, sizing(800)), 100u);
  EXPECT_EQ(lease_want(0, 1, sizing(4)), 1u);
  EXPECT_EQ(lease_want(0, 300, sizing(800)), 300u);
}

TEST(LeaseSizing, TheWatermarkCoversTheWaitForTheNextCallAndARoundTrip) {
  // 100/s over (1 s hold + 10 ms) x 1.5 + the largest cost 4: 152 + 4, under 3/4 of 400.
  EXPECT_EQ(low_watermark(100, 0.01, 4, 400, sizing()), 156);
  // at most three quarters of a lease (and one token)
  EXPECT_EQ(low_watermark(100, 0.01, 4, 100, sizing()), 76);
  EXPECT_EQ(low_watermark(0, 0.01, 1, 10, sizing()), 1);
}

TEST(LeaseSizing, DemandIsTokensOverTime) {
  EXPECT_DOUBLE_EQ(demand_sample(1000, 0.1), 10'000);
  EXPECT_DOUBLE_EQ(demand_sample(4, 4), 1);
  EXPECT_DOUBLE_EQ(demand_sample(0, 0), 0);
}

TEST(LeaseSizing, OnlyWaitersFailingShardsAndBusyEmptyKeysCannotWait) {
  const LeaseSizing s = sizing();
  EXPECT_TRUE(refill_urgent(true, false, true, false, 500, 1, 0, s));     // someone waits
  EXPECT_TRUE(refill_urgent(false, true, true, false, 500, 1, 0, s));     // shard failing
  EXPECT_TRUE(refill_urgent(false, false, true, false, 0, 1, 500, s));    // busy and dry
  EXPECT_FALSE(refill_urgent(false, false, true, false, 0, 1, 50, s));    // slow and dry
  EXPECT_FALSE(refill_urgent(false, false, true, true, 0, 1, 500, s));    // paced by scarcity
  EXPECT_FALSE(refill_urgent(false, false, true, false, 10, 1, 500, s));  // prefetch
  EXPECT_FALSE(refill_urgent(false, false, false, false, 0, 1, 500, s));  // cold, nobody waits
}

}  // namespace
}  // namespace tollgate::core
