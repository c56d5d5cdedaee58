// One behavioural suite, run on both stores: the InProcessStore and the Redis store (its
// Lua scripts against a real redis-server). Both use real time here (Redis only has its
// own), so the policies are chosen to make the answers exact anyway: buckets that refill
// too slowly to matter during a test, and windows of a day.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "redis_server.h"
#include "store/redis/redis_store.h"
#include "tollgate/quota_store.h"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

struct InProcess {
  static constexpr const char* kName = "in_process";
  std::shared_ptr<QuotaStore> make() { return std::make_shared<InProcessStore>(); }
};

struct Redis {
  static constexpr const char* kName = "redis";
  std::unique_ptr<testing::RedisServer> server = std::make_unique<testing::RedisServer>();
  std::shared_ptr<QuotaStore> make() {
    StoreConfig c;
    c.type = "redis";
    c.shards = {server->url()};
    return std::make_shared<redis::RedisStore>(c);
  }
};

template <typename Backend>
class StoreBehaviour : public ::testing::Test {
 protected:
  std::vector<LeaseGrant> lease(std::vector<LeaseRequest> batch) {
    std::promise<std::vector<LeaseGrant>> p;
    auto f = p.get_future();
    store->lease(std::move(batch), [&p](std::vector<LeaseGrant> g) { p.set_value(std::move(g)); });
    EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
    return f.get();
  }
  LeaseGrant one(std::shared_ptr<const ResolvedPolicy> p, std::string key, std::uint64_t want,
                 std::string holder = "h1", std::uint64_t min = 1) {
    return lease({request(std::move(p), std::move(key), want, std::move(holder), min)})[0];
  }
  LeaseRequest request(std::shared_ptr<const ResolvedPolicy> p, std::string key, std::uint64_t want,
                       std::string holder = "h1", std::uint64_t min = 1) {
    LeaseRequest r;
    r.key = std::move(key);
    r.policy = std::move(p);
    r.want = want;
    r.min = min;
    r.holder = std::move(holder);
    r.request_id = r.holder + ":" + std::to_string(next_id_++);
    r.ttl = 2s;
    return r;
  }
  // Give-backs are fire-and-forget; a lease call afterwards is ordered behind them on
  // the same connection (and the in-process store is synchronous).
  void give_back(std::vector<GiveBack> b) { store->give_back(std::move(b)); }

  static std::shared_ptr<const ResolvedPolicy> bucket(double rate, double burst) {
    auto p = std::make_shared<ResolvedPolicy>();
    p->name = p->match = "tenants";
    p->rate = rate;
    p->burst = burst;
    return p;
  }
  static std::shared_ptr<const ResolvedPolicy> windowed(PolicyKind kind, std::uint64_t limit) {
    auto p = std::make_shared<ResolvedPolicy>();
    p->name = p->match = "windows";
    p->kind = kind;
    p->limit = limit;
    p->window = 24h;
    return p;
  }
  static std::shared_ptr<const ResolvedPolicy> permits(std::uint64_t limit) {
    auto p = std::make_shared<ResolvedPolicy>();
    p->name = p->match = "gpu";
    p->kind = PolicyKind::kConcurrency;
    p->limit = limit;
    return p;
  }

  Backend backend;
  std::shared_ptr<QuotaStore> store = backend.make();
  int next_id_ = 1;
};

// tests/cluster/cluster_store_behaviour_test.cpp runs the suite on a Redis Cluster: it
// defines its backend and TOLLGATE_STORE_BACKENDS, then includes this file.
#ifdef TOLLGATE_STORE_BACKENDS
using Backends = TOLLGATE_STORE_BACKENDS;
#else
using Backends = ::testing::Types<InProcess, Redis>;
#endif
class BackendNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};
TYPED_TEST_SUITE(StoreBehaviour, Backends, BackendNames);

constexpr double kSlow = 0.001;  // tokens per second: no refill within a test

TYPED_TEST(StoreBehaviour, AnswersABatchInOrderUpToTheBurst) {
  auto p = this->bucket(kSlow, 100);
  auto g = this->lease({this->request(p, "tenant:a", 30), this->request(p, "tenant:b", 500),
                        this->request(p, "tenant:a", 80)});
  ASSERT_EQ(g.size(), 3u);
  for (auto& x : g) ASSERT_TRUE(x.ok) << x.error;
  EXPECT_EQ(g[0].granted, 30u);
  EXPECT_EQ(g[1].granted, 100u);
  EXPECT_EQ(g[2].granted, 70u);
  EXPECT_EQ(g[2].remaining, 0u);
  EXPECT_EQ(g[0].expires_at - g[0].now, 2s);
}

