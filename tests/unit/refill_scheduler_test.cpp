// The refill scheduler's machinery (limiter/refill_scheduler.h) directly: a recording
// store whose partition is a key's first letter, times given (no clock), answers given by
// the test.
#include "limiter/refill_scheduler.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tollgate::core {
namespace {

using std::chrono::milliseconds;
using Sched = RefillScheduler;

constexpr Nanos kRefresh = milliseconds(1000);
constexpr Nanos kTtl = milliseconds(8000);  // the hold: min(refresh, ttl / 8) = 1 s

struct RecordingStore : QuotaStore {
  std::vector<std::vector<std::string>> calls;  // keys of each lease() call
  std::vector<LeaseCallback> answers;
  std::vector<GiveBack> given_back;
  void lease(std::vector<LeaseRequest> batch, LeaseCallback done) override {
    std::vector<std::string> keys;
    for (const auto& r : batch) keys.push_back(r.key);
    calls.push_back(keys);
    answers.push_back(std::move(done));
  }
  void give_back(std::vector<GiveBack> batch) override {
    for (auto& g : batch) given_back.push_back(std::move(g));
  }
  std::size_t partition_of(const LeaseRequest& r) const override {
    return static_cast<std::size_t>(r.key[0] - 'a');
  }
};

struct Fixture : ::testing::Test {
  std::shared_ptr<RecordingStore> store = std::make_shared<RecordingStore>();
  std::atomic<std::uint64_t> asked{0}, failures{0}, overdue{0}, given_back{0}, expired{0};
  Sched sched{store, std::make_shared<Observer>(), false, Nanos{0},
              Sched::Counters{&asked, &failures, &overdue, &given_back, &expired}};
  std::map<std::string, Entry*> entries;

