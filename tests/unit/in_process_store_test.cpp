// The embedded store: batches, idempotent request ids, give-backs that keep their
// expiry, forgetting idle buckets, and the admission bound under many holders.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "tollgate/manual_clock.h"
#include "tollgate/quota_store.h"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<const ResolvedPolicy> bucket_policy(double rate, double burst) {
  auto p = std::make_shared<ResolvedPolicy>();
  p->name = p->match = "tenants";
  p->rate = rate;
  p->burst = burst;
  return p;
}

LeaseRequest request(std::string key, std::shared_ptr<const ResolvedPolicy> p, std::uint64_t want,
                     std::string id = {}, std::string holder = "h1") {
  LeaseRequest r;
  r.key = std::move(key);
  r.policy = std::move(p);
  r.want = want;
  r.request_id = std::move(id);
  r.holder = std::move(holder);
  r.ttl = 2s;
  return r;
}

class InProcessStoreTest : public ::testing::Test {
 protected:
  std::vector<LeaseGrant> lease(std::vector<LeaseRequest> batch) {
    std::vector<LeaseGrant> out;
    bool called = false;
    store.lease(std::move(batch), [&](std::vector<LeaseGrant> g) {
      out = std::move(g);
      called = true;
    });
    EXPECT_TRUE(called) << "the in-process store answers inline";
    return out;
  }

  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  InProcessStore store{clock};
};

TEST_F(InProcessStoreTest, AnswersEveryRequestOfABatchInOrder) {
  auto p = bucket_policy(10, 100);
  auto g =
      lease({request("tenant:a", p, 30), request("tenant:b", p, 500), request("tenant:a", p, 80)});
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].granted, 30u);
  EXPECT_EQ(g[1].granted, 100u);  // at most the burst
  EXPECT_EQ(g[2].granted, 70u);   // what a's bucket has left
  EXPECT_EQ(g[0].now, clock->now());
  EXPECT_EQ(g[0].expires_at, clock->now() + 2s);
  EXPECT_EQ(store.totals().keys, 2u);
  EXPECT_EQ(store.totals().granted, 200u);
}

TEST_F(InProcessStoreTest, RetryWithTheSameRequestIdGetsTheFirstAnswer) {
  auto p = bucket_policy(10, 100);
  auto first = lease({request("tenant:a", p, 60, "inst:1")});
  auto retry = lease({request("tenant:a", p, 60, "inst:1")});
  EXPECT_EQ(first[0].granted, 60u);
  EXPECT_EQ(retry[0].granted, 60u);
  EXPECT_EQ(retry[0].expires_at, first[0].expires_at);
  EXPECT_EQ(store.totals().granted, 60u) << "granted twice for one request id";
  auto next = lease({request("tenant:a", p, 60, "inst:2")});
  EXPECT_EQ(next[0].granted, 40u);
}

TEST_F(InProcessStoreTest, RequestIdsAreForgottenAfterTwoTtls) {
  auto p = bucket_policy(1000, 100);
  lease({request("tenant:a", p, 100, "inst:1")});
  clock->advance(4001ms);
  auto again = lease({request("tenant:a", p, 100, "inst:1")});
  EXPECT_EQ(store.totals().leases, 2u);
  EXPECT_EQ(again[0].now, clock->now());
}

// Each instance's latest request per key is remembered (docs/redis.md, "Request records"):
// the answers held follow the keys and their instances, not the leases.
TEST_F(InProcessStoreTest, RemembersOneAnswerPerKeyAndInstance) {
  auto p = bucket_policy(1000, 100000);
  int id = 0;
  for (int i = 0; i < 300; ++i) {
    for (const char* key : {"tenant:a", "tenant:b"}) {
      lease({request(key, p, 1, "inst:" + std::to_string(++id), i % 3 == 0 ? "h1" : "h2")});
    }
  }
  EXPECT_EQ(store.totals().leases, 600u);
  EXPECT_EQ(store.totals().answers, 4u);
  // The latest request of each is still answered from its record.
  lease({request("tenant:b", p, 1, "inst:" + std::to_string(id), "h2")});
  EXPECT_EQ(store.totals().leases, 600u) << "the retry was decided again";
}

TEST_F(InProcessStoreTest, GiveBackIsCreditedOnlyWhileTheLeaseLives) {
  auto p = bucket_policy(1, 100);
  auto g = lease({request("tenant:a", p, 100)});
  store.give_back({GiveBack{"tenant:a", p, 40, g[0].expires_at, "h1"}});
  clock->advance(3s);
  store.give_back({GiveBack{"tenant:a", p, 10, g[0].expires_at, "h1"}});
  auto t = store.totals();
  EXPECT_EQ(t.given_back, 40u);
  EXPECT_EQ(t.dropped, 10u);
}

