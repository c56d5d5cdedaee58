// Lease logic of the Limiter against a mocked QuotaStore and a simulated clock:
// prefetch, single flight, expiry, eviction, cold keys, penalty box, waiters, permits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faults/faulty_store.h"
#include "limiter/round_trips.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using ::testing::_;
using ::testing::Invoke;
using ::testing::NiceMock;
using namespace std::chrono_literals;

class MockStore : public QuotaStore {
 public:
  MOCK_METHOD(void, lease, (std::vector<LeaseRequest> batch, LeaseCallback done), (override));
  MOCK_METHOD(void, give_back, (std::vector<GiveBack> batch), (override));
  MOCK_METHOD(std::size_t, partition_of, (const LeaseRequest& request), (const, override));
};

// Records every lease call and lets the test answer it later (or never).
struct Pending {
  std::vector<LeaseRequest> batch;
  QuotaStore::LeaseCallback done;
};

Config bucket_config(double rate = 1000, double burst = 1000) {
  Config c;
  Policy p;
  p.name = "tenants";
  p.match = "tenant:*";
  p.kind = PolicyKind::kTokenBucket;
  p.rate = rate;
  p.burst = burst;
  c.policies.push_back(p);
  c.leases.ttl = 2s;
  c.leases.horizon = 200ms;
  c.leases.max_fraction = 0.5;
  c.leases.refresh = 0ms;  // every refill goes with its tick (the hold: lease_sizing_test)
  c.instance_id = "test-instance";
  return c;
}

class LeaseTest : public ::testing::Test {
 protected:
  // `fault` (tools/faults) sits between the Limiter and the mocked store.
  void make(Config c, faults::Fault fault = faults::Fault::kNone) {
    store = std::make_shared<NiceMock<MockStore>>();
    ON_CALL(*store, lease(_, _))
        .WillByDefault(Invoke([this](std::vector<LeaseRequest> b, QuotaStore::LeaseCallback d) {
          pending.push_back({std::move(b), std::move(d)});
        }));
    ON_CALL(*store, give_back(_)).WillByDefault(Invoke([this](std::vector<GiveBack> b) {
      for (auto& g : b) given_back.push_back(g);
    }));
    clock = std::make_shared<ManualClock>();
    limiter.emplace(std::move(c), Limiter::Options{.store = faults::with_fault(store, fault),
                                                   .clock = clock,
                                                   .background_thread = false,
                                                   .observer = {}});
  }

  // Answers the oldest pending lease call, every key with `granted` tokens.
  void answer(std::uint64_t granted, Nanos ttl = 2s, Nanos wait = 0ns) {
    ASSERT_FALSE(pending.empty());
    Pending p = std::move(pending.front());
    pending.erase(pending.begin());
    std::vector<LeaseGrant> grants;
    for (auto& r : p.batch) {
      LeaseGrant g;
      g.granted = granted;
      g.now = clock->now();
      g.expires_at = clock->now() + ttl;
      g.remaining = 1'000'000;  // plenty: no scarcity back-off
      g.wait_until = clock->now() + wait;
      (void)r;
      grants.push_back(g);
    }
    p.done(std::move(grants));
    limiter->poll();
  }

  // Answers the oldest pending lease call with a failure for every key.
  void fail_lease(const std::string& why = "shard unavailable") {
    ASSERT_FALSE(pending.empty());
    Pending p = std::move(pending.front());
    pending.erase(pending.begin());
    std::vector<LeaseGrant> grants(p.batch.size());
    for (auto& g : grants) {
      g.ok = false;
      g.error = why;
    }
    p.done(std::move(grants));
    limiter->poll();
  }

  // Admits `key` until denied; returns how many were admitted and the denial.
  std::pair<int, Decision> drain(const std::string& key, Reason admitted_as) {
    int n = 0;
    for (;;) {
      Decision d = limiter->try_acquire(key);
      if (!d.allowed) return {n, d};
      EXPECT_EQ(d.reason, admitted_as);
      ++n;
    }
  }

  // Answers `n` + 1 refills of tenant:a (see tiny_fallback_config: every decision needs
  // one), each after `rtt`: its shard's record of `n` round trips (core/round_trips.h; the
  // first call, sent before the shard's first answer, is the connection's and not recorded),
  // the others after core::RoundTrips::kSettle, in which nothing is judged.
  void warm(int n, Nanos rtt) {
    for (int i = 0; i < n + 1; ++i) {
      (void)limiter->try_acquire("tenant:a");
      limiter->poll();
      ASSERT_EQ(pending.size(), 1u);
      clock->advance(rtt);
      answer(1);
      if (i == 0) clock->advance(core::RoundTrips::kSettle);  // no call in flight
      (void)limiter->try_acquire("tenant:a");
      clock->advance(1ms);
      limiter->poll();
    }
  }

  // A waiter on tenant:a's next refill: still waiting `after` past the call, served by the
  // fallback 1 ms later (what it is served with is returned).
  Decision overdue_waiter(Nanos after) {
    auto waited = std::make_shared<std::optional<Decision>>();
    limiter->acquire_async("tenant:a", 1, 5s, [waited](const Decision& d) { *waited = d; });
    limiter->poll();
    EXPECT_EQ(pending.size(), 1u);
    clock->advance(after);
    limiter->poll();
    EXPECT_FALSE(waited->has_value()) << "not overdue yet at the overdue time itself";
    EXPECT_EQ(limiter->try_acquire("tenant:a").reason, Reason::kLeasePending);
    clock->advance(1ms);
    limiter->poll();
    EXPECT_TRUE(waited->has_value()) << "the waiter still waits for an overdue refill";
    return waited->value_or(Decision{});
  }

  std::uint64_t given_back_total() const {
    std::uint64_t n = 0;
    for (auto& g : given_back) n += g.tokens;
    return n;
  }

  std::shared_ptr<NiceMock<MockStore>> store;
  std::shared_ptr<ManualClock> clock;
  std::vector<Pending> pending;
  std::vector<GiveBack> given_back;
  std::optional<Limiter> limiter;  // last: destroyed first, while the above still exist
};