  ~Fixture() override {
    for (auto& [k, e] : entries) Entry::destroy(e);
  }
  Entry* entry(const std::string& key) {
    auto& e = entries[key];
    if (e == nullptr) e = Entry::create(key, 1, 0);
    return e;
  }
  void ask(const std::string& key, std::uint8_t urgency, Nanos now) {
    LeaseRequest r;
    r.key = key;
    r.want = 10;
    sched.add(std::move(r), entry(key), urgency, now, kRefresh, kTtl);
  }
  void flush(Nanos now) { sched.flush(now, kRefresh, kTtl); }
  // `key`'s partition was called at 0: what can wait is held until 1 s.
  void called_at_0(const std::string& key) {
    ask(key, Sched::kUrgent, Nanos{0});
    flush(Nanos{0});
  }
  // Answers every call not answered yet (a grant of 0 per key) and takes the answers in.
  void answer_all(Nanos now) {
    for (; answered < store->answers.size(); ++answered) {
      store->answers[answered](std::vector<LeaseGrant>(store->calls[answered].size()));
    }
    sched.drain(now, [](Entry*, std::uint64_t, std::uint64_t, const LeaseGrant&, Nanos) {});
  }
  std::size_t answered = 0;
  std::vector<std::string> call(std::size_t i) const {
    return i < store->calls.size() ? store->calls[i] : std::vector<std::string>{};
  }
};

using RefillSchedulerTest = Fixture;
using V = std::vector<std::string>;

TEST_F(RefillSchedulerTest, ARefillThatCanWaitIsHeldUntilItsPartitionsNextCall) {
  called_at_0("a1");
  ASSERT_EQ(store->calls.size(), 1u);
  ask("a2", Sched::kCanWait, milliseconds(100));
  ask("b1", Sched::kCanWait, milliseconds(100));  // b was never called: goes at once
  flush(milliseconds(100));
  ASSERT_EQ(store->calls.size(), 2u);
  EXPECT_EQ(call(1), V{"b1"});
  EXPECT_TRUE(entry("a2")->s.held);
  answer_all(milliseconds(100));  // (calls in flight keep the scheduler ticking)
  EXPECT_EQ(sched.next_wakeup(milliseconds(900), kRefresh), milliseconds(1000));
  flush(milliseconds(999));
  EXPECT_EQ(store->calls.size(), 2u);
  flush(milliseconds(1000));
  ASSERT_EQ(store->calls.size(), 3u);
  EXPECT_EQ(call(2), V{"a2"});
  EXPECT_FALSE(entry("a2")->s.held);
  EXPECT_TRUE(sched.batch_empty());
  EXPECT_EQ(asked.load(), 3u);
}

TEST_F(RefillSchedulerTest, AnUrgentRefillTakesItsPartitionsHeldOnesAlongAndNoOtherPartitions) {
  ask("a0", Sched::kUrgent, Nanos{0});
  ask("b0", Sched::kUrgent, Nanos{0});
  flush(Nanos{0});
  ASSERT_EQ(store->calls.size(), 2u);  // one call per partition
  ask("a1", Sched::kCanWait, milliseconds(100));
  ask("b1", Sched::kCanWait, milliseconds(100));
  ask("a2", Sched::kUrgent, milliseconds(100));
  flush(milliseconds(100));
  ASSERT_EQ(store->calls.size(), 3u);
  EXPECT_EQ(call(2), (V{"a1", "a2"}));
  EXPECT_TRUE(entry("b1")->s.held);
  // Urged later (someone waits for it now): it goes with the next flush.
  sched.urge(entry("b1"));
  EXPECT_FALSE(entry("b1")->s.held);
  flush(milliseconds(101));
  ASSERT_EQ(store->calls.size(), 4u);
  EXPECT_EQ(call(3), V{"b1"});
}

TEST_F(RefillSchedulerTest, AColdKeysRefillWaitsAQuarterOfTheHold) {
  called_at_0("a0");
  ask("a1", Sched::kCold, milliseconds(100));
  flush(milliseconds(249));
  EXPECT_EQ(store->calls.size(), 1u);
  flush(milliseconds(250));
  ASSERT_EQ(store->calls.size(), 2u);
  EXPECT_EQ(call(1), V{"a1"});
}

TEST_F(RefillSchedulerTest, AFullBatchGoesAtOnce) {
  called_at_0("a0");
  for (std::size_t i = 0; i < Sched::kMaxBatch - 1; ++i) {
    ask("a" + std::to_string(i + 1), Sched::kCanWait, milliseconds(1));
  }
  EXPECT_EQ(store->calls.size(), 1u);  // held
  ask("a-last", Sched::kCanWait, milliseconds(1));
  ASSERT_EQ(store->calls.size(), 2u);
  EXPECT_EQ(call(1).size(), Sched::kMaxBatch);
}

TEST_F(RefillSchedulerTest, OnlyAKeysEarliestTimerFiresAndNeverWithinTheRunningTick) {
  Entry* e = entry("a");
  sched.begin_tick(milliseconds(100));
  sched.add_timer(e, milliseconds(120));
  sched.add_timer(e, milliseconds(130));  // a later one: the earlier covers it
  EXPECT_EQ(sched.timers(), 1u);
  sched.add_timer(e, milliseconds(110));  // an earlier one supersedes it
  EXPECT_EQ(sched.timers(), 2u);
  int fired = 0;
  sched.fire_timers(milliseconds(125), [&](Entry*) { ++fired; });
  EXPECT_EQ(fired, 1);  // the 110 ms one; the 120 ms one was stale
  EXPECT_EQ(sched.timers(), 0u);
  EXPECT_EQ(e->s.timer_refs, 0u);

  sched.begin_tick(milliseconds(200));
  sched.add_timer(e, milliseconds(50));  // in the past: due after this tick
  sched.fire_timers(milliseconds(200), [&](Entry*) { ++fired; });
  EXPECT_EQ(fired, 1);
  sched.fire_timers(milliseconds(201), [&](Entry*) { ++fired; });
  EXPECT_EQ(fired, 2);
}

TEST_F(RefillSchedulerTest, AnswersAreAppliedInTheOrderAskedAndAShortAnswerFailsTheRest) {
  ask("a1", Sched::kUrgent, Nanos{0});
  ask("a2", Sched::kUrgent, Nanos{0});
  flush(Nanos{0});
  ASSERT_EQ(store->answers.size(), 1u);
  EXPECT_TRUE(sched.in_flight());
  LeaseGrant g;
  g.granted = 7;
  store->answers[0]({g});  // one grant for two keys
  std::vector<std::pair<std::string, bool>> applied;
  sched.drain(milliseconds(2), [&](Entry* e, std::uint64_t, std::uint64_t want,
                                   const LeaseGrant& grant, Nanos sent_at) {
    applied.emplace_back(std::string(e->key()), grant.ok);
    EXPECT_EQ(want, 10u);
    EXPECT_EQ(sent_at, Nanos{0});
  });
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0], std::make_pair(std::string("a1"), true));
  EXPECT_EQ(applied[1], std::make_pair(std::string("a2"), false));
  EXPECT_EQ(failures.load(), 1u);
  EXPECT_FALSE(sched.in_flight());
}