TYPED_TEST(StoreBehaviour, TooLittleLeftGrantsNothingAndSaysWhen) {
  auto p = this->bucket(10, 50);
  this->one(p, "tenant:a", 47);
  LeaseGrant g = this->one(p, "tenant:a", 8, "h1", 8);
  EXPECT_EQ(g.granted, 0u);
  EXPECT_GE(g.remaining, 3u);
  // 5 more tokens at 10/s: about half a second after the store's now.
  EXPECT_GT(g.wait_until - g.now, 400ms);
  EXPECT_LE(g.wait_until - g.now, 500ms);
}

TYPED_TEST(StoreBehaviour, ARetriedRequestIdGetsTheFirstAnswer) {
  auto p = this->bucket(kSlow, 100);
  LeaseRequest r = this->request(p, "tenant:a", 60);
  LeaseGrant first = this->lease({r})[0];
  LeaseGrant retry = this->lease({r})[0];
  EXPECT_EQ(first.granted, 60u);
  EXPECT_EQ(retry.granted, 60u);
  EXPECT_EQ(retry.expires_at, first.expires_at);
  EXPECT_EQ(this->one(p, "tenant:a", 100).granted, 40u) << "the retry was granted twice";
}

// A store remembers each instance's latest request per key (docs/redis.md, "Request
// records"): a retry of it gets its first answer, while an older request of the same
// instance — which the SDK never sends again, a key having at most one lease in flight per
// instance — is decided anew, from the bucket: never granted twice from a record, and
// never beyond the bucket. For a plain bucket, a shared one and a window.
TYPED_TEST(StoreBehaviour, OnlyAnInstancesLatestRequestIsAnsweredFromItsRecord) {
  auto plain = this->bucket(kSlow, 100);
  auto fair = std::make_shared<ResolvedPolicy>(*plain);
  fair->name = "fair";
  fair->fair_instances = true;
  auto window = this->windowed(PolicyKind::kFixedWindow, 100);
  for (std::shared_ptr<const ResolvedPolicy> p :
       std::vector<std::shared_ptr<const ResolvedPolicy>>{plain, fair, window}) {
    std::vector<LeaseRequest> sent;
    std::vector<LeaseGrant> first;
    for (int i = 0; i < 3; ++i) {
      sent.push_back(this->request(p, "tenant:a", 20));
      first.push_back(this->lease({sent.back()})[0]);
      ASSERT_EQ(first.back().granted, 20u) << p->name;
    }
    const LeaseGrant latest = this->lease({sent[2]})[0];
    EXPECT_EQ(latest.granted, first[2].granted) << p->name;
    EXPECT_EQ(latest.now, first[2].now) << p->name << ": the latest request was decided again";
    EXPECT_EQ(latest.expires_at, first[2].expires_at) << p->name;
    // Decided anew, the two older requests take the bucket's last 40 tokens; answered from
    // records they would take none, and the last ask would get those 40.
    std::uint64_t granted = 60;
    for (int i = 0; i < 2; ++i) granted += this->lease({sent[i]})[0].granted;
    EXPECT_EQ(granted, 100u) << p->name;
    EXPECT_EQ(this->one(p, "tenant:a", 100).granted, 0u)
        << p->name << ": the older requests were answered from records";
  }
}

TYPED_TEST(StoreBehaviour, GivenBackTokensAreLentAgainWithTheirExpiry) {
  auto p = this->bucket(kSlow, 100);
  LeaseGrant first = this->one(p, "tenant:a", 100);
  this->give_back({GiveBack{"tenant:a", p, 60, first.expires_at, "h1"}});
  LeaseGrant again = this->one(p, "tenant:a", 40);
  EXPECT_EQ(again.granted, 40u);
  EXPECT_EQ(again.expires_at, first.expires_at);
}