TEST_F(LeaseTest, ColdKeyIsDeniedUntilTheFirstLeaseArrives) {
  make(bucket_config());
  Decision d = limiter->try_acquire("tenant:a");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, Reason::kColdKey);
  EXPECT_GT(d.retry_after.count(), 0);
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  ASSERT_EQ(pending[0].batch.size(), 1u);
  EXPECT_EQ(pending[0].batch[0].key, "tenant:a");
  EXPECT_GE(pending[0].batch[0].want, 1u);
  EXPECT_EQ(pending[0].batch[0].holder, "test-instance");
  answer(100);
  d = limiter->try_acquire("tenant:a");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, Reason::kOk);
  EXPECT_EQ(d.remaining, 99);
}

// An instance restarted under the same configured instance id (a container restarted in its
// pod) must not send its predecessor's request ids again: a store would answer them from
// the predecessor's records, granting tokens the bucket paid for once, to both processes.
TEST_F(LeaseTest, ARestartedInstanceDoesNotReuseItsPredecessorsRequestIds) {
  std::vector<std::string> first_ids;
  for (int process = 0; process < 2; ++process) {
    pending.clear();
    make(bucket_config());
    (void)limiter->try_acquire("tenant:a");
    limiter->poll();
    ASSERT_EQ(pending.size(), 1u);
    const std::string id = pending[0].batch[0].request_id;
    EXPECT_EQ(id.rfind("test-instance:", 0), 0u) << id;
    first_ids.push_back(id);
    answer(10);
    limiter.reset();
  }
  EXPECT_NE(first_ids[0], first_ids[1]) << "the restarted instance sent its first id again";
}

TEST_F(LeaseTest, OptimisticColdKeyAdmitsTheAllowanceAndTheFirstLeasePaysItBack) {
  Config c = bucket_config();
  c.cold_keys.mode = ColdKeyMode::kOptimistic;
  c.cold_keys.allowance = 5;
  make(c);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter->try_acquire("tenant:a").allowed) << i;
  EXPECT_EQ(limiter->try_acquire("tenant:a").reason, Reason::kColdKey);
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  // The request covers the debt on top of what is needed now.
  EXPECT_GE(pending[0].batch[0].min, 6u);
  answer(20);
  // 20 granted, 5 of them repay the allowance already spent.
  Decision d = limiter->try_acquire("tenant:a");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 14);
}

TEST_F(LeaseTest, OneTicksWishesTravelTogetherInBatchesOfAtMost512) {
  make(bucket_config());
  for (int i = 0; i < 1200; ++i) limiter->try_acquire("tenant:" + std::to_string(i));
  limiter->poll();
  ASSERT_EQ(pending.size(), 3u) << "1200 cold keys in one tick: 512 + 512 + 176";
  EXPECT_EQ(pending[0].batch.size(), 512u);
  EXPECT_EQ(pending[1].batch.size(), 512u);
  EXPECT_EQ(pending[2].batch.size(), 176u);
}

// Held refills of several shards wait for their hold until one shard's call is full: 512
// keys of all shards together used to send every shard a call, several times per refresh
// period at the reference fleet (1,000 keys an instance over 7 shards).
TEST_F(LeaseTest, HeldRefillsOfSeveralShardsWaitUntilAShardsCallIsFull) {
  Config c = bucket_config(100, 100);
  c.leases.refresh = 1s;
  make(std::move(c));
  ON_CALL(*store, partition_of(_)).WillByDefault(Invoke([](const LeaseRequest& r) {
    return static_cast<std::size_t>(r.key.back() - '0') % 2;
  }));
  limiter->try_acquire("tenant:0");
  limiter->try_acquire("tenant:1");
  limiter->poll();
  ASSERT_EQ(pending.size(), 2u) << "each partition's first call goes at once";
  answer(1);
  answer(1);
  clock->advance(10ms);
  for (int i = 2; i < 702; ++i) limiter->try_acquire("tenant:" + std::to_string(i));
  limiter->poll();
  EXPECT_TRUE(pending.empty()) << "700 held keys, 350 a partition: no call is full";
  clock->advance(240ms);
  limiter->poll();
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].batch.size(), 350u);
  EXPECT_EQ(pending[1].batch.size(), 350u);
}

TEST_F(LeaseTest, PrefetchAsksBeforeTheBalanceRunsOut) {
  make(bucket_config(100'000, 100'000));
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(200);
  int denied = 0;
  std::int64_t balance_when_asked = -1;
  // Spend 10 tokens per simulated millisecond, polling like the SDK thread does.
  for (int ms = 0; ms < 400; ++ms) {
    for (int i = 0; i < 10; ++i) {
      if (!limiter->try_acquire("tenant:a").allowed) ++denied;
    }
    clock->advance(1ms);
    limiter->poll();
    if (!pending.empty()) {
      if (ms > 100 && balance_when_asked < 0) {
        balance_when_asked = limiter->try_acquire("tenant:a").remaining + 1;
      }
      answer(200);
    }
  }
  EXPECT_GT(balance_when_asked, 0) << "refill asked only once the lease was empty";
  EXPECT_EQ(denied, 0);
}

TEST_F(LeaseTest, RefillsThatCanWaitGoTogetherOncePerRefreshPeriod) {
  Config c = bucket_config(100, 100);
  c.leases.refresh = 1s;
  make(std::move(c));
  limiter->try_acquire("tenant:a");
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u) << "the partition's first call goes at once";
  answer(1);
  // Two keys come cold within the hold (a quarter of the refresh period): one call.
  clock->advance(10ms);
  limiter->try_acquire("tenant:b");
  limiter->try_acquire("tenant:c");
  limiter->poll();
  EXPECT_TRUE(pending.empty());
  clock->advance(240ms);
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].batch.size(), 2u);
  answer(1);
  // A key somebody waits for goes at once, and takes what waits along.
  limiter->try_acquire("tenant:d");
  limiter->poll();
  EXPECT_TRUE(pending.empty());
  limiter->acquire_async("tenant:e", 1, 1s, [](Decision) {});
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].batch.size(), 2u);
}

TEST_F(LeaseTest, OnlyOneRefillPerKeyIsInFlight) {
  Config c = bucket_config();
  c.policies[0].fair_instances = false;  // the store's time alone (shared: the next test)
  make(c);
  for (int i = 0; i < 50; ++i) {
    limiter->try_acquire("tenant:a");
    limiter->poll();
  }
  EXPECT_EQ(pending.size(), 1u);
  answer(0, 2s, 10ms);  // nothing there; wait 10 ms
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(limiter->try_acquire("tenant:a").reason, Reason::kOverLimit);
    limiter->poll();
  }
  EXPECT_TRUE(pending.empty()) << "asked again before the store's wait_until";
  clock->advance(11ms);
  limiter->poll();
  EXPECT_EQ(pending.size(), 1u);
}