TEST_F(RefillSchedulerTest, ACallUnansweredPastItsShardsOverdueTimeSendsItsKeysOnceToTheFallback) {
  // A few answered calls (1 ms each) first: a short record, judged at
  // RoundTrips::kShortRecordFloor. (The first, sent before the shard's first answer, is its
  // set-up: not recorded, and a call sent before it is not judged.)
  Nanos now{0};
  for (int i = 0; i < 3; ++i) {
    ask("a" + std::to_string(i), Sched::kUrgent, now);
    flush(now);
    now += milliseconds(1);
    answer_all(now);
  }
  const Nanos sent = now + RoundTrips::kSettle;  // nothing is judged before
  ask("a-hung", Sched::kUrgent, sent);
  flush(sent);
  std::vector<Entry*> marked;
  auto mark = [&](Entry* e) { marked.push_back(e); };
  const Nanos after = RoundTrips::kShortRecordFloor;
  sched.mark_overdue(sent + after, milliseconds(10), mark);  // floor: 10 ms
  EXPECT_TRUE(marked.empty());
  sched.mark_overdue(sent + after + milliseconds(1), milliseconds(10), mark);
  ASSERT_EQ(marked.size(), 1u);
  EXPECT_EQ(marked[0], entry("a-hung"));
  sched.mark_overdue(sent + milliseconds(500), milliseconds(10), mark);
  EXPECT_EQ(marked.size(), 1u);  // once per call
  EXPECT_EQ(overdue.load(), 1u);
}

// On the SDK's own thread, a tick that comes late (the process had no CPU: its I/O thread
// may hold the answer) judges nothing overdue; the next tick, on time, does.
TEST_F(RefillSchedulerTest, ALateTickOnTheSdksThreadJudgesNoCallOverdueAndTheNextOnTimeDoes) {
  sched.set_own_thread(true);
  Nanos now{0};
  for (int i = 0; i < 3; ++i) {
    sched.begin_tick(now);
    ask("a" + std::to_string(i), Sched::kUrgent, now);
    flush(now);
    now += milliseconds(1);
    sched.begin_tick(now);
    answer_all(now);
  }
  const Nanos sent = now + RoundTrips::kSettle;
  sched.begin_tick(sent);
  ask("a-hung", Sched::kUrgent, sent);
  flush(sent);
  std::vector<Entry*> marked;
  auto mark = [&](Entry* e) { marked.push_back(e); };
  // The thread slept 40 ms past its 1 ms wake-up: past the 30 ms overdue time, not judged.
  const Nanos late = sent + milliseconds(41);
  sched.begin_tick(late);
  sched.mark_overdue(late, milliseconds(10), mark);
  EXPECT_TRUE(marked.empty());
  sched.begin_tick(late + milliseconds(1));  // on time
  sched.mark_overdue(late + milliseconds(1), milliseconds(10), mark);
  ASSERT_EQ(marked.size(), 1u);
  EXPECT_EQ(marked[0], entry("a-hung"));

  // Ticked by the application (no SDK thread: its ticks have no schedule), a gap says
  // nothing about the process: judged at once.
  sched.set_own_thread(false);
  ask("a-hung-2", Sched::kUrgent, late + milliseconds(2));
  flush(late + milliseconds(2));
  const Nanos later = late + milliseconds(200);
  sched.begin_tick(later);
  sched.mark_overdue(later, milliseconds(10), mark);
  EXPECT_EQ(marked.size(), 2u);
}

TEST_F(RefillSchedulerTest, GiveBacksTravelWithALeaseCallOrAfterWaitingARefreshPeriod) {
  GiveBack g;
  g.key = "a";
  g.tokens = 3;
  sched.give_back(g);
  sched.end_tick(milliseconds(10), kRefresh);  // no call went: it waits
  EXPECT_TRUE(store->given_back.empty());
  EXPECT_EQ(sched.next_wakeup(milliseconds(900), kRefresh), milliseconds(1010));
  sched.end_tick(milliseconds(1009), kRefresh);
  EXPECT_TRUE(store->given_back.empty());
  sched.end_tick(milliseconds(1010), kRefresh);
  EXPECT_EQ(store->given_back.size(), 1u);

  sched.give_back(g);
  ask("a1", Sched::kUrgent, milliseconds(1020));
  flush(milliseconds(1020));
  sched.end_tick(milliseconds(1020), kRefresh);  // with the call
  EXPECT_EQ(store->given_back.size(), 2u);
}

