// The InProcessStore's bucket math (bucket_math.cpp) and the Lua (lease.lua) are one
// design: the same sequence of lease requests gets the same answers from both. Random
// sequences over fair instance shares: exactly, with buckets that refill too slowly to
// matter during a test (Redis has only its own clock), and within what refills between
// the two calls, with a bucket that refills.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "redis_server.h"
#include "store/redis/redis_store.h"
#include "tollgate/quota_store.h"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

std::vector<LeaseGrant> lease(QuotaStore& store, std::vector<LeaseRequest> batch) {
  std::promise<std::vector<LeaseGrant>> p;
  auto f = p.get_future();
  store.lease(std::move(batch), [&p](std::vector<LeaseGrant> g) { p.set_value(std::move(g)); });
  EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
  return f.get();
}

// One redis-server's store and an in-process store, side by side.
struct TwoStores {
  static StoreConfig redis_config(const testing::RedisServer& server) {
    StoreConfig c;
    c.type = "redis";
    c.shards = {server.url()};
    return c;
  }
  testing::RedisServer server;
  redis::RedisStore redis{redis_config(server)};
  InProcessStore in_process;
};

TEST(StoreAgreement, FairInstanceGrantsAndWhatIsLeftAgree) {
  TwoStores stores;
  redis::RedisStore& redis_store = stores.redis;
  InProcessStore& in_process = stores.in_process;
  std::mt19937_64 rng(7);
  int id = 0;
  for (int round = 0; round < 4; ++round) {
    auto q = std::make_shared<ResolvedPolicy>();
    q->name = q->match = "tenants";
    q->rate = 0.001;
    q->burst = round % 2 == 0 ? 10000 : 1000;
    q->fair_instances = true;
    std::shared_ptr<const ResolvedPolicy> p = q;
    const std::string key = "tenant:" + std::to_string(round);
    for (int step = 0; step < 200; ++step) {
      std::vector<LeaseRequest> batch;
      const int n = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < n; ++k) {
        LeaseRequest r;
        r.key = key;
        r.policy = p;
        r.holder = "h" + std::to_string(rng() % 5);
        r.want = rng() % 4 == 0 ? 0 : rng() % 3000;
        r.min = 1;
        r.demand = static_cast<double>(rng() % 2000);
        r.held = rng() % 300;
        r.request_id = r.holder + ":" + std::to_string(++id);
        r.ttl = 16s;
        batch.push_back(r);
      }
      const auto a = lease(in_process, batch);
      const auto b = lease(redis_store, batch);
      ASSERT_EQ(a.size(), b.size());
      for (std::size_t k = 0; k < a.size(); ++k) {
        SCOPED_TRACE("round " + std::to_string(round) + " step " + std::to_string(step) +
                     " holder " + batch[k].holder + " want " + std::to_string(batch[k].want) +
                     " demand " + std::to_string(batch[k].demand));
        ASSERT_TRUE(b[k].ok) << b[k].error;
        EXPECT_EQ(a[k].granted, b[k].granted);
        EXPECT_NEAR(static_cast<double>(a[k].remaining), static_cast<double>(b[k].remaining), 1.0);
        EXPECT_EQ(a[k].limited_by, b[k].limited_by);
        if (a[k].granted != b[k].granted) return;
      }
    }
  }
}

// As the calibration's fleet has it (docs/performance.md): a bucket of 5,000/s shared by
// eight instances, each asking for a horizon of its demand every few tens of
// milliseconds. The stores' clocks differ by a call's latency, so grants agree within
// what refills while the two calls run.
TEST(StoreAgreement, RefillingFairInstanceGrantsAgree) {
  TwoStores stores;
  redis::RedisStore& redis_store = stores.redis;
  InProcessStore& in_process = stores.in_process;
  std::mt19937_64 rng(11);
  auto q = std::make_shared<ResolvedPolicy>();
  q->name = q->match = "tenants";
  q->rate = 5000;
  q->burst = 5000;
  q->fair_instances = true;
  std::shared_ptr<const ResolvedPolicy> p = q;
  int id = 0;
  for (int step = 0; step < 150; ++step) {
    LeaseRequest r;
    r.key = "tenant:x";
    r.policy = p;
    r.holder = "h" + std::to_string(rng() % 8);
    r.demand = 1000 + static_cast<double>(rng() % 500);
    r.want = static_cast<std::uint64_t>(r.demand * 4);
    r.min = 1;
    r.held = rng() % 200;
    r.request_id = r.holder + ":" + std::to_string(++id);
    r.ttl = 16s;
    const auto t0 = std::chrono::steady_clock::now();
    const auto a = lease(in_process, {r});
    const auto b = lease(redis_store, {r});
    // The two clocks read at most this far apart: what refills meanwhile may differ, and
    // so may the levels after it (a fiftieth of the burst, far below a divergence such as
    // `remaining` after or before the grant: a part, 1,250 here).
    const double apart =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double slack = q->rate * apart + q->burst / 50;
    SCOPED_TRACE("step " + std::to_string(step) + " holder " + r.holder);
    ASSERT_TRUE(b[0].ok) << b[0].error;
    EXPECT_NEAR(static_cast<double>(a[0].granted), static_cast<double>(b[0].granted), slack);
    EXPECT_NEAR(static_cast<double>(a[0].remaining), static_cast<double>(b[0].remaining), slack);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 60));
  }
}

// A group's bucket emptied by one instance of a key: the other instance is told the same
// turn by both stores (its part, half of the group's 10/s, refilling its ask of 100, at
// most the group's fill time: 2.5 s), not the 100 ms or less in which the group holds a
// token again.
TEST(StoreAgreement, AnInstanceFindingTheGroupEmptiedGetsTheSameTurn) {
  TwoStores stores;
  auto q = std::make_shared<ResolvedPolicy>();
  q->name = q->match = "tenants";
  q->rate = q->burst = 1000;
  q->fair_instances = true;
  q->group = "g";
  q->group_rate = 10;
  q->group_burst = 25;
  std::shared_ptr<const ResolvedPolicy> p = q;
  int id = 0;
  auto ask = [&](const std::string& holder) {
    LeaseRequest r;
    r.key = "tenant:a";
    r.policy = p;
    r.holder = holder;
    r.want = 100;
    r.min = 1;
    r.demand = 100;
    r.request_id = holder + ":" + std::to_string(++id);
    r.ttl = 16s;
    return r;
  };
  for (QuotaStore* store :
       {static_cast<QuotaStore*>(&stores.in_process), static_cast<QuotaStore*>(&stores.redis)}) {
    SCOPED_TRACE(store == &stores.redis ? "redis" : "in-process");
    const auto first = lease(*store, {ask("h1")});
    ASSERT_TRUE(first[0].ok) << first[0].error;
    EXPECT_EQ(first[0].granted, 25u);
    const auto second = lease(*store, {ask("h2")});
    ASSERT_TRUE(second[0].ok) << second[0].error;
    EXPECT_EQ(second[0].granted, 0u);
    EXPECT_NEAR(std::chrono::duration<double>(second[0].wait_until - second[0].now).count(), 2.5,
                0.001);
  }
}

}  // namespace
}  // namespace tollgate