// A key never granted, on a bucket its instances share, that the store had nothing for
// while its requests were denied: other instances emptied the bucket, and it asks again
// after its turn (the bucket's fill time, 1 s here, at most pacing_most(): a quarter of the
// 2 s TTL), not at the store's time for one token. With a caller waiting, the store's time.
TEST_F(LeaseTest, ANeverGrantedKeyThatFindsItsSharedBucketEmptyAsksAgainAfterItsTurn) {
  make(bucket_config());
  for (int i = 0; i < 50; ++i) {
    limiter->try_acquire("tenant:a");
    limiter->poll();
  }
  ASSERT_EQ(pending.size(), 1u);
  answer(0, 2s, 10ms);
  clock->advance(11ms);
  limiter->poll();
  EXPECT_TRUE(pending.empty()) << "asked again at the store's time, for one token";
  clock->advance(500ms - 11ms);
  limiter->poll();
  EXPECT_EQ(pending.size(), 1u) << "its turn came";
}

TEST_F(LeaseTest, ANeverGrantedKeyWithACallerWaitingAsksAgainAtTheStoresTime) {
  make(bucket_config());
  limiter->acquire_async("tenant:a", 1, 5s, [](const Decision&) {});
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  limiter->try_acquire("tenant:a");  // denied meanwhile as well
  answer(0, 2s, 10ms);
  clock->advance(11ms);
  limiter->poll();
  EXPECT_EQ(pending.size(), 1u) << "the waiting caller's key waited for a turn";
}

TEST_F(LeaseTest, OverLimitCarriesTheStoresRetryAfter) {
  make(bucket_config());
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(0, 2s, 500ms);
  Decision d = limiter->try_acquire("tenant:a");
  EXPECT_EQ(d.reason, Reason::kOverLimit);
  EXPECT_GE(d.retry_after, 499ms);
  EXPECT_LE(d.retry_after, 500ms);
}

TEST_F(LeaseTest, PartGrantUnderScarcityDeniesOverLimitUntilTheRestCanRefill) {
  make(bucket_config(100, 100));  // 100 tokens/s
  limiter->try_acquire("tenant:a");
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  const std::uint64_t want = pending[0].batch[0].want;
  ASSERT_GT(want, 2u);
  LeaseGrant g;
  g.granted = 2;  // the global bucket had only 2
  g.now = clock->now();
  g.expires_at = clock->now() + 2s;
  g.remaining = 0;
  pending[0].done({g});
  pending.clear();
  limiter->poll();
  EXPECT_TRUE(limiter->try_acquire("tenant:a").allowed);
  EXPECT_TRUE(limiter->try_acquire("tenant:a").allowed);
  Decision d = limiter->try_acquire("tenant:a");
  EXPECT_EQ(d.reason, Reason::kOverLimit);
  // The rest (want - 2 tokens at 100/s) cannot have refilled sooner.
  EXPECT_GE(d.retry_after, std::chrono::milliseconds((want - 2) * 10) - 1ms);
  limiter->poll();
  EXPECT_TRUE(pending.empty()) << "asked the scarce store again at once";
}

// Served in full, but the bucket left short of another lease while demand went unmet (here:
// denials while the ask was on its way): the key asks again only after the bucket's fill
// time, at most the pacing of a partly served key (refresh 0: a quarter of the TTL, 500 ms).
// Asking at once took what the bucket had left before the other instances' turns
// (tests/redis/fairness_test.cpp, EvenInstances). Without unmet demand it asks at once.
TEST_F(LeaseTest, AFullGrantThatLeavesTheBucketShortWaitsItsFillTimeWhenDemandWentUnmet) {
  for (const bool unmet : {true, false}) {
    SCOPED_TRACE(unmet ? "denied while in flight" : "no denial while in flight");
    pending.clear();
    make(bucket_config(100, 100));  // fill time 1 s, clamped to 500 ms
    limiter->try_acquire("tenant:a");
    limiter->poll();
    ASSERT_EQ(pending.size(), 1u);
    if (unmet) {
      for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter->try_acquire("tenant:a").allowed);
    }
    const std::uint64_t want = pending[0].batch[0].want;
    LeaseGrant g;
    g.granted = want;  // all of it, and the bucket is left with less than another lease
    g.now = clock->now();
    g.expires_at = clock->now() + 2s;
    g.remaining = want - 1;
    pending[0].done({g});
    pending.clear();
    limiter->poll();
    for (std::uint64_t i = 0; i < want; ++i) ASSERT_TRUE(limiter->try_acquire("tenant:a").allowed);
    const Decision d = limiter->try_acquire("tenant:a");
    EXPECT_FALSE(d.allowed);
    limiter->poll();
    if (!unmet) {
      EXPECT_FALSE(pending.empty()) << "a key served in full with no unmet demand asks at once";
      continue;
    }
    EXPECT_EQ(d.reason, Reason::kLeasePending) << "which level is short is not known";
    EXPECT_TRUE(pending.empty()) << "asked the short bucket again at once";
    clock->advance(499ms);
    limiter->poll();
    EXPECT_TRUE(pending.empty()) << "asked before the bucket's fill time (at most 500 ms)";
    clock->advance(2ms);
    limiter->poll();
    EXPECT_EQ(pending.size(), 1u);
  }
}

// A cold key's first ask joins its shard's next call within a quarter of the hold; asked
// again after the store had nothing for it, the key is paced by scarcity and waits for the
// whole hold like any other (at the reference fleet the long tail's keys were asked as cold
// ones again and again, each sending its shard's call early: docs/architecture.md).
TEST_F(LeaseTest, AKeyTheStoreHadNothingForWaitsForItsShardsNextCallNotTheColdHold) {
  Config c = bucket_config();
  c.leases.ttl = 8s;
  c.leases.refresh = 1s;  // the hold: min(refresh, ttl / 8); a cold key's: a quarter of it
  make(std::move(c));
  EXPECT_FALSE(limiter->try_acquire("tenant:a").allowed);
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);  // the shard's first call goes at once
  {
    Pending p = std::move(pending.front());
    pending.clear();
    LeaseGrant g;
    g.now = clock->now();
    g.expires_at = clock->now() + 8s;
    g.remaining = 0;
    g.wait_until = clock->now() + 10ms;
    p.done({g});
    limiter->poll();
  }
  clock->advance(20ms);
  EXPECT_FALSE(limiter->try_acquire("tenant:a").allowed);
  limiter->poll();
  clock->advance(300ms);  // past the cold hold (250 ms after the shard's call)
  limiter->poll();
  EXPECT_TRUE(pending.empty()) << "asked again as a cold key, within the cold hold";
  clock->advance(700ms);  // the shard's next call: 1 s after its last
  limiter->poll();
  EXPECT_EQ(pending.size(), 1u);
}

