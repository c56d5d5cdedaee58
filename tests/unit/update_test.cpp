// Limiter::update on a simulated clock over the in-process store (which reads the same
// clock, so buckets refill only when the test moves it): a bad config changes nothing, a key
// moving between policies neither loses nor doubles tokens, waiters keep their place,
// permits held across a change count against the bucket that holds them.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

Policy bucket(std::string name, std::string match, double burst) {
  Policy p;
  p.name = std::move(name);
  p.match = std::move(match);
  p.rate = 0.001;  // refills nothing within a test
  p.burst = burst;
  return p;
}

Policy permits(std::string name, std::string match, std::uint64_t limit) {
  Policy p;
  p.name = std::move(name);
  p.match = std::move(match);
  p.kind = PolicyKind::kConcurrency;
  p.limit = limit;
  return p;
}

Config config_of(std::vector<Policy> policies) {
  Config c;
  c.policies = std::move(policies);
  c.leases.max_fraction = 0.25;  // several leases to drain a bucket
  // Each lease a whole max_lease, asked with its tick: the figures below count leases of
  // that size (a cold key's first lease is otherwise an eighth of it, and refills that can
  // wait are held for the partition's next call: lease_sizing_test).
  c.leases.min_tokens = 1'000'000;
  c.leases.refresh = std::chrono::milliseconds{0};
  c.instance_id = "update-test";
  return c;
}

class Update : public ::testing::Test {
 protected:
  void make(Config c) {
    limiter.emplace(
        std::move(c),
        Limiter::Options{
            .store = store, .clock = clock, .background_thread = false, .observer = {}});
  }
  // Admits `key` until the store has nothing more for it; returns how many were admitted.
  int drain(const std::string& key) {
    int n = 0;
    for (int idle = 0; idle < 4;) {
      const Decision d = limiter->try_acquire(key);
      if (d.allowed) {
        ++n;
        idle = 0;
        continue;
      }
      limiter->poll();
      ++idle;
    }
    return n;
  }
  void update(Config c) {
    limiter->update(std::move(c));
    limiter->poll();
  }

  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::shared_ptr<InProcessStore> store = std::make_shared<InProcessStore>(clock);
  std::optional<Limiter> limiter;
};

TEST_F(Update, ABadConfigIsRefusedWithItsFieldAndTheRunningOneStays) {
  make(config_of({bucket("a", "tenant:*", 10)}));
  const std::shared_ptr<const Config> running = limiter->config();
  Config bad = config_of({bucket("a", "tenant:*", 10)});
  bad.policies[0].rate = -1;
  try {
    limiter->update(bad);
    FAIL() << "an invalid rate was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.field(), "policies[0].rate");
  }
  EXPECT_THROW(limiter->update(std::string_view("{\"policies\": [}")), ConfigError);
  EXPECT_EQ(limiter->config(), running);
  EXPECT_EQ(drain("tenant:x"), 10);  // still the old limit
  const Stats s = limiter->stats();
  EXPECT_EQ(s.config_rejected, 2u);  // text that does not parse is refused like the rest
  EXPECT_EQ(s.config_updates, 0u);
  EXPECT_EQ(s.keys_moved, 0u);
}

TEST_F(Update, WhatNeedsANewLimiterIsRefusedByName) {
  make(config_of({bucket("a", "tenant:*", 10)}));
  const std::shared_ptr<const Config> running = limiter->config();
  Config other_store = config_of({bucket("a", "tenant:*", 10)});
  other_store.store.type = "redis";
  other_store.store.shards = {"redis://127.0.0.1:1"};
  Config other_size = config_of({bucket("a", "tenant:*", 10)});
  other_size.max_keys = 5;
  Config other_id = config_of({bucket("a", "tenant:*", 10)});
  other_id.instance_id = "someone-else";
  for (auto [c, field] : {std::pair{other_store, "store"}, std::pair{other_size, "max_keys"},
                          std::pair{other_id, "instance_id"}}) {
    try {
      limiter->update(c);
      ADD_FAILURE() << field << ": a change was accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.field(), field);
    }
  }
  EXPECT_EQ(limiter->config(), running);
  EXPECT_EQ(limiter->stats().config_rejected, 3u);
}

