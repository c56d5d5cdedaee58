// A circuit breaker per shard, against real redis-servers: a hung shard (SIGSTOP) is
// found by the command timeout, its breaker opens and its keys fail at once while the
// other shards keep answering; after SIGCONT and the break duration a probe closes it.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "facade/store_factory.h"
#include "redis_server.h"
#include "store/redis/redis_store.h"
#include "tollgate/manual_clock.h"

namespace tollgate {
namespace {

using namespace std::chrono_literals;
using resilience::BreakerState;
using Steady = std::chrono::steady_clock;

std::vector<LeaseGrant> lease(QuotaStore& store, std::vector<LeaseRequest> batch) {
  std::promise<std::vector<LeaseGrant>> p;
  auto f = p.get_future();
  store.lease(std::move(batch), [&p](std::vector<LeaseGrant> g) { p.set_value(std::move(g)); });
  EXPECT_EQ(f.wait_for(15s), std::future_status::ready);
  return f.get();
}

// The breaker is timed on the clock the Limiter gives the store (make_store), not on the
// steady clock: a break of an hour is over as soon as that clock says so.
TEST(ShardBreaker, TheBreakIsTimedOnTheClockTheStoreIsGiven) {
  int port = 0;
  {
    testing::RedisServer s;
    port = s.port();
  }  // stopped: nothing listens there now
  Config config;
  config.store.type = "redis";
  config.store.shards = {"redis://127.0.0.1:" + std::to_string(port)};
  config.store.breaker.minimum_throughput = 1;
  config.store.breaker.break_duration = 1h;
  auto clock = std::make_shared<ManualClock>();
  std::shared_ptr<QuotaStore> store = make_store(config, clock);
  auto p = std::make_shared<ResolvedPolicy>();
  p->name = p->match = "tenants";
  p->rate = 10;
  LeaseRequest r;
  r.key = "tenant:a";
  r.policy = p;
  r.want = 1;
  r.holder = "t";
  r.request_id = "t:1";
  r.ttl = 2s;
  EXPECT_FALSE(lease(*store, {r})[0].ok);
  ASSERT_EQ(store->breaker_states().at(0), BreakerState::kOpen);
  clock->advance(1h - 1ms);
  EXPECT_EQ(store->breaker_states().at(0), BreakerState::kOpen);
  clock->advance(1ms);
  EXPECT_EQ(store->breaker_states().at(0), BreakerState::kHalfOpen);
}

TEST(ShardBreaker, AHungShardIsLeftBehindAndTakenBackAfterTheBreak) {
  testing::RedisServer a, b, c;
  StoreConfig sc;
  sc.type = "redis";
  sc.shards = {a.url(), b.url(), c.url()};
  sc.command_timeout = 200ms;
  sc.breaker.minimum_throughput = 3;
  sc.breaker.break_duration = 1s;
  redis::RedisStore store(sc);
  auto p = std::make_shared<ResolvedPolicy>();
  p->name = p->match = "tenants";
  p->rate = 1e6;
  p->burst = 1e6;
  // One key per shard.
  std::vector<std::string> keys(3);
  for (int i = 0, found = 0; found < 3; ++i) {
    const std::string k = "tenant:" + std::to_string(i);
    auto& slot = keys[store.shard_of(*p, k)];
    if (slot.empty()) {
      slot = k;
      ++found;
    }
  }
  int seq = 0;
  auto ask_all = [&] {
    std::vector<LeaseRequest> batch;
    for (const auto& k : keys) {
      LeaseRequest r;
      r.key = k;
      r.policy = p;
      r.want = 1;
      r.holder = "t";
      r.request_id = "t:" + std::to_string(++seq);
      r.ttl = 2s;
      batch.push_back(std::move(r));
    }
    return lease(store, std::move(batch));
  };
  for (auto& g : ask_all()) ASSERT_TRUE(g.ok) << g.error;

  b.pause();
  const auto t_stop = Steady::now();
  Steady::duration opened_after{};
  while (Steady::now() - t_stop < 10s) {
    auto g = ask_all();
    EXPECT_TRUE(g[0].ok) << "shard 0 must stay untouched: " << g[0].error;
    EXPECT_TRUE(g[2].ok) << "shard 2 must stay untouched: " << g[2].error;
    if (store.breaker_state(1) == BreakerState::kOpen) {
      opened_after = Steady::now() - t_stop;
      break;
    }
  }
  ASSERT_EQ(store.breaker_state(1), BreakerState::kOpen) << "never opened";
  EXPECT_LT(opened_after, 2s);
  // Open: the hung shard's keys fail at once, not after a timeout.
  const auto t0 = Steady::now();
  auto g = ask_all();
  EXPECT_LT(Steady::now() - t0, 100ms);
  EXPECT_FALSE(g[1].ok);
  EXPECT_NE(g[1].error.find("circuit open"), std::string::npos) << g[1].error;
  EXPECT_TRUE(g[0].ok && g[2].ok);

  b.resume();
  const auto t_cont = Steady::now();
  Steady::duration back_after{};
  while (Steady::now() - t_cont < 10s) {
    auto r = ask_all();
    if (r[1].ok) {
      back_after = Steady::now() - t_cont;
      break;
    }
    std::this_thread::sleep_for(20ms);  // polling a condition, bounded by the loop
  }
  EXPECT_EQ(store.breaker_state(1), BreakerState::kClosed);
  EXPECT_LT(back_after, 2s + sc.breaker.break_duration);
  EXPECT_GE(store.counters().short_circuited, 1u);
}

TEST(ShardBreaker, AKilledShardRestartedEmptyIsReconnectedAndServesAgain) {
  testing::RedisServer s;
  StoreConfig sc;
  sc.type = "redis";
  sc.shards = {s.url()};
  sc.command_timeout = 300ms;
  sc.connect_timeout = 300ms;
  sc.breaker.minimum_throughput = 3;
  sc.breaker.break_duration = 500ms;
  redis::RedisStore store(sc);
  auto p = std::make_shared<ResolvedPolicy>();
  p->name = p->match = "tenants";
  p->rate = 1;
  p->burst = 100;
  int seq = 0;
  auto ask = [&](std::uint64_t want) {
    LeaseRequest r;
    r.key = "tenant:a";
    r.policy = p;
    r.want = want;
    r.holder = "t";
    r.request_id = "t:" + std::to_string(++seq);
    r.ttl = 2s;
    return lease(store, {r})[0];
  };
  ASSERT_EQ(ask(60).granted, 60u);
  s.stop();  // killed: its data is gone with it
  EXPECT_FALSE(ask(1).ok);
  s.start();  // the same port, empty
  const auto t0 = Steady::now();
  LeaseGrant g;
  while (Steady::now() - t0 < 10s) {
    g = ask(10);
    if (g.ok) break;
    std::this_thread::sleep_for(20ms);  // polling a condition, bounded by the loop
  }
  ASSERT_TRUE(g.ok) << g.error;
  EXPECT_EQ(g.granted, 10u);  // an empty server: a new, full bucket
  EXPECT_LT(Steady::now() - t0, 5s);
  EXPECT_EQ(store.counters().reloads, 0u) << "the scripts come with the reconnect, not by NOSCRIPT";
}

}  // namespace
}  // namespace tollgate