TYPED_TEST(StoreBehaviour, GiveBackOfAnExpiredLeaseIsDropped) {
  auto p = this->bucket(kSlow, 100);
  LeaseGrant first = this->one(p, "tenant:a", 100);
  this->give_back({GiveBack{"tenant:a", p, 60, first.now - 1ms, "h1"}});
  EXPECT_EQ(this->one(p, "tenant:a", 10).granted, 0u);
}

TYPED_TEST(StoreBehaviour, FixedWindowGrantsTheLimitOnceAndWaitsForTheNextWindow) {
  auto p = this->windowed(PolicyKind::kFixedWindow, 50);
  EXPECT_EQ(this->one(p, "tenant:a", 30).granted, 30u);
  LeaseGrant g = this->one(p, "tenant:a", 30);
  EXPECT_EQ(g.granted, 20u);
  EXPECT_LE(g.expires_at - g.now, 2s);
  LeaseGrant none = this->one(p, "tenant:a", 5);
  EXPECT_EQ(none.granted, 0u);
  EXPECT_GT(none.wait_until, none.now);
  EXPECT_LE(none.wait_until - none.now, 24h);
}

TYPED_TEST(StoreBehaviour, WindowGiveBackIsCreditedWithinTheWindow) {
  auto p = this->windowed(PolicyKind::kSlidingWindow, 50);
  LeaseGrant g = this->one(p, "tenant:a", 50);
  ASSERT_EQ(g.granted, 50u);
  this->give_back({GiveBack{"tenant:a", p, 20, g.expires_at, "h1"}});
  EXPECT_EQ(this->one(p, "tenant:a", 50).granted, 20u);
}

TYPED_TEST(StoreBehaviour, ConcurrencyReservationsShareTheLimit) {
  auto p = this->permits(10);
  EXPECT_EQ(this->one(p, "gpu:pool", 6, "a").granted, 6u);
  EXPECT_EQ(this->one(p, "gpu:pool", 6, "b").granted, 4u);
  EXPECT_EQ(this->one(p, "gpu:pool", 6, "a").granted, 6u) << "asking again is absolute";
  this->give_back({GiveBack{"gpu:pool", p, 6, {}, "a"}});
  EXPECT_EQ(this->one(p, "gpu:pool", 6, "b").granted, 6u);
}

TYPED_TEST(StoreBehaviour, PoliciesAndKeysHaveTheirOwnBuckets) {
  auto a = this->bucket(kSlow, 100);
  auto b = std::make_shared<ResolvedPolicy>(*a);
  b->name = "other";
  EXPECT_EQ(this->one(a, "tenant:x", 100).granted, 100u);
  EXPECT_EQ(this->one(b, "tenant:x", 100).granted, 100u);
  EXPECT_EQ(this->one(a, "tenant:y", 100).granted, 100u);
  // Keys that differ only where escaping matters stay apart.
  EXPECT_EQ(this->one(a, "t:a:b", 100).granted, 100u);
  EXPECT_EQ(this->one(a, "t:a%3Ab", 100).granted, 100u);
}

TYPED_TEST(StoreBehaviour, ZeroWantChangesNothing) {
  auto p = this->bucket(kSlow, 100);
  this->one(p, "tenant:a", 30);
  LeaseGrant g = this->one(p, "tenant:a", 0);
  EXPECT_EQ(g.granted, 0u);
  EXPECT_EQ(g.remaining, 70u);
  EXPECT_EQ(this->one(p, "tenant:a", 100).granted, 70u);
}

// --- Debts (GiveBack::debt): tokens an instance admitted beyond its leases ---

GiveBack debt(std::string key, std::shared_ptr<const ResolvedPolicy> p, std::uint64_t tokens) {
  GiveBack g{std::move(key), std::move(p), tokens, Nanos{0}, "h1"};
  g.debt = true;
  return g;
}

TYPED_TEST(StoreBehaviour, ADebtIsChargedToTheBucketBeforeItsNextGrants) {
  auto p = this->bucket(kSlow, 100);
  this->give_back({debt("tenant:a", p, 30)});  // a new bucket starts full, then is charged
  EXPECT_EQ(this->one(p, "tenant:a", 100).granted, 70u);
  this->one(p, "tenant:b", 40);
  this->give_back({debt("tenant:b", p, 20)});
  EXPECT_EQ(this->one(p, "tenant:b", 100).granted, 40u);
}

