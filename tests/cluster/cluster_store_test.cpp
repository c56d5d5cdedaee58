// The cluster store on a real Redis Cluster (3 primaries, 3 replicas on loopback):
// routing by slot, a busy group's slot moved under load, a primary killed and its
// replica promoted, the allowance a failover can cause with and without WAIT, and a
// cluster that answers CLUSTERDOWN. Every check counts tokens exactly: what the store
// granted against what the bucket lost.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "redis_cluster.h"
#include "store/redis/cluster_map.h"
#include "store/redis/keys.h"
#include "store/redis/redis_cluster.h"
#include "store/redis/redis_store.h"

namespace tollgate {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr double kSlow = 0.001;  // tokens per second: no refill within a test
constexpr std::uint64_t kBurst = 10'000'000;

std::shared_ptr<const ResolvedPolicy> bucket(std::string group = "") {
  auto p = std::make_shared<ResolvedPolicy>();
  p->name = p->match = "tenants";
  p->rate = kSlow;
  p->burst = kBurst;
  p->group = std::move(group);
  // The bucket's level, seen whole (level() reads it with an ask for nothing): instance
  // shares, on by default, pace an instance that drained the bucket at its part and report
  // that part. These tests count grants and levels across slot moves and failovers.
  p->fair_instances = false;
  return p;
}

StoreConfig cluster_config(const testing::RedisCluster& cluster, unsigned wait_replicas = 0) {
  StoreConfig c;
  c.type = "redis_cluster";
  c.nodes = {cluster.urls()[0]};
  c.command_timeout = 250ms;
  c.connect_timeout = 250ms;
  c.wait_replicas = wait_replicas;
  c.wait_timeout = 50ms;
  return c;
}

class Leaser {
 public:
  explicit Leaser(std::shared_ptr<QuotaStore> store, std::string holder = "h")
      : store_(std::move(store)), holder_(std::move(holder)) {}
  LeaseRequest request(const std::shared_ptr<const ResolvedPolicy>& p, const std::string& key,
                       std::uint64_t want) {
    LeaseRequest r;
    r.key = key;
    r.policy = p;
    r.want = want;
    r.min = want == 0 ? 0 : 1;
    r.holder = holder_;
    r.request_id = holder_ + ":" + std::to_string(next_++);
    r.ttl = 2s;
    return r;
  }
  std::vector<LeaseGrant> lease(std::vector<LeaseRequest> batch) {
    auto p = std::make_shared<std::promise<std::vector<LeaseGrant>>>();
    auto f = p->get_future();
    store_->lease(std::move(batch), [p](std::vector<LeaseGrant> g) { p->set_value(std::move(g)); });
    if (f.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "no answer within 10 s";
      return {};
    }
    return f.get();
  }
  LeaseGrant one(const LeaseRequest& r) {
    auto g = lease({r});
    return g.empty() ? LeaseGrant{false, "no answer"} : g[0];
  }