TEST_F(LeaseTest, ExpiredLeaseTokensAreTakenBackAndGivenBack) {
  make(bucket_config());
  limiter->try_acquire("tenant:a");
  limiter->poll();
  const Nanos store_expiry = clock->now() + 2s;
  answer(100);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(limiter->try_acquire("tenant:a").allowed);
  clock->advance(2s - 21ms);
  limiter->poll();
  EXPECT_TRUE(given_back.empty()) << "taken back too early";
  clock->advance(2ms);
  limiter->poll();
  ASSERT_EQ(given_back.size(), 1u);
  EXPECT_EQ(given_back[0].tokens, 90u);
  EXPECT_LE(given_back[0].expires_at, store_expiry);
  EXPECT_EQ(given_back[0].key, "tenant:a");
  Decision d = limiter->try_acquire("tenant:a");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(limiter->stats().tokens_given_back, 90u);
}

// The check above against a Limiter that is told every expiry an hour late (the
// spend-expired fault): it keeps spending the lease past its end, and the check sees it.
TEST_F(LeaseTest, ExpiredLeaseCheckFailsUnderSpendExpired) {
  make(bucket_config(), faults::Fault::kSpendExpired);
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(100);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(limiter->try_acquire("tenant:a").allowed);
  clock->advance(2s + 1ms);
  limiter->poll();
  EXPECT_TRUE(given_back.empty());
  EXPECT_TRUE(limiter->try_acquire("tenant:a").allowed) << "the fault did not take effect";
}

TEST_F(LeaseTest, OlderLeaseExpiresWithoutTakingTheNewerOnesTokens) {
  make(bucket_config());
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(10);  // lease 1: 10 tokens, expires at +2 s
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(limiter->try_acquire("tenant:a").allowed);
  clock->advance(1s);
  limiter->poll();
  if (pending.empty()) {
    limiter->try_acquire("tenant:a", 5);  // denied, forces a refill
    limiter->poll();
  }
  ASSERT_EQ(pending.size(), 1u);
  answer(50);  // lease 2: 50 tokens, expires at +3 s
  clock->advance(1s);
  limiter->poll();  // lease 1 expires: at most its 2 unspent tokens go back
  EXPECT_LE(given_back_total(), 2u);
  std::int64_t left = limiter->try_acquire("tenant:a").remaining + 1;
  EXPECT_GE(left, 50);
}

TEST_F(LeaseTest, IdleKeysAreEvictedAndTheirTokensGivenBack) {
  Config c = bucket_config();
  c.idle_timeout = 1s;
  make(c);
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(100, 60s);
  ASSERT_TRUE(limiter->try_acquire("tenant:a").allowed);
  EXPECT_EQ(limiter->stats().keys_tracked, 1u);
  for (int i = 0; i < 40; ++i) {
    clock->advance(100ms);
    limiter->poll();
  }
  Stats st = limiter->stats();
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(st.keys_tracked, 0u);
  EXPECT_EQ(st.keys_evicted, 1u);
  EXPECT_EQ(given_back_total(), 99u);
}

TEST_F(LeaseTest, BusyKeysAreNotEvicted) {
  Config c = bucket_config();
  c.idle_timeout = 1s;
  make(c);
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(1000, 60s);
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(limiter->try_acquire("tenant:a").allowed);
    clock->advance(100ms);
    limiter->poll();
  }
  EXPECT_EQ(limiter->stats().keys_tracked, 1u);
}

TEST_F(LeaseTest, FullKeyTableDeniesNewKeysAndEvictsIdleOnes) {
  Config c = bucket_config();
  c.max_keys = 2;
  make(c);
  limiter->try_acquire("tenant:a");
  limiter->try_acquire("tenant:b");
  limiter->poll();
  answer(10);
  // Full: the new key is refused, and the refusal asks the scheduler to make room.
  EXPECT_EQ(limiter->try_acquire("tenant:c").reason, Reason::kKeyTableFull);
  limiter->poll();  // second chance (CLOCK): a and b were used since the last look
  EXPECT_EQ(limiter->try_acquire("tenant:c").reason, Reason::kKeyTableFull);
  limiter->poll();  // untouched since: evicted, their tokens given back
  EXPECT_NE(limiter->try_acquire("tenant:c").reason, Reason::kKeyTableFull);
  Stats st = limiter->stats();
  EXPECT_LE(st.keys_tracked, 2u);
  EXPECT_GE(st.keys_evicted, 1u);
  EXPECT_GE(given_back_total(), 9u);
}

TEST_F(LeaseTest, PenaltyBoxRefusesWithoutAskingTheStore) {
  Config c = bucket_config();
  c.policies[0].penalty_box = PenaltyBox{3, 1s, 5s};
  make(c);
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(0, 2s, 10s);  // exhausted for a long time
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(limiter->try_acquire("tenant:a").reason, Reason::kOverLimit);
  limiter->poll();
  Decision d = limiter->try_acquire("tenant:a");
  EXPECT_EQ(d.reason, Reason::kPenaltyBox);
  EXPECT_GT(d.retry_after, 4s);
  clock->advance(4s);
  limiter->poll();
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(limiter->try_acquire("tenant:a").reason, Reason::kPenaltyBox);
  clock->advance(1001ms);
  limiter->poll();
  EXPECT_NE(limiter->try_acquire("tenant:a").reason, Reason::kPenaltyBox);
}