TEST_F(Update, ANewLimitIsInForceAfterOneTick) {
  make(config_of({bucket("a", "tenant:*", 10)}));
  EXPECT_EQ(drain("tenant:x"), 10);
  update(config_of({bucket("a", "tenant:*", 10), bucket("big", "tenant:x", 40)}));
  EXPECT_EQ(drain("tenant:x"), 40);
  EXPECT_EQ(drain("tenant:y"), 10);
  const Stats s = limiter->stats();
  EXPECT_EQ(s.config_updates, 1u);
  EXPECT_EQ(s.keys_moved, 1u);
}

// The unspent tokens of the old policy's lease go back to its bucket, the new one leases
// afresh: moving a -> b -> a admits exactly a's burst plus b's burst, neither less (tokens
// lost on the way) nor more (old tokens still spent after the move, or counted twice).
TEST_F(Update, AKeyMovingBetweenPoliciesNeitherLosesNorDoublesTokens) {
  const Config only_a = config_of({bucket("a", "tenant:*", 100)});
  const Config with_b = config_of({bucket("a", "tenant:*", 100), bucket("b", "tenant:x", 50)});
  make(only_a);
  int admitted = 0;
  for (int i = 0; i < 200 && admitted < 30; ++i) {
    if (limiter->try_acquire("tenant:x").allowed) {
      ++admitted;
    } else {
      limiter->poll();
    }
  }
  ASSERT_EQ(admitted, 30);
  const Stats before = limiter->stats();
  ASSERT_GT(before.tokens_leased, 30u) << "the key holds no unspent tokens to move";
  update(with_b);
  EXPECT_GT(limiter->stats().tokens_given_back, before.tokens_given_back);
  EXPECT_EQ(drain("tenant:x"), 50);
  update(only_a);
  EXPECT_EQ(drain("tenant:x"), 70);
  EXPECT_EQ(limiter->stats().keys_moved, 2u);
}

TEST_F(Update, AnEqualPolicyKeepsItsKeysAndTheirLeases) {
  make(config_of({bucket("a", "tenant:*", 100)}));
  while (!limiter->try_acquire("tenant:x").allowed) limiter->poll();
  const Stats before = limiter->stats();
  Config c = config_of({bucket("a", "tenant:*", 100), bucket("other", "other:*", 5)});
  c.cold_keys.mode = ColdKeyMode::kOptimistic;
  c.cold_keys.allowance = 5;
  update(c);
  const Stats after = limiter->stats();
  EXPECT_EQ(after.keys_moved, 0u);
  EXPECT_EQ(after.tokens_given_back, before.tokens_given_back);
  EXPECT_TRUE(limiter->try_acquire("tenant:x").allowed);
}

TEST_F(Update, WaitersKeepTheirPlace) {
  make(config_of({bucket("a", "tenant:*", 2)}));
  EXPECT_EQ(drain("tenant:x"), 2);
  std::vector<int> served;
  for (int i = 0; i < 3; ++i) {
    limiter->acquire_async("tenant:x", 1, 10s, [&served, i](const Decision& d) {
      if (d.allowed) served.push_back(i);
    });
  }
  limiter->poll();
  EXPECT_TRUE(served.empty());
  // b's leases are of 2 (max_fraction 0.25 of 10): the queue of 3 needs two of them.
  update(config_of({bucket("a", "tenant:*", 2), bucket("b", "tenant:x", 10)}));
  for (int i = 0; i < 20 && served.size() < 3; ++i) limiter->poll();
  EXPECT_EQ(served, (std::vector<int>{0, 1, 2}));
}

// Permits out when a concurrency key moves count against the new policy's limit (which
// now holds them) until released; the old policy's bucket gets its whole reservation back.
TEST_F(Update, PermitsHeldAcrossAnUpdateCountAgainstTheNewBucket) {
  make(config_of({permits("old", "gpu:*", 4)}));
  std::vector<Permit> held;
  for (int i = 0; i < 20 && held.size() < 3; ++i) {
    if (Permit p = limiter->acquire_permit("gpu:x")) {
      held.push_back(std::move(p));
    } else {
      limiter->poll();
    }
  }
  ASSERT_EQ(held.size(), 3u);
  update(config_of({permits("old", "gpu:*", 4), permits("new", "gpu:x", 5)}));
  std::vector<Permit> more;
  for (int i = 0; i < 20; ++i) {
    if (Permit p = limiter->acquire_permit("gpu:x")) {
      more.push_back(std::move(p));
    } else {
      limiter->poll();
    }
  }
  EXPECT_EQ(more.size(), 2u) << "5 permits, 3 of them held from before the update";
  held.clear();  // released: against the reservation of "new"
  for (int i = 0; i < 20; ++i) {
    if (Permit p = limiter->acquire_permit("gpu:x")) {
      more.push_back(std::move(p));
    } else {
      limiter->poll();
    }
  }
  EXPECT_EQ(more.size(), 5u);
  // Another instance finds the whole of "old" free again.
  Config other = config_of({permits("old", "gpu:*", 4)});
  other.instance_id = "update-test-2";
  Limiter second(
      other,
      Limiter::Options{.store = store, .clock = clock, .background_thread = false, .observer = {}});
  std::vector<Permit> theirs;
  for (int i = 0; i < 20; ++i) {
    if (Permit p = second.acquire_permit("gpu:x")) {
      theirs.push_back(std::move(p));
    } else {
      second.poll();
    }
  }
  EXPECT_EQ(theirs.size(), 4u);
}

