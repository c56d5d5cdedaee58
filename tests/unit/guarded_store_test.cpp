// GuardedStore over a fake transport, on a ManualClock and manual timers: the bulkhead,
// the breaker (failures and slow calls as the injected clock measures them, half-open
// probes), retries with the same request ids, unsent calls, give-backs.
#include "resilience/guarded_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tollgate::resilience {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A key "<shard>:<name>" lives on shard <shard>. Calls wait until the test answers them.
class FakeTransport final : public ShardTransport {
 public:
  explicit FakeTransport(std::size_t shards) : shards_(shards) {}

  struct Sent {
    std::size_t shard;
    std::vector<std::string> ids;  // request ids, in order
    std::function<void(ShardOutcome)> done;
  };
  std::deque<Sent> sent;
  std::vector<std::pair<std::size_t, std::vector<GiveBack>>> given_back;

  std::size_t shard_count() const override { return shards_; }
  std::size_t shard_of(const Policy&, std::string_view key) const override {
    return static_cast<std::size_t>(key.front() - '0');
  }
  std::string shard_name(std::size_t shard) const override {
    return "fake://shard" + std::to_string(shard);
  }
  void send_leases(std::size_t shard, std::vector<const LeaseRequest*> requests,
                   std::function<void(ShardOutcome)> done) override {
    Sent s{shard, {}, std::move(done)};
    for (const LeaseRequest* r : requests) s.ids.push_back(r->request_id);
    sent.push_back(std::move(s));
  }
  void send_give_backs(std::size_t shard, std::vector<GiveBack> batch) override {
    given_back.emplace_back(shard, std::move(batch));
  }

  // Answers the oldest call: every key granted `tokens`.
  void grant_oldest(std::uint64_t tokens = 5) {
    Sent s = pop();
    ShardOutcome out;
    for (std::size_t i = 0; i < s.ids.size(); ++i) {
      LeaseGrant g;
      g.granted = tokens;
      out.grants.push_back(g);
    }
    s.done(std::move(out));
  }
  void fail_oldest(std::string error = "command timed out", bool unsent = false) {
    Sent s = pop();
    ShardOutcome out;
    out.error = std::move(error);
    out.unsent = unsent;
    s.done(std::move(out));
  }
  Sent pop() {
    if (sent.empty()) throw std::logic_error("no call to answer");
    Sent s = std::move(sent.front());
    sent.pop_front();
    return s;
  }

 private:
  std::size_t shards_;
};

// Timers on a ManualClock: run_due() fires what is due, in order of due time.
class ManualTimers final : public Timers {
 public:
  explicit ManualTimers(std::shared_ptr<ManualClock> clock) : clock_(std::move(clock)) {}
  void after(Nanos delay, std::function<void()> fn) override {
    due_.emplace(clock_->now() + delay, std::move(fn));
  }
  void run_due() {
    while (!due_.empty() && due_.begin()->first <= clock_->now()) {
      auto fn = std::move(due_.begin()->second);
      due_.erase(due_.begin());
      fn();
    }
  }
  std::size_t pending() const { return due_.size(); }
  std::optional<Nanos> next_in() const {
    if (due_.empty()) return std::nullopt;
    return due_.begin()->first - clock_->now();
  }

 private:
  std::shared_ptr<ManualClock> clock_;
  std::multimap<Nanos, std::function<void()>> due_;
};

class ObserverLog final : public Observer {
 public:
  std::vector<BreakerEvent> events;
  std::vector<std::string> lines;
  void on_breaker(const BreakerEvent& e) noexcept override { events.push_back(e); }
  void on_log(LogLevel, std::string_view message) noexcept override { lines.emplace_back(message); }
};

struct Answer {
  bool called = false;
  std::vector<LeaseGrant> grants;
};

class GuardedStoreTest : public ::testing::Test {
 protected:
  void make(std::size_t shards = 2, RetryOptions retry = {}) {
    transport = std::make_shared<FakeTransport>(shards);
    retry.seed = 7;
    store = std::make_unique<GuardedStore>(transport, breaker, bulkhead, retry, clock, timers);
  }

