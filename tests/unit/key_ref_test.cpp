// KeyRef: a key resolved once decides like the key itself, finds the key again after it was
// evicted, and refuses what is not its limiter's. The in-process store on a manual clock, the
// scheduler driven by poll().
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "tollgate/tollgate.hpp"

namespace {

using namespace std::chrono_literals;
using tollgate::Config;
using tollgate::Decision;
using tollgate::KeyRef;
using tollgate::Limiter;
using tollgate::ManualClock;
using tollgate::Reason;

Limiter::Options polled(std::shared_ptr<ManualClock> clock) {
  Limiter::Options o;
  o.clock = std::move(clock);
  o.background_thread = false;
  return o;
}

class KeyRefTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // refresh 0: each cold key's first lease goes with its tick (warm() polls once).
    Config c = Config::from_json(R"({"idle_timeout_ms": 1000, "leases": {"refresh_ms": 0},
      "policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 1000, "burst": 1000}]})");
    limiter.emplace(std::move(c), polled(clock));
  }
  // Decides once (the first sight asks for a lease), then lets the scheduler grant it.
  void warm(const KeyRef& k) {
    (void)limiter->try_acquire(k);
    limiter->poll();
    ASSERT_TRUE(limiter->try_acquire(k).allowed);
  }
  // Idle past idle_timeout: the scheduler evicts the key.
  void idle_until_evicted() {
    for (int i = 0; i < 50 && limiter->stats().keys_tracked > 0; ++i) {
      clock->advance(100ms);
      limiter->poll();
    }
  }

  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::optional<Limiter> limiter;
};

TEST_F(KeyRefTest, SpendsFromTheSameBalanceAsTheKey) {
  const KeyRef k = limiter->key_ref("tenant:a");
  EXPECT_EQ(k.key(), "tenant:a");
  warm(k);
  const Decision by_ref = limiter->try_acquire(k, 10);
  const Decision by_key = limiter->try_acquire("tenant:a", 10);
  ASSERT_TRUE(by_ref.allowed);
  ASSERT_TRUE(by_key.allowed);
  EXPECT_EQ(by_key.remaining, by_ref.remaining - 10);
  EXPECT_EQ(k.try_acquire(5).remaining, by_key.remaining - 5);
  EXPECT_EQ(limiter->stats().keys_tracked, 1u);
}

TEST_F(KeyRefTest, FindsTheKeyAgainAfterItWasEvicted) {
  const KeyRef k = limiter->key_ref("tenant:a");
  warm(k);
  idle_until_evicted();
  ASSERT_EQ(limiter->stats().keys_evicted, 1u);
  ASSERT_EQ(limiter->stats().keys_tracked, 0u);
  // The old entry is gone: the KeyRef must not spend from it, but track the key anew.
  const Decision d = limiter->try_acquire(k);
  EXPECT_EQ(limiter->stats().keys_tracked, 1u);
  EXPECT_FALSE(d.allowed);  // a cold key again (deny mode): its lease is asked for
  EXPECT_EQ(d.reason, Reason::kColdKey);
  limiter->poll();
  EXPECT_TRUE(limiter->try_acquire(k).allowed);
  EXPECT_EQ(limiter->stats().keys_tracked, 1u);
}

TEST_F(KeyRefTest, AnotherKeysEvictionLeavesItsEntryInPlace) {
  const KeyRef a = limiter->key_ref("tenant:a");
  warm(a);
  warm(limiter->key_ref("tenant:b"));
  for (int i = 0; i < 30; ++i) {  // a busy, b idle until evicted
    ASSERT_TRUE(limiter->try_acquire(a).allowed);
    clock->advance(100ms);
    limiter->poll();
  }
  ASSERT_EQ(limiter->stats().keys_evicted, 1u);
  const std::int64_t left = limiter->try_acquire(a).remaining;
  EXPECT_EQ(limiter->try_acquire("tenant:a").remaining, left - 1);
}

TEST_F(KeyRefTest, RefusesWhatIsNotItsLimiters) {
  Limiter other(*limiter->config(), polled(clock));
  const KeyRef theirs = other.key_ref("tenant:a");
  EXPECT_EQ(limiter->try_acquire(theirs).reason, Reason::kInvalidArgument);
  EXPECT_EQ(KeyRef{}.try_acquire().reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->try_acquire(KeyRef{}).reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->try_acquire(limiter->key_ref("")).reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->try_acquire(limiter->key_ref("tenant:a"), 0).reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->try_acquire(limiter->key_ref("nobody")).reason, Reason::kNoPolicy);
  EXPECT_EQ(limiter->stats().keys_tracked, 0u);
}

TEST_F(KeyRefTest, OutlivesItsLimiter) {
  KeyRef k = limiter->key_ref("tenant:a");
  warm(k);
  KeyRef moved = std::move(k);
  limiter.reset();
  EXPECT_EQ(k.try_acquire().reason, Reason::kInvalidArgument);  // moved from
  (void)moved.try_acquire();  // the core is still there: a decision, no crash
}

// The prefetch hints (KeyRef::prefetch, prefetch_policy) change nothing: not on an empty or
// unresolved KeyRef (no key tracked), nor on a warm one, nor once its entry was evicted and
// freed (prefetch_policy must not read it then: ASan's to catch in the sanitizer builds).
TEST_F(KeyRefTest, PrefetchesChangeNothing) {
  KeyRef{}.prefetch();
  KeyRef{}.prefetch_policy();
  const KeyRef k = limiter->key_ref("tenant:a");
  k.prefetch();
  k.prefetch_policy();
  EXPECT_EQ(limiter->stats().keys_tracked, 0u);
  warm(k);
  const std::int64_t left = limiter->try_acquire(k).remaining;
  k.prefetch();
  k.prefetch_policy();
  EXPECT_EQ(limiter->try_acquire(k).remaining, left - 1);
  idle_until_evicted();
  ASSERT_EQ(limiter->stats().keys_tracked, 0u);
  k.prefetch();
  k.prefetch_policy();
  EXPECT_EQ(limiter->stats().keys_tracked, 0u);
  EXPECT_EQ(limiter->try_acquire(k).reason, Reason::kColdKey);
}

// A shadow policy admits what it would deny (counted as shadow_admitted), through a KeyRef as
// through the key itself.
TEST(KeyRefShadow, AShadowPolicyAdmitsThroughAKeyRefAsThroughTheKey) {
  auto clock = std::make_shared<ManualClock>();
  Config c = Config::from_json(R"({"leases": {"refresh_ms": 0}, "policies": [{"match": "tenant:*",
    "type": "token_bucket", "rate": 5, "burst": 5, "shadow": true}]})");
  Limiter limiter(std::move(c), polled(clock));
  const KeyRef k = limiter.key_ref("tenant:a");
  int by_ref = 0, by_key = 0;
  for (int i = 0; i < 30; ++i) {
    by_ref += limiter.try_acquire(k).allowed ? 1 : 0;
    by_key += limiter.try_acquire("tenant:b").allowed ? 1 : 0;
    limiter.poll();
  }
  EXPECT_EQ(by_key, 30);
  EXPECT_EQ(by_ref, 30);
  EXPECT_EQ(limiter.stats().shadow_admitted, 50u);
}

}  // namespace
