// A key moving between policies under Limiter::update neither loses nor doubles tokens, on
// both stores: the in-process one and the Redis store against a real redis-server (its Lua
// scripts and give-backs). Real time, so the buckets refill too slowly to matter here.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <type_traits>

#include "redis_server.h"
#include "store/redis/redis_store.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

struct InProcess {
  StoreConfig store() const { return {}; }
};

struct Redis {
  std::unique_ptr<testing::RedisServer> server = std::make_unique<testing::RedisServer>();
  StoreConfig store() const {
    StoreConfig c;
    c.type = "redis";
    c.shards = {server->url()};
    return c;
  }
};

template <typename Backend>
class UpdateMove : public ::testing::Test {
 protected:
  Config config(bool with_b) const {
    Config c;
    Policy a;
    a.name = "a";
    a.match = "tenant:*";
    a.rate = 0.001;
    a.burst = 100;
    c.policies.push_back(a);
    if (with_b) {
      Policy b = a;
      b.name = "b";
      b.match = "tenant:x";
      b.burst = 50;
      c.policies.push_back(b);
    }
    c.leases.max_fraction = 0.25;
    c.store = backend.store();
    c.instance_id = "update-move";
    return c;
  }
  // Acquires until the store has nothing left for the key (or `most` are admitted).
  int drain(Limiter& limiter, const std::string& key, int most = 1000) {
    int n = 0;
    while (n < most && limiter.acquire(key, 1, 300ms).allowed) ++n;
    return n;
  }
  // Until the SDK's thread has moved the key: until then it may still spend what it holds
  // of the old policy (the bound during a switch counts both, docs/configuration.md).
  static void moved(Limiter& limiter, std::uint64_t n) {
    for (int i = 0; i < 500 && limiter.stats().keys_moved < n; ++i)
      std::this_thread::sleep_for(10ms);
    ASSERT_EQ(limiter.stats().keys_moved, n);
  }
  Backend backend;
};

using Backends = ::testing::Types<InProcess, Redis>;
struct BackendName {
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, Redis> ? "redis" : "in_process";
  }
};
TYPED_TEST_SUITE(UpdateMove, Backends, BackendName);

TYPED_TEST(UpdateMove, AKeyMovingBetweenPoliciesNeitherLosesNorDoublesTokens) {
  Limiter limiter(this->config(false));
  ASSERT_EQ(this->drain(limiter, "tenant:x", 30), 30);
  limiter.update(this->config(true));
  this->moved(limiter, 1);
  EXPECT_EQ(this->drain(limiter, "tenant:x"), 50);  // b's burst: a's tokens are not spent
  limiter.update(this->config(false));
  this->moved(limiter, 2);
  EXPECT_EQ(this->drain(limiter, "tenant:x"), 70);  // a's unspent 70 came back to its bucket
  const Stats s = limiter.stats();
  EXPECT_EQ(s.config_updates, 2u);
  EXPECT_EQ(s.keys_moved, 2u);
}

}  // namespace
}  // namespace tollgate