  LeaseRequest request(const std::string& key) {
    LeaseRequest r;
    r.key = key;
    r.policy = policy;
    r.want = 5;
    r.request_id = "id-" + key + "-" + std::to_string(++ids_);
    r.holder = "me";
    r.ttl = 2s;
    return r;
  }
  std::shared_ptr<Answer> lease(const std::vector<std::string>& keys) {
    std::vector<LeaseRequest> batch;
    for (const auto& k : keys) batch.push_back(request(k));
    auto a = std::make_shared<Answer>();
    store->lease(std::move(batch), [a](std::vector<LeaseGrant> g) {
      EXPECT_FALSE(a->called) << "answered twice";
      a->called = true;
      a->grants = std::move(g);
    });
    return a;
  }
  // One call on shard 0 that fails (unsent, so no retry) after `took` on the clock.
  void failing_call(Nanos took = 1ms) {
    auto a = lease({"0:k"});
    clock->advance(took);
    transport->fail_oldest("unavailable", true);
    ASSERT_TRUE(a->called);
  }

  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::shared_ptr<ManualTimers> timers = std::make_shared<ManualTimers>(clock);
  std::shared_ptr<ResolvedPolicy> policy = [] {
    auto p = std::make_shared<ResolvedPolicy>();
    p->name = p->match = "tenants";
    p->rate = 100;
    return p;
  }();
  BreakerConfig breaker = [] {
    BreakerConfig b;
    b.minimum_throughput = 3;
    b.failure_ratio = 0.5;
    b.slow_call_duration_threshold = 100ms;
    b.slow_call_rate_threshold = 0.5;
    b.sampling_duration = 10s;
    b.break_duration = 5s;
    b.permitted_calls_in_half_open = 1;
    return b;
  }();
  BulkheadConfig bulkhead;
  std::shared_ptr<FakeTransport> transport;
  std::unique_ptr<GuardedStore> store;

 private:
  int ids_ = 0;
};

TEST_F(GuardedStoreTest, OneCallPerShardAndTheAnswersComeBackInTheBatchsOrder) {
  make(3);
  auto a = lease({"2:a", "0:b", "2:c", "1:d"});
  ASSERT_EQ(transport->sent.size(), 3u);
  EXPECT_EQ(transport->sent[0].shard, 0u);
  EXPECT_EQ(transport->sent[1].shard, 1u);
  EXPECT_EQ(transport->sent[2].shard, 2u);
  EXPECT_THAT(transport->sent[2].ids, ElementsAre("id-2:a-1", "id-2:c-3"));
  transport->grant_oldest(1);
  transport->grant_oldest(2);
  EXPECT_FALSE(a->called) << "answered before every shard did";
  transport->grant_oldest(3);
  ASSERT_TRUE(a->called);
  ASSERT_EQ(a->grants.size(), 4u);
  EXPECT_EQ(a->grants[0].granted, 3u);
  EXPECT_EQ(a->grants[1].granted, 1u);
  EXPECT_EQ(a->grants[2].granted, 3u);
  EXPECT_EQ(a->grants[3].granted, 2u);
  EXPECT_EQ(store->partition_of(request("2:x")), 2u);
  const auto c = store->counters();
  EXPECT_EQ(c.calls, 4u);
  EXPECT_EQ(c.batches, 3u);
  EXPECT_EQ(c.failures, 0u);
}

TEST_F(GuardedStoreTest, ARequestWithoutAPolicyFailsAlone) {
  make();
  std::vector<LeaseRequest> batch{request("0:a"), request("0:b")};
  batch[1].policy = nullptr;
  std::optional<std::vector<LeaseGrant>> got;
  store->lease(std::move(batch), [&](std::vector<LeaseGrant> g) { got = std::move(g); });
  ASSERT_EQ(transport->sent.size(), 1u);
  EXPECT_EQ(transport->sent[0].ids.size(), 1u);
  transport->grant_oldest();
  ASSERT_TRUE(got);
  EXPECT_TRUE((*got)[0].ok);
  EXPECT_FALSE((*got)[1].ok);
  EXPECT_EQ((*got)[1].error, "lease request without a policy");
}

