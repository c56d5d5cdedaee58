// core::RoundTrips: a shard's record of answered lease calls, and when a call on its way is
// overdue (docs/resilience.md, "A refill that is overdue"). Pure: durations go in.
#include "limiter/round_trips.h"

#include <gtest/gtest.h>

#include <chrono>

namespace tollgate::core {
namespace {

using namespace std::chrono_literals;
using Nanos = std::chrono::nanoseconds;

// `n` calls, one a second from `from`, each answered after `rtt`.
void answer_each_second(RoundTrips& r, Nanos from, int n, Nanos rtt) {
  for (int i = 0; i < n; ++i) {
    const Nanos sent = from + std::chrono::seconds{i};
    r.add(sent, sent + rtt);
  }
}

TEST(RoundTrips, ThePercentileIsTheSecondLargestOf128AndTheLargestOfFewer) {
  RoundTrips r;
  r.add(0ms, 1ms);                                // the first answer
  for (int i = 0; i < 126; ++i) r.add(2ms, 3ms);  // 1 ms each
  r.add(4ms, 9ms);                                // 5 ms: the largest of 127
  EXPECT_EQ(r.p99(), 5ms);
  r.add(10ms, 13ms);  // 3 ms: 128 recorded, the second largest
  EXPECT_EQ(r.count(), 128u);
  EXPECT_EQ(r.p99(), 3ms);
}

// The start-up round trips of a shard (50-170 ms measured over a real Redis with 32 cold
// keys) must not set its overdue time for the rest of the run: at one call a second, a
// window of 128 calls spanned two minutes.
TEST(RoundTrips, CallsAnsweredMoreThanTenSecondsBeforeTheNewestAnswerAreForgotten) {
  RoundTrips r;
  r.add(0ms, 1ms);
  r.add(500ms, 670ms);  // a slow one: 170 ms
  answer_each_second(r, 1s, 9, 1ms);
  EXPECT_EQ(r.p99(), 170ms) << "within 10 s of the newest answer (9.001 s)";
  answer_each_second(r, 10s, 2, 1ms);  // newest answer at 11.001 s
  EXPECT_EQ(r.p99(), 1ms);
  EXPECT_EQ(r.overdue_after(20ms, 4.0), RoundTrips::kShortRecordFloor);
}

TEST(RoundTrips, CallsSentBeforeTheShardsFirstAnswerAreNeitherRecordedNorJudged) {
  RoundTrips r;
  EXPECT_FALSE(r.overdue(0ms, 10s, 20ms, 4.0)) << "no answer yet: the connection's set-up";
  // Three calls sent while the connection was being set up, answered together.
  r.add(0ms, 150ms);
  r.add(10ms, 160ms);
  r.add(20ms, 170ms);
  EXPECT_EQ(r.count(), 0u);
  EXPECT_EQ(r.p99(), 0ms);
  EXPECT_FALSE(r.overdue(30ms, 10s, 20ms, 4.0)) << "sent before the first answer";
  // A call sent after it is judged, with no round trip on record yet, by the floor.
  EXPECT_FALSE(r.overdue(2200ms, 2230ms, 20ms, 4.0));
  EXPECT_TRUE(r.overdue(2200ms, 2231ms, 20ms, 4.0));
  r.add(171ms, 172ms);
  EXPECT_EQ(r.count(), 1u);
  EXPECT_EQ(r.p99(), 1ms);
  EXPECT_EQ(r.median(), 1ms);
}

// The record is kept while the shard answers nothing: the horizon follows its newest answer,
// so a frozen shard is judged by the round trips it had before it froze.
TEST(RoundTrips, AShardThatStopsAnsweringKeepsItsRecordAndItsCallsBecomeOverdue) {
  RoundTrips r;
  answer_each_second(r, 0s, 10, 2ms);  // the newest answer at 9.002 s
  const Nanos sent = 9500ms;
  EXPECT_FALSE(r.overdue(sent, sent + 30ms, 20ms, 4.0)) << "at the short record's floor";
  EXPECT_TRUE(r.overdue(sent, sent + 31ms, 20ms, 4.0));
  EXPECT_TRUE(r.overdue(sent, sent + 60s, 20ms, 4.0));
  EXPECT_EQ(r.p99(), 2ms) << "a minute later";
}

// A fresh application with an ample quota makes a few lease calls in its life (1-6 in the
// ASP.NET Core measurement, docs/performance.md): its shard is judged from its first answer.
TEST(RoundTrips, AYoungShardIsJudgedFromItsFirstAnswer) {
  RoundTrips r;
  r.add(0ms, 150ms);                  // the connection's set-up: not recorded
  answer_each_second(r, 2s, 2, 1ms);  // two calls on record
  EXPECT_EQ(r.count(), 2u);
  EXPECT_FALSE(r.overdue(5s, 5s + 30ms, 20ms, 4.0));
  EXPECT_TRUE(r.overdue(5s, 5s + 31ms, 20ms, 4.0));
}

// With fewer than 128 calls the largest is no 99th percentile: one slow call of a loaded
// machine (140 ms, measured) made it 4 x 140 ms; the median x 8 is not moved by it.
TEST(RoundTrips, AShortRecordIsJudgedByItsMedianNotByItsLargestCall) {
  RoundTrips r;
  r.add(0ms, 1ms);
  answer_each_second(r, 1s, 17, 2ms);
  r.add(18s, 18s + 140ms);
  EXPECT_EQ(r.p99(), 140ms);
  EXPECT_EQ(r.median(), 2ms);
  EXPECT_EQ(r.overdue_after(20ms, 4.0), 30ms) << "the short record's floor, above 8 x 2 ms";
  EXPECT_TRUE(r.overdue(19s, 19s + 31ms, 20ms, 4.0));
  // A slower shard: 8 x its median.
  RoundTrips slow;
  slow.add(0ms, 1ms);
  answer_each_second(slow, 1s, 9, 10ms);
  EXPECT_EQ(slow.overdue_after(20ms, 4.0), 80ms);
}

// The reference fleet's start: 60 instances send their keys' first leases 0.5 s in, and a
// healthy shard queued lone calls past 30 ms (29,881 decisions went to the fallback).
TEST(RoundTrips, NothingIsJudgedWithinTwoSecondsOfTheShardsFirstAnswer) {
  RoundTrips r;
  r.add(0ms, 2ms);
  r.add(10ms, 12ms);
  EXPECT_FALSE(r.overdue(500ms, 1900ms, 20ms, 4.0));
  EXPECT_FALSE(r.overdue(500ms, 2001ms, 20ms, 4.0));
  EXPECT_TRUE(r.overdue(500ms, 2002ms, 20ms, 4.0)) << "2 s after the first answer";
}

TEST(RoundTrips, AFullRecordIsJudgedByFourTimesItsP99) {
  RoundTrips r;
  r.add(0ms, 1ms);
  for (int i = 0; i < 127; ++i) r.add(10ms * (i + 1), 10ms * (i + 1) + 10ms);
  EXPECT_EQ(r.count(), 127u);
  EXPECT_EQ(r.overdue_after(20ms, 4.0), 80ms) << "127 calls: still a short record";
  r.add(2s, 2s + 10ms);
  EXPECT_EQ(r.count(), 128u);
  EXPECT_EQ(r.overdue_after(20ms, 4.0), 40ms);
  EXPECT_EQ(r.overdue_after(50ms, 4.0), 50ms) << "at least the floor";
}

}  // namespace
}  // namespace tollgate::core