TEST_F(LeaseTest, WaitersAreServedFirstInFirstOut) {
  make(bucket_config());
  std::vector<std::string> order;
  limiter->acquire_async("tenant:a", 5, 10s, [&](const Decision& d) {
    order.push_back(d.allowed ? "five" : "five-denied");
  });
  limiter->acquire_async("tenant:a", 1, 10s, [&](const Decision& d) {
    order.push_back(d.allowed ? "one" : "one-denied");
  });
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_GE(pending[0].batch[0].min, 5u);
  answer(3);  // not enough for the head: the one-token waiter must not jump the queue
  EXPECT_TRUE(order.empty());
  EXPECT_FALSE(limiter->try_acquire("tenant:a").allowed) << "try_acquire barged past waiters";
  limiter->poll();
  if (pending.empty()) {
    clock->advance(10ms);
    limiter->poll();
  }
  ASSERT_FALSE(pending.empty());
  answer(10);
  EXPECT_EQ(order, (std::vector<std::string>{"five", "one"}));
}

TEST_F(LeaseTest, WaitsTimeOutOnTheInjectedClock) {
  Config c = bucket_config();
  c.leases.overdue_floor = 0ms;  // the unanswered refill never hands the waiter to the fallback
  make(c);
  std::optional<Decision> result;
  WaitId id = limiter->acquire_async("tenant:a", 1, 100ms, [&](const Decision& d) { result = d; });
  EXPECT_NE(id, 0u);
  limiter->poll();
  clock->advance(99ms);
  limiter->poll();
  EXPECT_FALSE(result.has_value());
  clock->advance(2ms);
  limiter->poll();
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->reason, Reason::kTimeout);
  EXPECT_FALSE(limiter->cancel(id));
}

TEST_F(LeaseTest, CancelCompletesTheWaitOnce) {
  make(bucket_config());
  int calls = 0;
  Reason reason = Reason::kOk;
  WaitId id = limiter->acquire_async("tenant:a", 1, 10s, [&](const Decision& d) {
    ++calls;
    reason = d.reason;
  });
  EXPECT_TRUE(limiter->cancel(id));
  EXPECT_FALSE(limiter->cancel(id));
  limiter->poll();
  if (!pending.empty()) answer(10);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(reason, Reason::kCancelled);
}

TEST_F(LeaseTest, WaitQueueIsBounded) {
  Config c = bucket_config();
  c.max_waiters_per_key = 2;
  make(c);
  std::vector<Reason> reasons;
  for (int i = 0; i < 3; ++i) {
    limiter->acquire_async("tenant:a", 1, 10s,
                           [&](const Decision& d) { reasons.push_back(d.reason); });
  }
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_EQ(reasons[0], Reason::kQueueFull);
  limiter.reset();  // the two queued waits are completed, not lost
  ASSERT_EQ(reasons.size(), 3u);
  EXPECT_EQ(reasons[1], Reason::kShutdown);
  EXPECT_EQ(reasons[2], Reason::kShutdown);
}

TEST_F(LeaseTest, ImmediateDecisionsCompleteInline) {
  make(bucket_config());
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(10);
  std::optional<Decision> result;
  EXPECT_EQ(limiter->acquire_async("tenant:a", 2, 1s, [&](const Decision& d) { result = d; }), 0u);
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->allowed);
}

Config permit_config(std::uint64_t limit) {
  Config c;
  Policy p;
  p.name = "gpu";
  p.match = "gpu:*";
  p.kind = PolicyKind::kConcurrency;
  p.limit = limit;
  c.policies.push_back(p);
  c.leases.max_fraction = 0.5;
  c.instance_id = "test-instance";
  return c;
}

TEST_F(LeaseTest, PermitsAreReservedFromTheStoreAndReturnOnRelease) {
  make(permit_config(4));
  EXPECT_FALSE(limiter->acquire_permit("gpu:t1").decision().allowed);
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_GE(pending[0].batch[0].want, 1u);
  EXPECT_LE(pending[0].batch[0].want, 4u);
  answer(2);  // a reservation of 2 permits
  {
    Permit a = limiter->acquire_permit("gpu:t1");
    Permit b = limiter->acquire_permit("gpu:t1");
    EXPECT_TRUE(a);
    EXPECT_TRUE(b);
    EXPECT_FALSE(limiter->acquire_permit("gpu:t1"));
    Permit moved = std::move(a);
    EXPECT_TRUE(moved);
  }
  Permit again = limiter->acquire_permit("gpu:t1", 2);
  EXPECT_TRUE(again) << "released permits did not come back";
}

TEST_F(LeaseTest, PermitsAndTokensDoNotMix) {
  Config c = permit_config(4);
  c.policies.push_back(bucket_config().policies[0]);
  make(c);
  EXPECT_EQ(limiter->try_acquire("gpu:t1").reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->acquire_permit("tenant:a").decision().reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->stats().keys_tracked, 0u);
}

TEST_F(LeaseTest, BadInputIsRejectedWithoutTouchingState) {
  make(bucket_config(100, 50));
  EXPECT_EQ(limiter->try_acquire("").reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->try_acquire("tenant:a", 0).reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->try_acquire("tenant:a", 51).reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->try_acquire("tenant:" + std::string(10 * 1024, 'x')).reason,
            Reason::kInvalidArgument);
  EXPECT_EQ(limiter->try_acquire("unknown:a").reason, Reason::kNoPolicy);
  limiter->poll();
  EXPECT_TRUE(pending.empty());
  Stats st = limiter->stats();
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(st.keys_tracked, 0u);
  EXPECT_EQ(st.denied[static_cast<int>(Reason::kInvalidArgument)], 4u);
  EXPECT_EQ(st.denied[static_cast<int>(Reason::kNoPolicy)], 1u);
  EXPECT_EQ(st.leases_asked, 0u);
}

TEST_F(LeaseTest, BadCostOnAWarmKeyLeavesItsBalanceAlone) {
  make(bucket_config(100, 50));
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(20);
  const std::int64_t before = limiter->try_acquire("tenant:a").remaining;  // spends 1
  EXPECT_EQ(limiter->try_acquire("tenant:a", 0).reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->try_acquire("tenant:a", 51).reason, Reason::kInvalidArgument);
  EXPECT_FALSE(limiter->acquire_permit("tenant:a", 1)) << "permits on a token bucket";
  EXPECT_EQ(limiter->try_acquire("tenant:a").remaining, before - 1);
}