TYPED_TEST(StoreBehaviour, ADebtTakesTheLevelBelowZeroAndItsRefillPaysItBack) {
  auto p = this->bucket(10, 50);
  this->one(p, "tenant:a", 50);
  this->give_back({debt("tenant:a", p, 10)});  // level -10
  LeaseGrant g = this->one(p, "tenant:a", 5, "h1", 5);
  EXPECT_EQ(g.granted, 0u);
  EXPECT_EQ(g.remaining, 0u);
  // 15 tokens at 10/s: the debt and the ask, 1.5 s after the store's now (less the time
  // between the calls); without the debt, 0.5 s.
  EXPECT_GT(g.wait_until - g.now, 1000ms);
  EXPECT_LE(g.wait_until - g.now, 1500ms);
}

TYPED_TEST(StoreBehaviour, AWindowCountsADebtInItsCurrentWindow) {
  for (PolicyKind kind : {PolicyKind::kFixedWindow, PolicyKind::kSlidingWindow}) {
    auto p = this->windowed(kind, 100);
    const std::string key = kind == PolicyKind::kFixedWindow ? "tenant:f" : "tenant:s";
    this->give_back({debt(key, p, 30)});
    EXPECT_EQ(this->one(p, key, 100).granted, 70u);
    this->give_back({debt(key, p, 30)});  // over the limit now
    EXPECT_EQ(this->one(p, key, 1).granted, 0u);
  }
}

TYPED_TEST(StoreBehaviour, PermitsOweNothing) {
  auto p = this->permits(4);
  this->give_back({debt("gpu:pool", p, 2)});
  EXPECT_EQ(this->one(p, "gpu:pool", 4, "a").granted, 4u);
}

// --- Late refunds (GiveBack::late): a reservation's refund whose lease had ended ---

GiveBack late(std::string key, std::shared_ptr<const ResolvedPolicy> p, std::uint64_t tokens) {
  GiveBack g = debt(std::move(key), std::move(p), tokens);
  g.debt = false;
  g.late = true;
  return g;
}

TYPED_TEST(StoreBehaviour, ALateRefundIsCreditedToTheLevelUpToTheBurst) {
  // The bucket's level, seen whole: without instance shares (on by default, they pace the
  // one instance that drained the bucket at its part and lend only the level above 3/4 of
  // the burst, so its next asks get 0 and 80 here).
  auto q = std::make_shared<ResolvedPolicy>(*this->bucket(kSlow, 100));
  q->fair_instances = false;
  std::shared_ptr<const ResolvedPolicy> p = q;
  this->one(p, "tenant:a", 100);  // level 0
  this->give_back({late("tenant:a", p, 30)});
  EXPECT_EQ(this->one(p, "tenant:a", 100).granted, 30u);
  this->one(p, "tenant:b", 20);                // level 80
  this->give_back({late("tenant:b", p, 50)});  // up to the burst: 20 of it
  EXPECT_EQ(this->one(p, "tenant:b", 200).granted, 100u);
  this->give_back({late("tenant:c", p, 50)});  // no bucket yet: a new one starts full
  EXPECT_EQ(this->one(p, "tenant:c", 200).granted, 100u);
}

TYPED_TEST(StoreBehaviour, ALateRefundToAWindowOrPermitsCreditsNothing) {
  auto w = this->windowed(PolicyKind::kFixedWindow, 50);
  ASSERT_EQ(this->one(w, "tenant:a", 50).granted, 50u);
  this->give_back({late("tenant:a", w, 20)});
  EXPECT_EQ(this->one(w, "tenant:a", 50).granted, 0u);
  auto c = this->permits(4);
  ASSERT_EQ(this->one(c, "gpu:pool", 4, "a").granted, 4u);
  this->give_back({late("gpu:pool", c, 2)});
  EXPECT_EQ(this->one(c, "gpu:pool", 4, "b").granted, 0u);
}

// --- Groups and shares (docs/quotas.md) ---

// A tenant policy in group "gpu" with a budget of group_rate/s and group_burst at once.
std::shared_ptr<const ResolvedPolicy> tenant(const std::string& name, double rate, double burst,
                                             double group_rate, double group_burst,
                                             double weight = 1) {
  auto p = std::make_shared<ResolvedPolicy>();
  p->name = p->match = name;
  p->group = "gpu";
  p->rate = rate;
  p->burst = burst;
  p->weight = weight;
  p->group_rate = group_rate;
  p->group_burst = group_burst;
  return p;
}