 private:
  std::shared_ptr<QuotaStore> store_;
  std::string holder_;
  int next_ = 1;
};

// Leases `want` tokens of one group's bucket back to back on its own thread, recording
// every answer, until stopped.
class Load {
 public:
  Load(std::shared_ptr<QuotaStore> store, std::shared_ptr<const ResolvedPolicy> policy,
       std::string key, std::uint64_t want, std::string holder)
      : leaser_(std::move(store), std::move(holder)),
        policy_(std::move(policy)),
        key_(std::move(key)) {
    thread_ = std::thread([this, want] {
      while (!stop_) {
        const auto r = leaser_.request(policy_, key_, want);
        const auto g = leaser_.one(r);
        std::lock_guard lk(mu_);
        const auto now = Steady::now();
        if (g.ok) {
          granted_ += g.granted;
          ++ok_;
          if (last_ok_ != Steady::time_point{}) gap_ = std::max(gap_, now - last_ok_);
          last_ok_ = now;
          answered_.push_back({r, g});
        } else {
          ++failed_;
          last_error_ = g.error;
        }
      }
    });
  }
  ~Load() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t granted() {
    std::lock_guard lk(mu_);
    return granted_;
  }
  std::uint64_t oks() {
    std::lock_guard lk(mu_);
    return ok_;
  }
  Steady::time_point last_ok() {
    std::lock_guard lk(mu_);
    return last_ok_;
  }
  // Bounded wait for the next successful lease after `t`.
  bool ok_after(Steady::time_point t, std::chrono::milliseconds within) {
    const auto deadline = Steady::now() + within;
    while (Steady::now() < deadline) {
      if (last_ok() > t) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }
  std::chrono::milliseconds longest_gap() {
    std::lock_guard lk(mu_);
    return std::chrono::duration_cast<std::chrono::milliseconds>(gap_);
  }
  std::uint64_t failed() {
    std::lock_guard lk(mu_);
    return failed_;
  }
  std::string last_error() {
    std::lock_guard lk(mu_);
    return last_error_;
  }
  std::vector<std::pair<LeaseRequest, LeaseGrant>> answered() {
    std::lock_guard lk(mu_);
    return answered_;
  }

 private:
  Leaser leaser_;
  std::shared_ptr<const ResolvedPolicy> policy_;
  std::string key_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::uint64_t granted_ = 0, ok_ = 0, failed_ = 0;
  std::string last_error_;
  Steady::time_point last_ok_{};
  Steady::duration gap_{};
  std::vector<std::pair<LeaseRequest, LeaseGrant>> answered_;
  std::thread thread_;
};

// The bucket's level as the store sees it now: a lease of nothing.
std::uint64_t level(Leaser& l, const std::shared_ptr<const ResolvedPolicy>& p,
                    const std::string& key) {
  for (int i = 0; i < 200; ++i) {
    auto g = l.one(l.request(p, key, 0));
    if (g.ok) return g.remaining;
    std::this_thread::sleep_for(10ms);
  }
  ADD_FAILURE() << "the store never answered a lease of 0";
  return 0;
}

// One lease of `want` for each of `count` keys <prefix><i>, each the latest request of l's
// instance for its key (the one a store remembers, docs/redis.md "Request records").
std::vector<std::pair<LeaseRequest, LeaseGrant>> lease_each(
    Leaser& l, const std::shared_ptr<const ResolvedPolicy>& p, const std::string& prefix, int count,
    std::uint64_t want) {
  std::vector<std::pair<LeaseRequest, LeaseGrant>> answered;
  for (int i = 0; i < count; ++i) {
    const auto r = l.request(p, prefix + std::to_string(i), want);
    const auto g = l.one(r);
    EXPECT_TRUE(g.ok) << g.error;
    answered.emplace_back(r, g);
  }
  return answered;
}

// The summed levels of keys <prefix>0 … <prefix><count - 1>.
std::uint64_t levels(Leaser& l, const std::shared_ptr<const ResolvedPolicy>& p,
                     const std::string& prefix, int count) {
  std::uint64_t sum = 0;
  for (int i = 0; i < count; ++i) sum += level(l, p, prefix + std::to_string(i));
  return sum;
}

std::size_t other_primary(const testing::RedisCluster& cluster, std::size_t than) {
  for (const auto& v : cluster.view()) {
    if (v.primary && !v.failed && v.index != than) return v.index;
  }
  throw std::runtime_error("no other primary");
}

TEST(ClusterStore, SendsEachGroupToItsSlotsPrimaryFoundFromAReplica) {
  testing::RedisCluster cluster;
  StoreConfig c = cluster_config(cluster);
  const int replica = cluster.replica_of(static_cast<std::size_t>(cluster.owner_of(0)));
  ASSERT_GE(replica, 0);
  c.nodes = {cluster.node(static_cast<std::size_t>(replica)).url()};  // a replica as the seed
  auto store = std::make_shared<redis::RedisStore>(c);
  Leaser l(store);
  auto p = bucket();
  std::vector<LeaseRequest> batch;
  for (int i = 0; i < 30; ++i) batch.push_back(l.request(p, "tenant:" + std::to_string(i), 5));
  for (const auto& g : l.lease(batch)) ASSERT_TRUE(g.ok) << g.error;
  for (int i = 0; i < 30; ++i) {
    const std::string key = "tenant:" + std::to_string(i);
    const std::string bucket_key = redis::bucket_key(key, "tenants", key);
    const int slot = cluster.slot_of(bucket_key);
    ASSERT_EQ(slot, redis::group_slot(key));
    const auto owner = static_cast<std::size_t>(cluster.owner_of(slot));
    EXPECT_EQ(cluster.cli(owner, {"EXISTS", bucket_key}), "1") << key;
  }
  const auto n = store->counters();
  EXPECT_EQ(n.redirects, 0u);  // routed by the slot map, not by MOVED
  EXPECT_GE(n.topology_refreshes, 1u);
  std::set<std::size_t> shards;
  for (int i = 0; i < 30; ++i) shards.insert(store->shard_of(*p, "tenant:" + std::to_string(i)));
  EXPECT_EQ(shards.size(), 3u);  // one breaker and bulkhead per primary
  // Scripts flushed on every node: each primary answers NOSCRIPT once, loads them again.
  for (std::size_t i = 0; i < cluster.size(); ++i) cluster.cli(i, {"SCRIPT", "FLUSH"});
  batch.clear();
  for (int i = 0; i < 30; ++i) batch.push_back(l.request(p, "tenant:" + std::to_string(i), 5));
  for (const auto& g : l.lease(batch)) ASSERT_TRUE(g.ok) << g.error;
  EXPECT_EQ(store->counters().reloads, 3u);
}

TEST(ClusterStore, ABusyGroupsSlotMovesUnderLoadWithNoGrantLostOrDoubled) {
  testing::RedisCluster cluster;
  auto store = std::make_shared<redis::RedisStore>(cluster_config(cluster));
  auto p = bucket("busy");
  const int slot = redis::group_slot("busy");
  Leaser l(store, "check");
  ASSERT_EQ(level(l, p, "tenant:a"), kBurst);
  // Leases answered by the slot's first owner, to be sent again after the move: one per
  // key, each the latest request of its instance for that key, the one a store remembers
  // (docs/redis.md, "Request records").
  Leaser retried(store, "retried");
  const auto first_answers = lease_each(retried, p, "tenant:c", 50, 7);
  const std::uint64_t c_left = levels(l, p, "tenant:c", 50);
  {
    Load a(store, p, "tenant:a", 7, "a");
    Load b(store, p, "tenant:b", 3, "b");
    ASSERT_TRUE(a.ok_after(Steady::now(), 5s));
    const auto from = static_cast<std::size_t>(cluster.owner_of(slot));
    const auto to = other_primary(cluster, from);
    std::this_thread::sleep_for(200ms);  // load before the move (a duration, not a wait)
    const auto moved_at = Steady::now();
    const auto before_move = a.answered().size();
    cluster.move_slot(slot, to);
    const auto move_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - moved_at);
    ASSERT_TRUE(a.ok_after(Steady::now(), 5s));
    ASSERT_TRUE(b.ok_after(Steady::now(), 5s));
    std::this_thread::sleep_for(200ms);
    a.stop();
    b.stop();
    EXPECT_EQ(cluster.owner_of(slot), static_cast<int>(to));
    const auto granted = a.granted() + b.granted();
    const auto left = level(l, p, "tenant:a") + level(l, p, "tenant:b");
    // Two buckets of kBurst: every token that left a bucket was granted once, and
    // every grant came out of a bucket (none from a fresh bucket on the new owner).
    EXPECT_EQ(granted + left, 2 * kBurst);
    // A retried request id is answered from its first answer, now on the new owner: the 50
    // answered before the move.
    ASSERT_GE(before_move, 50u);
    for (const auto& [r, g] : first_answers) {
      const auto again = retried.one(r);
      ASSERT_TRUE(again.ok) << again.error;
      EXPECT_EQ(again.granted, g.granted);
      EXPECT_EQ(again.expires_at, g.expires_at);
    }
    EXPECT_EQ(levels(l, p, "tenant:c", 50), c_left) << "a retry was granted again";
    EXPECT_EQ(level(l, p, "tenant:a") + level(l, p, "tenant:b"), left);
    const auto n = store->counters();
    std::printf(
        "slot %d moved in %lld ms under load: %llu leases, %llu failed (%s), longest "
        "gap %lld ms (a) / %lld ms (b), redirects %llu, TRYAGAIN/CLUSTERDOWN resends "
        "%llu, slot maps read %llu\n",
        slot, static_cast<long long>(move_ms.count()),
        static_cast<unsigned long long>(a.oks() + b.oks()),
        static_cast<unsigned long long>(a.failed() + b.failed()), a.last_error().c_str(),
        static_cast<long long>(a.longest_gap().count()),
        static_cast<long long>(b.longest_gap().count()),
        static_cast<unsigned long long>(n.redirects),
        static_cast<unsigned long long>(n.cluster_retries),
        static_cast<unsigned long long>(n.topology_refreshes));
    EXPECT_GT(n.redirects, 0u);
    // Leases stall only while the slot is in migration (TRYAGAIN), and flow again
    // within a second of the move's end.
    EXPECT_LT(a.longest_gap(), move_ms + 1s);
    EXPECT_LT(b.longest_gap(), move_ms + 1s);
  }
}

TEST(ClusterStore, FollowsAPromotedReplicaWithin3Seconds) {
  testing::RedisCluster cluster;
  auto store = std::make_shared<redis::RedisStore>(cluster_config(cluster));
  auto p = bucket("g");
  const int slot = redis::group_slot("g");
  const auto primary = static_cast<std::size_t>(cluster.owner_of(slot));
  const int replica = cluster.replica_of(primary);
  ASSERT_GE(replica, 0);
  Load load(store, p, "tenant:a", 5, "a");
  ASSERT_TRUE(load.ok_after(Steady::now(), 5s));
  cluster.node(primary).kill();
  const auto killed = Steady::now();
  cluster.promote(static_cast<std::size_t>(replica));
  const auto promoted = Steady::now();
  ASSERT_TRUE(load.ok_after(promoted, 3s)) << "last error: " << load.last_error();
  const auto followed = load.last_ok();
  load.stop();
  std::printf(
      "primary killed; replica promoted %lld ms later; first grant from it %lld ms "
      "after the promotion (%llu failed leases meanwhile: %s)\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(promoted - killed).count()),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(followed - promoted).count()),
      static_cast<unsigned long long>(load.failed()), load.last_error().c_str());
  EXPECT_LT(followed - promoted, 3s);
}

long long repl_offset(const testing::RedisCluster& cluster, std::size_t node) {
  const std::string info = cluster.cli(node, {"INFO", "replication"});
  const auto at = info.find("master_repl_offset:");
  return at == std::string::npos ? -1 : std::stoll(info.substr(at + 19));
}

// Leases answered by a primary and replicated, then the primary killed and its replica
// promoted: the same request ids sent again are answered with their first answers by
// the new primary, and its buckets do not move. One lease per key, each the latest request
// of its instance for its key (the one a store remembers, docs/redis.md "Request records").
TEST(ClusterStore, ARetryThatLandsOnThePromotedReplicaIsNotGrantedTwice) {
  testing::RedisCluster cluster;
  auto store = std::make_shared<redis::RedisStore>(cluster_config(cluster));
  auto p = bucket("g");
  const auto primary = static_cast<std::size_t>(cluster.owner_of(redis::group_slot("g")));
  const int replica = cluster.replica_of(primary);
  ASSERT_GE(replica, 0);
  Leaser l(store);
  Leaser check(store, "check");  // reads levels without overwriting l's records
  const auto answered = lease_each(l, p, "tenant:", 50, 7);
  const std::uint64_t before = levels(check, p, "tenant:", 50);
  // The replica has it all (bounded poll on the replication offsets).
  const long long offset = repl_offset(cluster, primary);
  const auto deadline = Steady::now() + 5s;
  while (repl_offset(cluster, static_cast<std::size_t>(replica)) < offset) {
    ASSERT_LT(Steady::now(), deadline) << "the replica never caught up";
    std::this_thread::sleep_for(5ms);
  }
  cluster.node(primary).kill();
  cluster.promote(static_cast<std::size_t>(replica));
  for (const auto& [r, g] : answered) {
    LeaseGrant again;
    for (int i = 0; i < 300 && !(again = l.one(r)).ok; ++i) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(again.ok) << again.error;
    EXPECT_EQ(again.granted, g.granted);
    EXPECT_EQ(again.expires_at, g.expires_at);
  }
  EXPECT_EQ(levels(check, p, "tenant:", 50), before);
  EXPECT_GT(store->counters().topology_refreshes, 1u);
}

// The replication lag made long on purpose: the replica is stopped (SIGSTOP) and its
// link dropped by the primary (CLIENT KILL TYPE replica: what the replica's socket
// already holds it still reads; nothing after), the primary grants for 300 ms, then it
// is killed and the replica, resumed, promoted. What was granted in those 300 ms is on
// no surviving node: the bucket on the new primary has it back. With wait_replicas = 1 those grants
// are refused (WAIT saw no replica) and never used, so the allowance is 0.
struct FailoverAllowance {
  std::uint64_t granted = 0;      // tokens granted (and usable) before the failover
  std::uint64_t forgotten = 0;    // of which the new primary has no record
  std::uint64_t lag_granted = 0;  // granted while the replica was stopped
  std::uint64_t leases = 0;
  double lease_ms = 0;  // mean round trip per lease before the stall
};

FailoverAllowance failover_allowance(unsigned wait_replicas) {
  testing::RedisCluster cluster;
  auto store = std::make_shared<redis::RedisStore>(cluster_config(cluster, wait_replicas));
  auto p = bucket("g");
  const int slot = redis::group_slot("g");
  const auto primary = static_cast<std::size_t>(cluster.owner_of(slot));
  const int replica = cluster.replica_of(primary);
  if (replica < 0) throw std::runtime_error("no replica");
  FailoverAllowance out;
  Leaser check(store, "check");
  {
    Load load(store, p, "tenant:a", 5, "a");
    if (!load.ok_after(Steady::now(), 5s)) throw std::runtime_error(load.last_error());
    const auto t0 = Steady::now();
    const auto n0 = load.oks();
    std::this_thread::sleep_for(300ms);  // a measured duration, not a wait
    out.leases = load.oks() - n0;
    out.lease_ms = std::chrono::duration<double, std::milli>(Steady::now() - t0).count() /
                   static_cast<double>(std::max<std::uint64_t>(1, out.leases));
    cluster.node(static_cast<std::size_t>(replica)).pause();
    const auto before_lag = load.granted();
    cluster.cli(primary, {"CLIENT", "KILL", "TYPE", "replica"});
    std::this_thread::sleep_for(300ms);  // the replication lag
    cluster.node(primary).kill();
    load.stop();
    out.granted = load.granted();
    out.lag_granted = out.granted - before_lag;
  }
  cluster.node(static_cast<std::size_t>(replica)).resume();
  cluster.promote(static_cast<std::size_t>(replica));
  const std::uint64_t left = level(check, p, "tenant:a");
  const std::uint64_t taken = kBurst - left;  // what the surviving bucket knows of
  out.forgotten = out.granted > taken ? out.granted - taken : 0;
  EXPECT_GE(taken + out.forgotten, out.granted);
  return out;
}

TEST(ClusterStore, AFailoverForgetsAtMostWhatWasGrantedWithinTheReplicationLag) {
  const auto a = failover_allowance(0);
  std::printf(
      "without WAIT: %llu tokens granted, %llu of them within the 300 ms lag; the "
      "promoted replica forgot %llu (mean lease %.3f ms)\n",
      static_cast<unsigned long long>(a.granted), static_cast<unsigned long long>(a.lag_granted),
      static_cast<unsigned long long>(a.forgotten), a.lease_ms);
  EXPECT_LE(a.forgotten, a.lag_granted);  // the stated allowance
  EXPECT_GT(a.forgotten, 0u);             // the lag did cost something: the test sees it
}

TEST(ClusterStore, WithWaitAFailoverForgetsNoGrantThatWasUsed) {
  const auto a = failover_allowance(1);
  std::printf(
      "with WAIT 1 50: %llu tokens granted and usable, %llu within the lag; the "
      "promoted replica forgot %llu (mean lease %.3f ms)\n",
      static_cast<unsigned long long>(a.granted), static_cast<unsigned long long>(a.lag_granted),
      static_cast<unsigned long long>(a.forgotten), a.lease_ms);
  EXPECT_EQ(a.forgotten, 0u);
}

TEST(ClusterStore, ClusterDownIsRetriedWithBackoffThenFailsForTheFallback) {
  testing::RedisCluster::Options o;
  o.node_timeout_ms = 500;
  testing::RedisCluster cluster(o);
  auto store = std::make_shared<redis::RedisStore>(cluster_config(cluster));
  auto p = bucket("g");
  Leaser l(store);
  ASSERT_TRUE(l.one(l.request(p, "tenant:a", 1)).ok);
  // A primary and its replica gone: with full coverage required, the cluster is down
  // and every node answers CLUSTERDOWN.
  const auto primary = static_cast<std::size_t>(cluster.owner_of(redis::group_slot("g")));
  const auto victim = other_primary(cluster, primary);
  const int victim_replica = cluster.replica_of(victim);
  ASSERT_GE(victim_replica, 0);
  cluster.node(static_cast<std::size_t>(victim_replica)).kill();
  cluster.node(victim).kill();
  const auto deadline = Steady::now() + 10s;
  while (cluster.cli(primary, {"CLUSTER", "INFO"}).find("cluster_state:fail") ==
         std::string::npos) {
    ASSERT_LT(Steady::now(), deadline) << "the cluster never went down";
    std::this_thread::sleep_for(20ms);
  }
  const auto before = store->counters();
  const auto t0 = Steady::now();
  const auto g = l.one(l.request(p, "tenant:a", 1));
  const auto took = Steady::now() - t0;
  const auto after = store->counters();
  EXPECT_FALSE(g.ok);
  EXPECT_NE(g.error.find("CLUSTERDOWN"), std::string::npos) << g.error;
  EXPECT_EQ(after.cluster_retries - before.cluster_retries,
            static_cast<std::uint64_t>(redis::RedisClusterTransport::kClusterRetries));
  // 25 + 50 + 100 + 200 ms, each with up to 20 % jitter
  EXPECT_GE(took, 375ms);
  EXPECT_LT(took, 3s);
  std::printf(
      "CLUSTERDOWN: %d resends, then ok = false after %lld ms: %s\n",
      redis::RedisClusterTransport::kClusterRetries,
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
      g.error.c_str());
}

}  // namespace
}  // namespace tollgate