TEST_F(LeaseTest, ExactPolicyBeatsPattern) {
  Config c = bucket_config(100, 100);
  Policy vip = c.policies[0];
  vip.name = "vip";
  vip.match = "tenant:vip";
  vip.rate = 5000;
  vip.burst = 5000;
  c.policies.push_back(vip);
  make(c);
  limiter->try_acquire("tenant:vip");
  limiter->try_acquire("tenant:other");
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  ASSERT_EQ(pending[0].batch.size(), 2u);
  for (auto& r : pending[0].batch) {
    EXPECT_EQ(r.policy->name, r.key == "tenant:vip" ? "vip" : "tenants");
  }
}

TEST_F(LeaseTest, StatsCountAdmissionsDenialsAndLeases) {
  make(bucket_config());
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(3);
  for (int i = 0; i < 5; ++i) limiter->try_acquire("tenant:a");
  Stats st = limiter->stats();
  EXPECT_EQ(st.admitted, 3u);
  EXPECT_EQ(st.admitted_tokens, 3u);
  EXPECT_EQ(st.denied[static_cast<int>(Reason::kColdKey)], 1u);
  EXPECT_EQ(st.denied_total(), 3u);
  EXPECT_EQ(st.leases_asked, 1u);
  EXPECT_EQ(st.leases_granted, 1u);
  EXPECT_EQ(st.tokens_leased, 3u);
  EXPECT_EQ(st.keys_tracked, 1u);
  EXPECT_GT(st.bytes_used, 0u);
}

TEST_F(LeaseTest, DestructionGivesUnspentTokensBack) {
  make(bucket_config());
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(40);
  limiter->try_acquire("tenant:a");
  limiter.reset();
  EXPECT_EQ(given_back_total(), 39u);
}

// ---------------------------------------------------------------------------------------
// Fallbacks: the shard is unavailable and the key's lease is spent.

Config fallback_config(FallbackMode mode) {
  Config c = bucket_config(100, 100);  // 100 tokens/s, burst 100
  c.policies[0].fallback.mode = mode;
  c.policies[0].fallback.instances = 4;  // local bucket: 25 tokens/s, burst 25
  return c;
}

// One token a second, burst 1 (local fallback: the same): every decision needs a refill.
Config tiny_fallback_config(FallbackMode mode) {
  Config c = bucket_config(1, 1);
  c.policies[0].fallback.mode = mode;
  return c;
}

TEST_F(LeaseTest, LocalFallbackAdmitsTheDeclaredBucketAndSaysSo) {
  make(fallback_config(FallbackMode::kLocal));
  limiter->try_acquire("tenant:a");
  limiter->poll();
  fail_lease();
  // Full at the start of the outage: burst / instances.
  auto [admitted, denial] = drain("tenant:a", Reason::kFallbackLocal);
  EXPECT_EQ(admitted, 25);
  EXPECT_EQ(denial.reason, Reason::kFallbackLocal);
  EXPECT_EQ(denial.retry_after, 40ms) << "one token at 25/s";
  // Then the refill rate: 25/s, so 10 tokens in 400 ms.
  clock->advance(400ms);
  limiter->poll();
  while (!pending.empty()) fail_lease();  // the limiter keeps asking; the shard is still out
  EXPECT_EQ(drain("tenant:a", Reason::kFallbackLocal).first, 10);
  Stats st = limiter->stats();
  EXPECT_EQ(st.fallback_tokens, 35u);
  EXPECT_EQ(st.denied[static_cast<int>(Reason::kFallbackLocal)], 2u);
  EXPECT_GE(st.lease_failures, 2u);
}

// The grant that ends the fallback pays for the fallback tokens spent meanwhile: they were
// admitted beyond any lease, and the key stays inside its lease bound (docs/resilience.md).
TEST_F(LeaseTest, WhenTheShardReturnsLeasesResumeAndPayForTheFallbackTokensSpent) {
  make(fallback_config(FallbackMode::kLocal));
  limiter->try_acquire("tenant:a");
  limiter->poll();
  fail_lease();
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(limiter->try_acquire("tenant:a").reason, Reason::kFallbackLocal);
  // 20 local tokens are left, and 50 ms at 25/s add one before the shard answers again.
  clock->advance(50ms);
  limiter->poll();
  ASSERT_FALSE(pending.empty());
  answer(30);
  while (!pending.empty()) answer(0);
  auto [admitted, denial] = drain("tenant:a", Reason::kOk);
  EXPECT_EQ(admitted, 25) << "the lease less the 5 fallback tokens spent; the 21 left are gone";
  Stats st = limiter->stats();
  EXPECT_EQ(st.fallback_dropped, 21u);
  limiter.reset();  // gives back what is unspent: never fallback tokens
  EXPECT_EQ(given_back_total(), 0u);
}

// It pays at most what it grants: the rest of a long outage's fallback tokens is the
// declared fallback allowance, not a debt that would starve the key after the outage.
TEST_F(LeaseTest, TheGrantThatEndsAFallbackPaysForItAtMostItsOwnSize) {
  make(fallback_config(FallbackMode::kLocal));
  limiter->try_acquire("tenant:a");
  limiter->poll();
  fail_lease();
  EXPECT_EQ(drain("tenant:a", Reason::kFallbackLocal).first, 25);
  clock->advance(50ms);
  limiter->poll();
  ASSERT_FALSE(pending.empty());
  answer(10);  // pays 10 of the 26 spent
  while (!pending.empty()) answer(0);
  EXPECT_FALSE(limiter->try_acquire("tenant:a").allowed) << "nothing of it left to spend";
  clock->advance(1s);  // past the pacing of a grant short of what was asked
  limiter->poll();
  ASSERT_FALSE(pending.empty());
  answer(30);
  while (!pending.empty()) answer(0);
  EXPECT_EQ(drain("tenant:a", Reason::kOk).first, 30) << "the next grant owes nothing";
}

TEST_F(LeaseTest, ALeaseStillHeldIsSpentBeforeTheFallback) {
  make(fallback_config(FallbackMode::kLocal));
  limiter->try_acquire("tenant:a");
  limiter->poll();
  answer(10);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(limiter->try_acquire("tenant:a").reason, Reason::kOk);
  // A cost of 5 does not fit the 2 left: a refill goes out, and fails.
  EXPECT_FALSE(limiter->try_acquire("tenant:a", 5).allowed);
  limiter->poll();
  ASSERT_FALSE(pending.empty());
  while (!pending.empty()) fail_lease();
  EXPECT_EQ(limiter->try_acquire("tenant:a").reason, Reason::kOk);
  EXPECT_EQ(limiter->try_acquire("tenant:a").reason, Reason::kOk);
  // The lease is spent: the next denial hands over to the local bucket.
  EXPECT_FALSE(limiter->try_acquire("tenant:a").allowed);
  limiter->poll();
  EXPECT_EQ(limiter->try_acquire("tenant:a").reason, Reason::kFallbackLocal);
}