TEST_F(Update, AKeyLeftWithoutAPolicyIsDroppedAndItsWaitersTold) {
  make(config_of({bucket("a", "tenant:*", 2), bucket("gone", "gone:*", 2)}));
  EXPECT_EQ(drain("gone:x"), 2);
  std::optional<Decision> told;
  limiter->acquire_async("gone:x", 1, 10s, [&told](const Decision& d) { told = d; });
  update(config_of({bucket("a", "tenant:*", 2)}));
  ASSERT_TRUE(told.has_value());
  EXPECT_FALSE(told->allowed);
  EXPECT_EQ(told->reason, Reason::kNoPolicy);
  EXPECT_EQ(limiter->try_acquire("gone:x").reason, Reason::kNoPolicy);
  EXPECT_EQ(limiter->stats().keys_tracked, 0u);
}

// Slots of replaced policies are reused once no key holds them: many updates in a row
// neither run out of slots nor keep what they replaced.
TEST_F(Update, ManyUpdatesInARowReuseTheirSlots) {
  make(config_of({bucket("a0", "tenant:*", 10)}));
  for (int i = 1; i <= 300; ++i) {
    std::vector<Policy> ps;
    for (int k = 0; k < 300; ++k)
      ps.push_back(bucket("p" + std::to_string(i) + "-" + std::to_string(k),
                          "t" + std::to_string(k) + ":*", 10));
    ps.push_back(bucket("a" + std::to_string(i), "tenant:*", 10));
    update(config_of(ps));
    (void)limiter->try_acquire("tenant:x");
    limiter->poll();
  }
  EXPECT_EQ(limiter->stats().config_updates, 300u);
  EXPECT_EQ(drain("tenant:y"), 10);
}

// A shadow policy decides as if enforced and counts it, but admits; switching shadow off is
// an update that makes the same limit bite.
TEST_F(Update, AShadowPolicyCountsItsDenialsButAdmitsUntilEnforced) {
  Policy shadow = bucket("trial", "tenant:*", 5);
  shadow.shadow = true;
  make(config_of({shadow}));
  int allowed = 0;
  std::vector<Reason> reasons;
  for (int i = 0; i < 30; ++i) {
    const Decision d = limiter->try_acquire("tenant:x");
    allowed += d.allowed ? 1 : 0;
    if (d.reason != Reason::kOk) reasons.push_back(d.reason);
    limiter->poll();
  }
  EXPECT_EQ(allowed, 30);
  Stats s = limiter->stats();
  EXPECT_EQ(s.admitted, 5u) << "what the policy itself admitted";
  EXPECT_EQ(s.shadow_admitted, 25u);
  EXPECT_EQ(s.denied_total(), 25u);
  EXPECT_EQ(
      s.denied[static_cast<int>(Reason::kOverLimit)] + s.denied[static_cast<int>(Reason::kColdKey)],
      25u);
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), Reason::kOverLimit) +
                std::count(reasons.begin(), reasons.end(), Reason::kColdKey),
            25);
  Permit p = [&] {
    Policy gpu = permits("gpus", "gpu:*", 1);
    gpu.shadow = true;
    update(config_of({shadow, gpu}));
    Permit first = limiter->acquire_permit("gpu:x");
    while (!first || first.count() == 0) {
      limiter->poll();
      first = limiter->acquire_permit("gpu:x");
    }
    return first;
  }();
  Permit over = limiter->acquire_permit("gpu:x");  // over the limit of 1, admitted: holds none
  EXPECT_TRUE(over);
  EXPECT_EQ(over.count(), 0u);
  shadow.shadow = false;
  update(config_of({shadow}));
  EXPECT_FALSE(limiter->try_acquire("tenant:x").allowed) << "enforced now";
}

}  // namespace
}  // namespace tollgate