// Sent once it had waited a refresh period, it would reach the store after the lease's
// expiry there and credit nothing: a call for nothing. It is dropped and counted as
// expired; a debt (no expiry) still goes.
TEST_F(RefillSchedulerTest, AGiveBackTheStoreWouldNoLongerCreditIsDroppedNotSent) {
  GiveBack g;
  g.key = "a";
  g.tokens = 3;
  given_back = 3;  // the Limiter counts a give-back when it hands it over
  sched.give_back(g, milliseconds(500));
  sched.end_tick(milliseconds(10), kRefresh);
  EXPECT_EQ(expired.load(), 0u);  // still worth something: it waits
  sched.end_tick(milliseconds(500), kRefresh);
  EXPECT_EQ(expired.load(), 3u);
  EXPECT_EQ(given_back.load(), 0u);
  EXPECT_EQ(sched.next_wakeup(milliseconds(600), kRefresh), milliseconds(850));  // nothing due
  sched.end_tick(milliseconds(1010), kRefresh);
  EXPECT_TRUE(store->given_back.empty());

  GiveBack debt = g;
  debt.debt = true;
  sched.give_back(debt);
  sched.end_tick(milliseconds(1020), kRefresh);
  sched.end_tick(milliseconds(2020), kRefresh);
  ASSERT_EQ(store->given_back.size(), 1u);
  EXPECT_TRUE(store->given_back[0].debt);
}

// Instances that start together call each shard at their own phase of the refresh period
// (RefillScheduler::held_due), not all in the same millisecond of every period.
TEST(RefillSchedulerPhase, AHeldCallGoesAtTheInstancesPhaseAndNeverMoreThanAPeriodAfterTheLast) {
  auto store = std::make_shared<RecordingStore>();
  std::atomic<std::uint64_t> asked{0}, failures{0}, overdue{0}, given_back{0}, expired{0};
  Sched sched{store,
              std::make_shared<Observer>(),
              false,
              Nanos{0},
              Sched::Counters{&asked, &failures, &overdue, &given_back, &expired},
              0.5};
  std::vector<Entry*> made;
  const auto ask = [&](std::uint8_t urgency, Nanos now) {
    made.push_back(Entry::create("a" + std::to_string(made.size()), 1, 0));
    LeaseRequest r;
    r.key = made.back()->key();
    r.want = 10;
    sched.add(std::move(r), made.back(), urgency, now, kRefresh, kTtl);
    sched.flush(now, kRefresh, kTtl);
  };
  // The held call goes at `due`, not a millisecond before.
  const auto goes_at = [&](Nanos due) {
    const std::size_t before = store->calls.size();
    sched.flush(due - milliseconds(1), kRefresh, kTtl);
    EXPECT_EQ(store->calls.size(), before) << "before " << due.count();
    sched.flush(due, kRefresh, kTtl);
    EXPECT_EQ(store->calls.size(), before + 1) << "at " << due.count();
  };
  ask(Sched::kUrgent, Nanos{0});
  ASSERT_EQ(store->calls.size(), 1u);
  // Called at 0, phase 0.5 of a 1 s period: the next held call at 500 ms, not at 1 s.
  ask(Sched::kCanWait, milliseconds(100));
  goes_at(milliseconds(500));
  // On the grid now: a whole period to the next (1.5 s), not the grid point 0.25 s on.
  ask(Sched::kCanWait, milliseconds(600));
  goes_at(milliseconds(1500));
  // An urgent call at 2.4 s, just before a grid point: that one (2.5 s) is less than a
  // quarter period on, the next (3.5 s) more than a period: a period after it, 3.4 s.
  ask(Sched::kUrgent, milliseconds(2400));
  ASSERT_EQ(store->calls.size(), 4u);
  ask(Sched::kCanWait, milliseconds(2450));
  goes_at(milliseconds(3400));
  for (Entry* e : made) Entry::destroy(e);
}

TEST(RefillSchedulerPhase, AnInstancesPhaseIsItsIdsAndAFleetsPhasesSpreadOverThePeriod) {
  EXPECT_EQ(Sched::phase_of("i007-0"), Sched::phase_of("i007-0"));
  EXPECT_NE(Sched::phase_of("i007-0"), Sched::phase_of("i008-0"));
  // The fleet simulator's 60 instance ids: every eighth of the period has some of them.
  std::vector<int> eighths(8, 0);
  for (int i = 0; i < 60; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "i%03d-0", i);
    const double p = Sched::phase_of(id);
    ASSERT_GE(p, 0.0);
    ASSERT_LT(p, 1.0);
    ++eighths[static_cast<std::size_t>(p * 8)];
  }
  for (int n : eighths) EXPECT_GE(n, 3);
}

}  // namespace
}  // namespace tollgate::core