namespace tollgate {
namespace {

// The price of wait_replicas = 1 on a healthy cluster: one WAIT per pipeline, answered
// when the replica has acknowledged the writes. Measured (printed), not asserted: the
// figures depend on the machine; what is asserted is that every grant counted.
TEST(ClusterStore, WaitCostsOneReplicaAcknowledgementPerBatch) {
  testing::RedisCluster cluster;
  auto p = bucket("g");
  for (unsigned wait : {0u, 1u}) {
    auto store = std::make_shared<redis::RedisStore>(cluster_config(cluster, wait));
    Leaser l(store, "w" + std::to_string(wait));
    ASSERT_TRUE(l.one(l.request(p, "tenant:a", 1)).ok);  // the slot map, the connection
    std::vector<double> ms;
    for (int i = 0; i < 1000; ++i) {
      const auto t = Steady::now();
      const auto g = l.one(l.request(p, "tenant:a", 1));
      ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t).count());
      ASSERT_TRUE(g.ok) << g.error;
    }
    // A batch of 100 keys in one call: WAIT once for all of them.
    std::vector<LeaseRequest> batch;
    for (int i = 0; i < 100; ++i) batch.push_back(l.request(p, "tenant:" + std::to_string(i), 1));
    const auto t = Steady::now();
    for (const auto& g : l.lease(batch)) ASSERT_TRUE(g.ok) << g.error;
    const double batch_ms = std::chrono::duration<double, std::milli>(Steady::now() - t).count();
    std::sort(ms.begin(), ms.end());
    const auto n = store->counters();
    std::printf(
        "wait_replicas %u: one lease p50 %.3f ms, p99 %.3f ms; a batch of 100 keys "
        "%.3f ms; %llu EVALSHA in %llu round trips, %llu not acknowledged\n",
        wait, ms[ms.size() / 2], ms[ms.size() * 99 / 100], batch_ms,
        static_cast<unsigned long long>(n.calls), static_cast<unsigned long long>(n.batches),
        static_cast<unsigned long long>(n.unreplicated));
    EXPECT_EQ(n.unreplicated, 0u);
  }
}

}  // namespace
}  // namespace tollgate
