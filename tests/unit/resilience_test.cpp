// The resilience pieces on a simulated clock and a seeded random source: backoff with
// jitter, the circuit breaker's states and thresholds, the bulkhead's limits.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "resilience/backoff.h"
#include "resilience/bulkhead.h"
#include "resilience/circuit_breaker.h"
#include "tollgate/manual_clock.h"

namespace tollgate::resilience {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, FullJitterStaysUnderTheExponentialCeilingAndSpreadsOut) {
  Backoff b({100ms, 2s, 0, Jitter::kFull}, 42);
  for (int n = 0; n < 8; ++n) {
    const Nanos ceiling = std::min<Nanos>(2s, Nanos(100ms) * (1 << n));
    std::set<std::int64_t> seen;
    const Nanos d = *b.next();
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d, ceiling) << "attempt " << n;
    // Many clients at the same attempt do not pick the same delay.
    for (int c = 0; c < 50; ++c) {
      Backoff other({100ms, 2s, 0, Jitter::kFull}, static_cast<unsigned>(c * 7919 + n));
      for (int i = 0; i < n; ++i) other.next();
      seen.insert(other.next()->count());
    }
    EXPECT_GT(seen.size(), 45u) << "attempt " << n;
  }
}

TEST(Backoff, DecorrelatedJitterStaysBetweenBaseAndThreeTimesThePreviousDelay) {
  Backoff b({100ms, 5s, 0, Jitter::kDecorrelated}, 7);
  Nanos prev = 100ms;
  for (int n = 0; n < 30; ++n) {
    const Nanos d = *b.next();
    EXPECT_GE(d, Nanos(100ms));
    EXPECT_LE(d, std::min<Nanos>(5s, prev * 3));
    prev = d;
  }
}

TEST(Backoff, WithoutJitterItDoublesUpToTheCapAndStopsAfterMaxAttempts) {
  Backoff b({100ms, 1s, 6, Jitter::kNone}, 0);
  std::vector<Nanos> got;
  while (auto d = b.next()) got.push_back(*d);
  const std::vector<Nanos> want = {100ms, 200ms, 400ms, 800ms, 1s, 1s};
  EXPECT_EQ(got, want);
  EXPECT_FALSE(b.next().has_value());
  b.reset();
  EXPECT_EQ(*b.next(), Nanos(100ms));
}

class BreakerTest : public ::testing::Test {
 protected:
  void record(CircuitBreaker& b, int ok, int failed, Nanos took = 1ms) {
    for (int i = 0; i < ok; ++i) {
      ASSERT_TRUE(b.allow());
      b.on_success(took);
    }
    for (int i = 0; i < failed; ++i) {
      ASSERT_TRUE(b.allow());
      b.on_failure(took);
    }
  }
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
};

TEST_F(BreakerTest, StaysClosedBelowTheMinimumThroughputWhateverTheFailures) {
  BreakerOptions o;
  o.minimum_throughput = 10;
  CircuitBreaker b(o, clock);
  record(b, 0, 9);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
}

TEST_F(BreakerTest, OpensAtTheFailureRatioThenProbesAndCloses) {
  BreakerOptions o;
  o.failure_ratio = 0.5;
  o.minimum_throughput = 10;
  o.break_duration = 5s;
  o.permitted_calls_in_half_open = 2;
  CircuitBreaker b(o, clock);
  std::vector<std::string> seen;
  b.set_observer([&](BreakerState from, BreakerState to) {
    seen.push_back(std::string(to_string(from)) + "->" + std::string(to_string(to)));
  });
  record(b, 5, 4);
  EXPECT_EQ(b.state(), BreakerState::kClosed);  // 4 of 9, and below 10 calls
  record(b, 0, 1);                              // 5 of 10 = 0.5
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  EXPECT_FALSE(b.allow());
  clock->advance(4999ms);
  EXPECT_FALSE(b.allow());
  clock->advance(1ms);
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
  EXPECT_TRUE(b.allow());
  EXPECT_TRUE(b.allow());
  EXPECT_FALSE(b.allow()) << "only 2 probes";
  b.on_success(1ms);
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
  b.on_success(1ms);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  const std::vector<std::string> want = {"closed->open", "open->half_open", "half_open->closed"};
  EXPECT_EQ(seen, want);
  EXPECT_EQ(b.counts().opened, 1u);
  EXPECT_EQ(b.counts().rejected, 3u);
}

TEST_F(BreakerTest, AFailedProbeOpensItAgainForAnotherBreak) {
  BreakerOptions o;
  o.minimum_throughput = 2;
  o.break_duration = 1s;
  CircuitBreaker b(o, clock);
  record(b, 0, 2);
  ASSERT_EQ(b.state(), BreakerState::kOpen);
  clock->advance(1s);
  ASSERT_TRUE(b.allow());
  b.on_failure(1ms);
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  clock->advance(999ms);
  EXPECT_FALSE(b.allow());
  clock->advance(1ms);
  EXPECT_TRUE(b.allow());
}

TEST_F(BreakerTest, SlowCallsOpenItAtTheSlowCallRate) {
  BreakerOptions o;
  o.minimum_throughput = 4;
  o.failure_ratio = 1.0;
  o.slow_call_rate_threshold = 0.5;
  o.slow_call_duration_threshold = 200ms;
  CircuitBreaker b(o, clock);
  record(b, 2, 0, 10ms);
  record(b, 1, 0, 250ms);
  EXPECT_EQ(b.state(), BreakerState::kClosed);  // 1 of 3 slow
  record(b, 1, 0, 300ms);                       // 2 of 4
  EXPECT_EQ(b.state(), BreakerState::kOpen);
}

TEST_F(BreakerTest, OldOutcomesSlideOutOfTheTimeWindow) {
  BreakerOptions o;
  o.minimum_throughput = 4;
  o.sampling_duration = 10s;
  CircuitBreaker b(o, clock);
  record(b, 0, 3);
  clock->advance(11s);  // those failures are older than the window now
  record(b, 3, 1);
  EXPECT_EQ(b.state(), BreakerState::kClosed);  // 1 of 4 in the window
}

TEST_F(BreakerTest, ACountBasedWindowKeepsTheLastNCalls) {
  BreakerOptions o;
  o.minimum_throughput = 4;
  o.sliding_window_size = 4;
  CircuitBreaker b(o, clock);
  record(b, 0, 1);
  record(b, 4, 0);  // the failure has left the last 4
  record(b, 0, 1);
  EXPECT_EQ(b.state(), BreakerState::kClosed);  // 1 of 4 < 0.5
  record(b, 0, 1);
  EXPECT_EQ(b.state(), BreakerState::kOpen);  // 2 of 4
}

TEST(Bulkhead, NeverMoreInFlightThanTheLimitAndOverflowIsRefusedAtOnce) {
  Bulkhead b(2, 3);
  std::vector<int> started;
  for (int i = 0; i < 7; ++i) {
    const bool taken = b.submit([&started, i] { started.push_back(i); });
    EXPECT_EQ(taken, i < 5) << i;
  }
  EXPECT_EQ(started, (std::vector<int>{0, 1}));
  EXPECT_EQ(b.in_flight(), 2u);
  EXPECT_EQ(b.queued(), 3u);
  EXPECT_EQ(b.rejected(), 2u);
  b.done();  // call 0 finished: the oldest queued one starts
  EXPECT_EQ(started, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(b.in_flight(), 2u);
  for (int i = 0; i < 4; ++i) b.done();
  EXPECT_EQ(started, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(b.in_flight(), 0u);
}

}  // namespace
}  // namespace tollgate::resilience
