// The test cluster itself: made of 3 primaries and 3 replicas, every slot owned, a slot
// moved, a killed primary's replica promoted.
#include <gtest/gtest.h>

#include <chrono>

#include "redis_cluster.h"

namespace tollgate::testing {
namespace {

using namespace std::chrono_literals;

TEST(ClusterFixture, ThreePrimariesEachWithAReplica) {
  RedisCluster cluster;
  ASSERT_EQ(cluster.size(), 6u);
  int primaries = 0;
  for (const auto& v : cluster.view()) {
    if (v.primary) {
      ++primaries;
      EXPECT_GE(cluster.replica_of(v.index), 0) << "node " << v.index;
    }
  }
  EXPECT_EQ(primaries, 3);
  EXPECT_EQ(cluster.slot_of("tg:{g}:b"), cluster.slot_of("tg:{g}:r:1"));
  EXPECT_GE(cluster.owner_of(0), 0);
  EXPECT_GE(cluster.owner_of(16383), 0);
}

TEST(ClusterFixture, MovesASlotWithItsKeys) {
  RedisCluster cluster;
  const int slot = cluster.slot_of("tg:{g}:x");
  const auto from = static_cast<std::size_t>(cluster.owner_of(slot));
  EXPECT_EQ(cluster.cli(from, {"SET", "tg:{g}:x", "1"}), "OK");
  std::size_t to = 0;
  for (const auto& v : cluster.view()) {
    if (v.primary && v.index != from) to = v.index;
  }
  cluster.move_slot(slot, to);
  EXPECT_EQ(cluster.owner_of(slot), static_cast<int>(to));
  EXPECT_EQ(cluster.cli(to, {"GET", "tg:{g}:x"}), "1");
  EXPECT_TRUE(cluster.wait_until_ok(10s));
}

TEST(ClusterFixture, AKilledPrimarysReplicaIsPromoted) {
  RedisCluster cluster;
  const auto primary = static_cast<std::size_t>(cluster.owner_of(0));
  const int replica = cluster.replica_of(primary);
  ASSERT_GE(replica, 0);
  cluster.node(primary).kill();
  cluster.promote(static_cast<std::size_t>(replica));
  EXPECT_TRUE(cluster.wait_until_ok(10s));
  EXPECT_EQ(cluster.owner_of(0), replica);
}

}  // namespace
}  // namespace tollgate::testing