namespace tollgate {
namespace {

TEST(ShardBulkhead, TenThousandColdKeysAtOnceNeverPutMoreThanTheLimitOnTheWire) {
  testing::RedisServer s;
  StoreConfig sc;
  sc.type = "redis";
  sc.shards = {s.url()};
  sc.bulkhead.max_in_flight = 1000;
  sc.bulkhead.max_queue = 2000;
  redis::RedisStore store(sc);
  auto p = std::make_shared<ResolvedPolicy>();
  p->name = p->match = "tenants";
  p->rate = 100;
  p->burst = 100;
  std::vector<LeaseRequest> batch;
  for (int i = 0; i < 10'000; ++i) {
    LeaseRequest r;
    r.key = "tenant:" + std::to_string(i);
    r.policy = p;
    r.want = 5;
    r.holder = "t";
    r.request_id = "t:" + std::to_string(i);
    r.ttl = 2s;
    batch.push_back(std::move(r));
  }
  const auto grants = lease(store, std::move(batch));
  std::size_t served = 0, refused = 0;
  for (const auto& g : grants) {
    if (g.ok) {
      ++served;
      EXPECT_EQ(g.granted, 5u);
    } else if (g.error.find("bulkhead full") != std::string::npos) {
      ++refused;
    } else {
      ADD_FAILURE() << g.error;
    }
  }
  EXPECT_EQ(served, 3000u);  // 1000 on the wire, 2000 queued behind them
  EXPECT_EQ(refused, 7000u);
  const auto c = store.counters();
  EXPECT_EQ(c.bulkhead_rejected, 7000u);
  EXPECT_LE(c.most_in_flight, 1000u);
  EXPECT_EQ(c.most_in_flight, 1000u);
  EXPECT_EQ(std::stoi(s.cli({"DBSIZE"})), 3000);  // 3000 buckets (each holds its request record)
}

}  // namespace
}  // namespace tollgate