TEST_F(InProcessStoreTest, PoliciesWithTheSameKeyHaveSeparateBuckets) {
  auto a = bucket_policy(10, 100);
  auto b = std::make_shared<ResolvedPolicy>(*a);
  b->name = "other";
  EXPECT_EQ(lease({request("k", a, 100)})[0].granted, 100u);
  EXPECT_EQ(lease({request("k", b, 100)})[0].granted, 100u);
}

TEST_F(InProcessStoreTest, IdleBucketsAreForgotten) {
  auto p = bucket_policy(1000, 10);
  std::vector<LeaseRequest> batch;
  for (int i = 0; i < 2000; ++i) batch.push_back(request("tenant:" + std::to_string(i), p, 1));
  lease(std::move(batch));
  EXPECT_EQ(store.totals().keys, 2000u);
  // Every bucket full again, and its instances' records a TTL old: a bucket with instance
  // shares (the default) is idle only then (a plain one once full: below).
  clock->advance(2s);
  lease({request("tenant:new", p, 1)});
  EXPECT_EQ(store.totals().keys, 1u);
}

TEST_F(InProcessStoreTest, IdlePlainBucketsAreForgottenOnceFull) {
  auto p = std::make_shared<ResolvedPolicy>(*bucket_policy(1000, 10));
  p->fair_instances = false;  // first come, first served: no instance records
  std::vector<LeaseRequest> batch;
  for (int i = 0; i < 2000; ++i) batch.push_back(request("tenant:" + std::to_string(i), p, 1));
  lease(std::move(batch));
  EXPECT_EQ(store.totals().keys, 2000u);
  clock->advance(1s);  // every bucket full again
  lease({request("tenant:new", p, 1)});
  EXPECT_EQ(store.totals().keys, 1u);
}

TEST_F(InProcessStoreTest, RequestWithoutPolicyFailsThatKeyOnly) {
  auto p = bucket_policy(10, 100);
  auto g = lease({request("tenant:a", nullptr, 5), request("tenant:b", p, 5)});
  EXPECT_FALSE(g[0].ok);
  EXPECT_FALSE(g[0].error.empty());
  EXPECT_TRUE(g[1].ok);
  EXPECT_EQ(g[1].granted, 5u);
}

// The bound: whatever several holders ask, with give-backs mixed in, the tokens granted
// that are still spendable in [t, t+T] never exceed burst + rate × (T + ttl).
TEST_F(InProcessStoreTest, ManyHoldersNeverGetMoreThanTheBound) {
  const double rate = 500, burst = 200;
  auto p = bucket_policy(rate, burst);
  std::mt19937 rng(7);
  struct Held {
    std::uint64_t tokens;
    Nanos expires_at;
  };
  std::vector<Held> held;
  std::uint64_t granted_total = 0;
  const Nanos start = clock->now();
  for (int step = 0; step < 20'000; ++step) {
    clock->advance(std::chrono::microseconds(rng() % 2000));
    auto g = lease({request("tenant:a", p, 1 + rng() % 150, {}, "h" + std::to_string(rng() % 8))});
    if (g[0].granted > 0) held.push_back({g[0].granted, g[0].expires_at});
    granted_total += g[0].granted;
    if (!held.empty() && rng() % 3 == 0) {  // give some back, keeping their expiry
      Held& h = held[rng() % held.size()];
      const std::uint64_t back = h.tokens / 2;
      h.tokens -= back;
      store.give_back({GiveBack{"tenant:a", p, back, h.expires_at, "h1"}});
    }
  }
  const double elapsed = std::chrono::duration<double>(clock->now() - start).count();
  const auto t = store.totals();
  const double net = static_cast<double>(t.granted) - static_cast<double>(t.given_back);
  EXPECT_LE(net, burst + rate * (elapsed + 2.0));
  EXPECT_GE(net, 0.9 * rate * elapsed) << "demand exceeded supply; most should be served";
}

TEST_F(InProcessStoreTest, ConcurrentCallersShareOneBucketExactly) {
  auto p = std::make_shared<ResolvedPolicy>();
  p->name = p->match = "w";
  p->kind = PolicyKind::kFixedWindow;
  p->limit = 10'000;
  p->window = 3600s;  // one window for the whole test
  std::vector<std::thread> threads;
  std::atomic<std::uint64_t> got{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        store.lease({request("tenant:a", p, 3, {}, "h" + std::to_string(t))},
                    [&](std::vector<LeaseGrant> g) { got += g[0].granted; });
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(got.load(), 10'000u);  // 24 000 asked; exactly the limit granted
}

}  // namespace
}  // namespace tollgate