TEST_F(GuardedStoreTest, FailuresOpenTheBreakerAndItsShardFailsAtOnceWhileOthersGoOn) {
  make();
  auto ob = std::make_shared<ObserverLog>();
  store->set_observer(ob);
  failing_call();
  failing_call();
  EXPECT_EQ(store->breaker_state(0), BreakerState::kClosed) << "below minimum_throughput";
  failing_call();
  EXPECT_EQ(store->breaker_state(0), BreakerState::kOpen);
  EXPECT_THAT(store->breaker_states(), ElementsAre(BreakerState::kOpen, BreakerState::kClosed));
  ASSERT_EQ(ob->events.size(), 1u);
  EXPECT_EQ(ob->events[0].shard, 0u);
  EXPECT_EQ(ob->events[0].to, BreakerState::kOpen);
  ASSERT_EQ(ob->lines.size(), 1u);
  EXPECT_EQ(ob->lines[0], "fake://shard0: circuit breaker closed -> open");

  auto a = lease({"0:k", "1:k"});
  ASSERT_EQ(transport->sent.size(), 1u) << "shard 0 short-circuited, shard 1 sent";
  EXPECT_EQ(transport->sent[0].shard, 1u);
  transport->grant_oldest();
  ASSERT_TRUE(a->called);
  EXPECT_FALSE(a->grants[0].ok);
  EXPECT_EQ(a->grants[0].error, "fake://shard0: circuit open");
  EXPECT_TRUE(a->grants[1].ok);
  const auto c = store->counters();
  EXPECT_EQ(c.short_circuited, 1u);
  EXPECT_EQ(c.failures, 3u);
  EXPECT_EQ(c.retries, 0u) << "unsent calls are not retried";
}

TEST_F(GuardedStoreTest, SlowCallsAsTheInjectedClockMeasuresThemOpenTheBreaker) {
  make();
  // Answered at once on the clock (however long the machine took): not slow.
  for (int i = 0; i < 4; ++i) {
    lease({"0:k"});
    transport->grant_oldest();
  }
  EXPECT_EQ(store->breaker_state(0), BreakerState::kClosed);
  // Answered, but 150 ms later on the clock: slow (threshold 100 ms).
  for (int i = 0; i < 3; ++i) {
    auto a = lease({"0:k"});
    clock->advance(150ms);
    transport->grant_oldest();
    ASSERT_TRUE(a->called);
    EXPECT_TRUE(a->grants[0].ok) << "a slow answer is still an answer";
  }
  EXPECT_EQ(store->breaker_state(0), BreakerState::kClosed) << "3 slow of 7 calls";
  lease({"0:k"});
  clock->advance(150ms);
  transport->grant_oldest();
  EXPECT_EQ(store->breaker_state(0), BreakerState::kOpen) << "4 slow of 8: the rate 0.5";
  EXPECT_EQ(store->counters().failures, 0u);
}

TEST_F(GuardedStoreTest, AfterTheBreakDurationOneProbeGoesAndItsSuccessClosesTheBreaker) {
  make();
  for (int i = 0; i < 3; ++i) failing_call();
  ASSERT_EQ(store->breaker_state(0), BreakerState::kOpen);
  clock->advance(5s - 3ms);
  EXPECT_EQ(store->breaker_state(0), BreakerState::kOpen);
  clock->advance(3ms);
  EXPECT_EQ(store->breaker_state(0), BreakerState::kHalfOpen);
  auto probe = lease({"0:a"});
  auto second = lease({"0:b"});
  ASSERT_EQ(transport->sent.size(), 1u) << "one probe at a time";
  ASSERT_TRUE(second->called);
  EXPECT_THAT(second->grants[0].error, HasSubstr("circuit open"));
  transport->grant_oldest();
  ASSERT_TRUE(probe->called);
  EXPECT_TRUE(probe->grants[0].ok);
  EXPECT_EQ(store->breaker_state(0), BreakerState::kClosed);
  EXPECT_EQ(store->breaker_counts(0).opened, 1u);
  EXPECT_EQ(store->breaker_counts(0).closed, 1u);
}

TEST_F(GuardedStoreTest, AFailedProbeOpensTheBreakerForAnotherBreak) {
  make();
  for (int i = 0; i < 3; ++i) failing_call();
  clock->advance(5s);
  failing_call();  // the probe
  EXPECT_EQ(store->breaker_state(0), BreakerState::kOpen);
  EXPECT_EQ(store->breaker_counts(0).opened, 2u);
  clock->advance(4s);
  EXPECT_EQ(store->breaker_state(0), BreakerState::kOpen) << "a full break from the probe";
}

