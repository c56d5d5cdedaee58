// The shared store behaviour suite (tests/redis/store_behaviour_test.cpp) on the cluster
// store, over a real Redis Cluster of 3 primaries and 3 replicas (one per test suite).
#include <memory>

#include "store/redis/redis_store.h"
#include "redis_cluster.h"

namespace tollgate {
namespace {

struct Cluster {
  static constexpr const char* kName = "redis_cluster";
  static testing::RedisCluster& cluster() {
    // One cluster for the suite (six servers take seconds to join); stopped at exit.
    static testing::RedisCluster c;
    return c;
  }
  std::shared_ptr<QuotaStore> make() {
    StoreConfig c;
    c.type = "redis_cluster";
    c.nodes = {cluster().urls()[0]};
    // Each test starts on empty buckets.
    for (std::size_t i = 0; i < cluster().size(); ++i) cluster().cli(i, {"FLUSHALL"});
    return std::make_shared<redis::RedisStore>(c);
  }
};

}  // namespace
}  // namespace tollgate

#define TOLLGATE_STORE_BACKENDS ::testing::Types<Cluster>
#include "../redis/store_behaviour_test.cpp"