TEST_F(LeaseTest, DenyFallbackRefusesWithItsReason) {
  make(fallback_config(FallbackMode::kDeny));
  limiter->try_acquire("tenant:a");
  limiter->poll();
  fail_lease();
  Decision d = limiter->try_acquire("tenant:a");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, Reason::kFallbackDeny);
  EXPECT_GT(d.retry_after.count(), 0);
  EXPECT_EQ(limiter->stats().fallback_tokens, 0u);
}

TEST_F(LeaseTest, AllowFallbackAdmitsWithItsReasonUntilTheShardReturns) {
  make(fallback_config(FallbackMode::kAllow));
  limiter->try_acquire("tenant:a");
  limiter->poll();
  fail_lease();
  for (int i = 0; i < 1000; ++i) {
    Decision d = limiter->try_acquire("tenant:a");
    ASSERT_TRUE(d.allowed);
    ASSERT_EQ(d.reason, Reason::kFallbackAllow);
  }
  clock->advance(100ms);
  limiter->poll();
  ASSERT_FALSE(pending.empty());
  answer(3);
  while (!pending.empty()) answer(0);
  auto [admitted, denial] = drain("tenant:a", Reason::kOk);
  EXPECT_EQ(admitted, 3);
  EXPECT_NE(denial.reason, Reason::kFallbackAllow);
}

// A refill its shard has not answered within 30 ms (a short record's floor, core::RoundTrips;
// the shard's round trips being far lower) sends the key's waiters and new decisions to the
// fallback, instead of letting them wait for the call's timeout; the late answer ends it.
TEST_F(LeaseTest, AnOverdueRefillSendsWaitersAndNewDecisionsToTheFallback) {
  make(tiny_fallback_config(FallbackMode::kLocal));
  warm(8, 1ms);
  const Decision waited = overdue_waiter(30ms);
  EXPECT_TRUE(waited.allowed);
  EXPECT_EQ(waited.reason, Reason::kFallbackLocal);
  EXPECT_EQ(limiter->stats().refills_overdue, 1u);
  // The late answer: leases again, less the token the fallback admitted; the local
  // bucket's tokens are dropped.
  answer(3);
  EXPECT_EQ(drain("tenant:a", Reason::kOk).first, 2);
}

// The overdue time follows the shard: 4 x its p99 round trip once 128 calls were answered
// within 10 s.
TEST_F(LeaseTest, ARefillIsOverdueAtFourTimesItsShardsP99RoundTrip) {
  make(tiny_fallback_config(FallbackMode::kAllow));
  warm(128, 10ms);
  EXPECT_EQ(overdue_waiter(40ms).reason, Reason::kFallbackAllow) << "4 x the p99 (10 ms)";
}

// Before the shard's first answer nothing is judged: that call's time is the connection's
// set-up (connect, script load), and waits for its own answer or timeout.
TEST_F(LeaseTest, ACallSentBeforeTheShardsFirstAnswerIsNotJudged) {
  make(tiny_fallback_config(FallbackMode::kAllow));
  std::optional<Decision> waited;
  limiter->acquire_async("tenant:a", 1, 5s, [&](const Decision& d) { waited = d; });
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  clock->advance(400ms);
  limiter->poll();
  EXPECT_FALSE(waited.has_value());
  EXPECT_EQ(limiter->stats().refills_overdue, 0u);
  limiter.reset();  // completes the wait while `waited` is still in scope (ASan)
}

// A fresh application with an ample quota makes a few lease calls in its life (issue 15:
// 1-6 through the ASP.NET Core sample, whose 32 open requests waited 1 s and got a 429 on a
// frozen shard): its shard is judged from its first answer, at the short record's floor.
TEST_F(LeaseTest, AYoungShardsRefillIsOverdueAtTheShortRecordsFloor) {
  make(tiny_fallback_config(FallbackMode::kAllow));
  warm(2, 1ms);
  EXPECT_EQ(overdue_waiter(30ms).reason, Reason::kFallbackAllow);
  EXPECT_EQ(limiter->stats().refills_overdue, 1u);
}

// One slow call of a loaded machine (~140 ms) in a short record does not make the overdue
// time 4 x 140 ms (it made 32 requests wait 574 ms): a short record is judged by its median.
TEST_F(LeaseTest, OneSlowCallDoesNotSetAShortRecordsOverdueTime) {
  make(tiny_fallback_config(FallbackMode::kAllow));
  warm(16, 2ms);
  warm(0, 140ms);  // one more call, answered after 140 ms
  EXPECT_EQ(overdue_waiter(30ms).reason, Reason::kFallbackAllow);
}

TEST_F(LeaseTest, OverdueRefillsCompleteWaitersByTheDenyAndAllowFallbacks) {
  for (FallbackMode mode : {FallbackMode::kDeny, FallbackMode::kAllow}) {
    make(tiny_fallback_config(mode));
    warm(8, 1ms);
    std::optional<Decision> waited;
    limiter->acquire_async("tenant:a", 1, 5s, [&](const Decision& d) { waited = d; });
    limiter->poll();
    clock->advance(31ms);
    limiter->poll();
    ASSERT_TRUE(waited.has_value()) << to_string(mode);
    EXPECT_EQ(waited->allowed, mode == FallbackMode::kAllow);
    EXPECT_EQ(waited->reason,
              mode == FallbackMode::kAllow ? Reason::kFallbackAllow : Reason::kFallbackDeny);
    pending.clear();
    limiter.reset();
  }
}

TEST_F(LeaseTest, AZeroOverdueFloorWaitsForTheCallsOwnAnswer) {
  Config c = tiny_fallback_config(FallbackMode::kAllow);
  c.leases.overdue_floor = 0ms;
  make(c);
  warm(8, 1ms);
  std::optional<Decision> waited;
  limiter->acquire_async("tenant:a", 1, 5s, [&](const Decision& d) { waited = d; });
  limiter->poll();
  clock->advance(400ms);
  limiter->poll();
  EXPECT_FALSE(waited.has_value());
  EXPECT_EQ(limiter->stats().refills_overdue, 0u);
  limiter.reset();  // completes the wait while `waited` is still in scope (ASan)
}