TEST_F(GuardedStoreTest, TheBulkheadQueuesWhatDoesNotFitAndRefusesWhatTheQueueCannotHold) {
  bulkhead.max_in_flight = 2;
  bulkhead.max_queue = 3;
  make();
  auto a = lease({"0:1", "0:2", "0:3", "0:4", "0:5", "0:6", "0:7"});
  ASSERT_EQ(transport->sent.size(), 1u);
  EXPECT_THAT(transport->sent[0].ids, ElementsAre("id-0:1-1", "id-0:2-2"));
  // Queued parts go first: a new call's key waits behind them, and the queue is full.
  auto b = lease({"0:8", "1:9"});
  ASSERT_EQ(transport->sent.size(), 2u);
  EXPECT_EQ(transport->sent[1].shard, 1u) << "another shard's bulkhead is its own";
  transport->grant_oldest();  // a's first two: the next two queued keys go
  ASSERT_EQ(transport->sent.size(), 2u);
  EXPECT_EQ(transport->sent[0].shard, 1u);
  EXPECT_THAT(transport->sent[1].ids, ElementsAre("id-0:3-3", "id-0:4-4"));
  transport->grant_oldest();  // b's shard 1 part
  ASSERT_TRUE(b->called);
  EXPECT_FALSE(b->grants[0].ok);
  EXPECT_EQ(b->grants[0].error, "fake://shard0: bulkhead full");
  EXPECT_TRUE(b->grants[1].ok);
  transport->grant_oldest();  // 3 and 4: the last queued key goes
  ASSERT_EQ(transport->sent.size(), 1u);
  EXPECT_THAT(transport->sent[0].ids, ElementsAre("id-0:5-5"));
  EXPECT_FALSE(a->called);
  transport->grant_oldest();
  ASSERT_TRUE(a->called);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(a->grants[static_cast<std::size_t>(i)].ok) << i;
  for (int i = 5; i < 7; ++i) {
    EXPECT_EQ(a->grants[static_cast<std::size_t>(i)].error, "fake://shard0: bulkhead full");
  }
  const auto c = store->counters();
  EXPECT_EQ(c.bulkhead_rejected, 3u);
  EXPECT_EQ(c.most_in_flight, 2u);
}

TEST_F(GuardedStoreTest, AFailedCallIsSentOnceMoreWithTheSameRequestIdsAfterTheDelay) {
  make();
  auto a = lease({"0:a", "0:b"});
  const std::vector<std::string> first = transport->sent[0].ids;
  transport->fail_oldest("server closed the connection");
  EXPECT_FALSE(a->called) << "the keys wait for the retry";
  ASSERT_EQ(timers->pending(), 1u);
  const Nanos delay = *timers->next_in();
  EXPECT_GE(delay, 150ms);
  EXPECT_LE(delay, 180ms) << "jitter 0.2";
  clock->advance(delay - 1ns);
  timers->run_due();
  EXPECT_TRUE(transport->sent.empty());
  clock->advance(1ns);
  timers->run_due();
  ASSERT_EQ(transport->sent.size(), 1u);
  EXPECT_EQ(transport->sent[0].ids, first);
  transport->grant_oldest(4);
  ASSERT_TRUE(a->called);
  EXPECT_TRUE(a->grants[0].ok);
  EXPECT_EQ(a->grants[1].granted, 4u);
  const auto c = store->counters();
  EXPECT_EQ(c.retries, 1u);
  EXPECT_EQ(c.calls, 4u) << "both attempts";
  EXPECT_EQ(c.batches, 2u);
  EXPECT_EQ(c.failures, 0u);
  EXPECT_EQ(store->breaker_counts(0).opened, 0u);
}

TEST_F(GuardedStoreTest, ACallThatFailsAgainFailsItsKeysAndIsNotSentAThirdTime) {
  make();
  auto a = lease({"0:a"});
  transport->fail_oldest();
  clock->advance(1s);
  timers->run_due();
  transport->fail_oldest("command timed out");
  ASSERT_TRUE(a->called);
  EXPECT_FALSE(a->grants[0].ok);
  EXPECT_EQ(a->grants[0].error, "fake://shard0: command timed out");
  EXPECT_EQ(timers->pending(), 0u);
  EXPECT_TRUE(transport->sent.empty());
  EXPECT_EQ(store->counters().failures, 1u);
  EXPECT_EQ(store->counters().retries, 1u);
}

TEST_F(GuardedStoreTest, AnUnsentCallIsNotRetried) {
  make();
  auto a = lease({"0:a"});
  transport->fail_oldest("unavailable (reconnecting after: connection refused)", true);
  ASSERT_TRUE(a->called) << "answered at once";
  EXPECT_FALSE(a->grants[0].ok);
  EXPECT_THAT(a->grants[0].error, HasSubstr("unavailable"));
  EXPECT_EQ(timers->pending(), 0u);
  EXPECT_EQ(store->counters().retries, 0u);
}