TYPED_TEST(StoreBehaviour, AGroupBudgetBoundsItsTenantsTogetherAndSaysSo) {
  auto a = tenant("a", kSlow, 1000, kSlow, 100);
  auto b = tenant("b", kSlow, 1000, kSlow, 100);
  auto g1 = this->one(a, "a", 70);
  auto g2 = this->one(b, "b", 70);
  ASSERT_TRUE(g1.ok && g2.ok) << g1.error << g2.error;
  EXPECT_EQ(g1.granted + g2.granted, 100u) << "the group's burst, whoever asks";
  EXPECT_EQ(g2.limited_by, LimitLevel::kGroup);
  auto g3 = this->one(a, "a", 10);
  EXPECT_EQ(g3.granted, 0u);
  EXPECT_EQ(g3.limited_by, LimitLevel::kGroup);
  EXPECT_GT(g3.wait_until, g3.now);
  // A tenant's own bucket is its own bound.
  auto own = std::make_shared<ResolvedPolicy>(*tenant("c", kSlow, 5, kSlow, 1000));
  own->group = "other";  // a group of its own, with budget to spare
  std::shared_ptr<const ResolvedPolicy> c = own;
  auto g4 = this->one(c, "c", 10);
  EXPECT_EQ(g4.granted, 5u);
  EXPECT_EQ(g4.limited_by, LimitLevel::kKey);
}

TYPED_TEST(StoreBehaviour, ADebtIsChargedToTheGroupBudgetToo) {
  auto a = tenant("a", kSlow, 1000, kSlow, 100);
  auto b = tenant("b", kSlow, 1000, kSlow, 100);
  this->give_back({debt("a", a, 60)});  // the group's budget of 100 goes to 40
  auto g = this->one(b, "b", 100);
  ASSERT_TRUE(g.ok) << g.error;
  EXPECT_EQ(g.granted, 40u) << "another tenant of the group pays for it too";
  EXPECT_EQ(g.limited_by, LimitLevel::kGroup);
  EXPECT_EQ(this->one(a, "a", 100).granted, 0u) << "the group has nothing left";
}

TYPED_TEST(StoreBehaviour, ContendedTenantsArePacedAtTheirWaterFilledShares) {
  // Doorman's example: capacity 120, demands 1000/50/10 -> 60/50/10 per second. Each
  // share may be taken at once up to its part of the group's burst (120 x share / 120).
  auto p = tenant("t", 1000, 1000, 120, 120);
  std::vector<std::pair<std::string, double>> demand = {{"a", 1000}, {"b", 50}, {"c", 10}};
  for (const auto& [key, d] : demand) {  // every tenant's demand is known first
    auto r = this->request(p, key, 0);
    r.demand = d;
    ASSERT_TRUE(this->lease({r})[0].ok);
  }
  std::vector<std::uint64_t> got;
  for (const auto& [key, d] : demand) {
    auto r = this->request(p, key, 1000);
    r.demand = d;
    got.push_back(this->lease({r})[0].granted);
  }
  EXPECT_EQ(got, (std::vector<std::uint64_t>{60, 50, 10}));
}

TYPED_TEST(StoreBehaviour, FairInstancesGetPartsInProportionToTheirDemand) {
  auto q = std::make_shared<ResolvedPolicy>(*this->bucket(100, 100));
  q->fair_instances = true;
  std::shared_ptr<const ResolvedPolicy> p = q;
  for (auto [holder, d] : {std::pair{"h1", 300.0}, std::pair{"h2", 100.0}}) {
    auto r = this->request(p, "tenant:a", 0, holder);
    r.demand = d;
    ASSERT_TRUE(this->lease({r})[0].ok);
  }
  // h1 wants three quarters of the demand: it may take 75 of the burst of 100, h2 25.
  auto r1 = this->request(p, "tenant:a", 1000, "h1");
  r1.demand = 300;
  auto r2 = this->request(p, "tenant:a", 1000, "h2");
  r2.demand = 100;
  auto g = this->lease({r1, r2});
  EXPECT_EQ(g[0].granted, 75u);
  EXPECT_EQ(g[1].granted, 25u);
}

}  // namespace
}  // namespace tollgate