// Share mode (the default fallback): the local bucket runs at the rate this instance was
// granted for the key, not at the policy's whole rate.
TEST_F(LeaseTest, TheDefaultLocalFallbackRunsAtTheShareThisInstanceWasGranted) {
  make(bucket_config(100, 100));  // fallback: local, share mode
  (void)limiter->try_acquire("tenant:a");
  limiter->poll();
  for (int round = 0; round < 14; ++round) {  // 20 tokens a second: a fifth of the rate
    ASSERT_EQ(pending.size(), 1u) << round;
    answer(20, 10s);
    drain("tenant:a", Reason::kOk);
    clock->advance(1s);
    limiter->poll();
  }
  fail_lease();
  auto [admitted, denial] = drain("tenant:a", Reason::kFallbackLocal);
  EXPECT_EQ(admitted, 20) << "one second of the share to start with";
  clock->advance(500ms);
  limiter->poll();
  while (!pending.empty()) fail_lease();
  EXPECT_NEAR(drain("tenant:a", Reason::kFallbackLocal).first, 10, 1) << "20/s, not 100/s";
}

TEST_F(LeaseTest, AKeyNeverGrantedHasNoShareToFallBackOn) {
  make(bucket_config(100, 100));
  (void)limiter->try_acquire("tenant:a");
  limiter->poll();
  fail_lease();
  const Decision d = limiter->try_acquire("tenant:a");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, Reason::kFallbackLocal);
}

TEST_F(LeaseTest, ConcurrencyPoliciesFallBackToDenyForLocal) {
  Config c;
  Policy p;
  p.match = "gpu:*";
  p.name = "gpu";
  p.kind = PolicyKind::kConcurrency;
  p.limit = 8;
  c.policies.push_back(p);
  c.instance_id = "test-instance";
  make(c);
  EXPECT_FALSE(limiter->acquire_permit("gpu:a"));
  limiter->poll();
  fail_lease();
  Permit permit = limiter->acquire_permit("gpu:a");
  EXPECT_FALSE(permit);
  EXPECT_EQ(permit.decision().reason, Reason::kFallbackDeny);
}

TEST_F(LeaseTest, AGroupLimitedAnswerDeniesWithOverGroupLimit) {
  make(bucket_config());
  limiter->try_acquire("tenant:a");
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  LeaseGrant g;
  g.granted = 0;
  g.now = clock->now();
  g.wait_until = clock->now() + 300ms;
  g.limited_by = LimitLevel::kGroup;
  pending[0].done({g});
  pending.clear();
  limiter->poll();
  Decision d = limiter->try_acquire("tenant:a");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, Reason::kOverGroupLimit);
  EXPECT_EQ(to_string(d.reason), "over_group_limit");
  EXPECT_GE(d.retry_after, 299ms);
  EXPECT_EQ(limiter->stats().denied[static_cast<int>(Reason::kOverGroupLimit)], 1u);
}

TEST_F(LeaseTest, RequestsCarryTheInstancesDemandAndTheGroupsBudget) {
  Config c = bucket_config(1000, 1000);
  c.policies[0].group = "gpu";
  c.policies[0].weight = 3;
  c.groups.push_back(Group{"gpu", 500, 0});
  make(c);
  limiter->try_acquire("tenant:a");
  limiter->poll();
  ASSERT_EQ(pending.size(), 1u);
  const LeaseRequest& first = pending[0].batch[0];
  EXPECT_EQ(first.policy->group_rate, 500);
  EXPECT_EQ(first.policy->group_burst, 500);  // one second of rate
  EXPECT_EQ(first.policy->weight, 3);
  // No rate is known yet: the demand is what the first lease is for, over the horizon.
  EXPECT_DOUBLE_EQ(first.demand, static_cast<double>(first.want) / 0.2);
  answer(100);
  // Spend 100 and be denied 100 times over 100 ms: 2000 tokens per second wanted.
  for (int i = 0; i < 10; ++i) {
    clock->advance(10ms);
    for (int k = 0; k < 20; ++k) limiter->try_acquire("tenant:a");
    limiter->poll();
  }
  ASSERT_FALSE(pending.empty());
  const LeaseRequest& next = pending.back().batch[0];
  EXPECT_GT(next.demand, 1000);
  EXPECT_LT(next.demand, 3000);
}

// A key under steady load keeps at most a few timers pending: the scheduler's memory does
// not grow with time. (Stale timers used to re-arm themselves each time they fired, so
// the heap grew with every lease: bytes_used rose ~50x between 5 s and 30 s here.)
TEST(LeaseTimers, TheSchedulerDoesNotGrowUnderSteadyLoad) {
  auto clock = std::make_shared<ManualClock>();
  Config c = bucket_config(1000, 1000);
  c.leases.max_fraction = 0.1;  // the defaults' small leases: many asks, many timers
  std::vector<std::unique_ptr<Limiter>> instances;
  auto store = std::make_shared<InProcessStore>(clock);
  for (int i = 0; i < 4; ++i) {
    c.instance_id = "i" + std::to_string(i);
    instances.push_back(std::make_unique<Limiter>(
        c, Limiter::Options{
               .store = store, .clock = clock, .background_thread = false, .observer = {}}));
  }
  const std::vector<std::string> keys = {"tenant:a", "tenant:b", "tenant:c", "tenant:d"};
  std::uint64_t at_5s = 0;
  // 30 s at 2x the rate: each instance offers each key a request every 2 ms.
  for (int ms = 1; ms <= 30'000; ++ms) {
    clock->advance(1ms);
    for (auto& l : instances) {
      if (ms % 2 == 0) {
        for (const auto& k : keys) (void)l->try_acquire(k);
      }
      l->poll();
    }
    if (ms == 5'000) {
      for (auto& l : instances) at_5s += l->stats().bytes_used;
    }
  }
  std::uint64_t at_30s = 0;
  for (auto& l : instances) at_30s += l->stats().bytes_used;
  EXPECT_LT(at_30s, at_5s * 3 / 2) << "bytes_used at 5 s " << at_5s << ", at 30 s " << at_30s;
}

}  // namespace
}  // namespace tollgate
