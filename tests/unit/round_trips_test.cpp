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
  EXPECT_EQ(r.overdue_after(20ms, 4.0), 20ms);
}

TEST(RoundTrips, CallsSentBeforeTheShardsFirstAnswerAreNotRecorded) {
  RoundTrips r;
  // Three calls sent while the connection was being set up, answered together.
  r.add(0ms, 150ms);
  r.add(10ms, 160ms);
  r.add(20ms, 170ms);
  for (int i = 0; i < 5; ++i) r.add(30ms, 170ms);
  EXPECT_EQ(r.count(), 0u);
  EXPECT_FALSE(r.overdue(171ms, 10s, 20ms, 4.0)) << "8 answers, none recorded: not judged";
  EXPECT_EQ(r.p99(), 0ms);
  r.add(171ms, 172ms);
  EXPECT_EQ(r.count(), 1u);
  EXPECT_EQ(r.p99(), 1ms);
}

// The record is kept while the shard answers nothing: the horizon follows its newest answer,
// so a frozen shard is judged by the round trips it had before it froze.
TEST(RoundTrips, AShardThatStopsAnsweringKeepsItsRecordAndItsCallsBecomeOverdue) {
  RoundTrips r;
  answer_each_second(r, 0s, 10, 2ms);  // the newest answer at 9.002 s
  const Nanos sent = 9500ms;
  EXPECT_FALSE(r.overdue(sent, sent + 20ms, 20ms, 4.0)) << "at the floor itself";
  EXPECT_TRUE(r.overdue(sent, sent + 21ms, 20ms, 4.0));
  EXPECT_TRUE(r.overdue(sent, sent + 60s, 20ms, 4.0));
  EXPECT_EQ(r.p99(), 2ms) << "a minute later";
}

TEST(RoundTrips, AShardWithFewerThanEightRecordedCallsIsNotJudged) {
  RoundTrips r;
  answer_each_second(r, 0s, 8, 1ms);  // the first is not recorded
  EXPECT_FALSE(r.overdue(10s, 20s, 20ms, 4.0));
  r.add(10s, 10s + 1ms);
  EXPECT_TRUE(r.overdue(11s, 12s, 20ms, 4.0));
}

}  // namespace
}  // namespace tollgate::core