TEST_F(GuardedStoreTest, ARetryKeepsItsBulkheadSlotsAndMeetsAnOpenBreaker) {
  bulkhead.max_in_flight = 1;
  make();
  auto a = lease({"0:a"});
  auto b = lease({"0:b"});   // queued behind a
  transport->fail_oldest();  // a will be retried: b still waits
  EXPECT_TRUE(transport->sent.empty());
  // Another shard is not held up by it.
  auto c = lease({"1:c"});
  transport->grant_oldest();
  EXPECT_EQ(store->breaker_state(0), BreakerState::kClosed);
  clock->advance(1s);
  timers->run_due();  // a goes again
  ASSERT_EQ(transport->sent.size(), 1u);
  transport->fail_oldest();  // a's retry fails: a answered, its slot freed, b goes
  ASSERT_TRUE(a->called);
  ASSERT_EQ(transport->sent.size(), 1u);
  EXPECT_THAT(transport->sent[0].ids, ElementsAre("id-0:b-2"));
  transport->fail_oldest("down", true);  // the third failure of three calls: open
  ASSERT_TRUE(b->called);
  EXPECT_EQ(store->breaker_state(0), BreakerState::kOpen);
}

TEST_F(GuardedStoreTest, RetryDelaysGrowExponentiallyWithJitterAndFollowTheSeed) {
  RetryOptions r;
  r.max_retries = 3;
  r.delay = 100ms;
  r.jitter = 0.5;
  breaker.minimum_throughput = 100;  // four failed attempts must not open it
  make(2, r);
  auto a = lease({"0:a"});
  std::vector<Nanos> delays;
  for (int i = 0; i < 3; ++i) {
    transport->fail_oldest();
    delays.push_back(*timers->next_in());
    clock->advance(delays.back());
    timers->run_due();
  }
  transport->fail_oldest();
  ASSERT_TRUE(a->called);
  for (int i = 0; i < 3; ++i) {
    const Nanos base = Nanos(100ms) * (1 << i);
    EXPECT_GE(delays[static_cast<std::size_t>(i)], base) << i;
    EXPECT_LE(delays[static_cast<std::size_t>(i)], base * 3 / 2) << i;
  }
  // The same seed gives the same delays (the simulator's runs repeat byte for byte).
  auto clock2 = std::make_shared<ManualClock>();
  auto timers2 = std::make_shared<ManualTimers>(clock2);
  auto t2 = std::make_shared<FakeTransport>(2);
  r.seed = 7;
  GuardedStore again(t2, breaker, bulkhead, r, clock2, timers2);
  std::vector<LeaseRequest> batch{request("0:a")};
  again.lease(std::move(batch), [](std::vector<LeaseGrant>) {});
  for (int i = 0; i < 3; ++i) {
    t2->fail_oldest();
    EXPECT_EQ(*timers2->next_in(), delays[static_cast<std::size_t>(i)]) << i;
    clock2->advance(*timers2->next_in());
    timers2->run_due();
  }
  t2->fail_oldest();
}

TEST_F(GuardedStoreTest, GiveBacksGoStraightToTheirShards) {
  make(3);
  for (int i = 0; i < 3; ++i) failing_call();
  ASSERT_EQ(store->breaker_state(0), BreakerState::kOpen);
  auto give = [&](const std::string& key, std::uint64_t tokens) {
    GiveBack g;
    g.key = key;
    g.policy = policy;
    g.tokens = tokens;
    return g;
  };
  std::vector<GiveBack> batch{give("0:a", 3), give("2:b", 4), give("0:c", 5), give("1:d", 0)};
  batch.push_back(give("1:e", 6));
  batch.back().policy = nullptr;
  store->give_back(std::move(batch));
  ASSERT_EQ(transport->given_back.size(), 2u) << "nothing to give back on shard 1";
  EXPECT_EQ(transport->given_back[0].first, 0u) << "even with its breaker open: best effort";
  ASSERT_EQ(transport->given_back[0].second.size(), 2u);
  EXPECT_EQ(transport->given_back[0].second[1].key, "0:c");
  EXPECT_EQ(transport->given_back[1].first, 2u);
  EXPECT_EQ(transport->given_back[1].second[0].tokens, 4u);
}

TEST_F(GuardedStoreTest, ACallbackAfterTheStoreIsGoneDoesNothing) {
  make();
  auto a = lease({"0:a"});
  store.reset();
  transport->grant_oldest();
  EXPECT_FALSE(a->called);
}

}  // namespace
}  // namespace tollgate::resilience
