// The Redis config source against a real redis-server (with a password): a versioned config
// in a hash is applied, an unchanged version costs nothing, a bad config or a server that is
// gone keeps the running config, and the password is never in what the watcher reports.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/source_config.h"
#include "redis_server.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

using testing::bucket_config_json;

class RedisSource : public ::testing::Test {
 protected:
  RedisSource() {
    ConfigWatchOptions o;
    o.background_thread = false;
    o.backoff_base = 100ms;
    o.backoff_cap = 1s;
    watcher = std::make_unique<ConfigWatcher>(
        limiter,
        std::make_unique<RedisConfigSource>(
            "redis://:s3cret-pw@127.0.0.1:" + std::to_string(server->port()), "tg-config", 500ms),
        o);
  }
  void publish(const std::string& version, const std::string& json) {
    server->cli({"HSET", "tg-config", "version", version, "config", json});
  }
  double burst() const { return limiter.config()->policies.at(0).burst; }

  std::unique_ptr<testing::RedisServer> server = [] {
    testing::RedisServer::Options o;
    o.password = "s3cret-pw";
    return std::make_unique<testing::RedisServer>(o);
  }();
  Limiter limiter{Config::from_json(bucket_config_json(5))};
  std::unique_ptr<ConfigWatcher> watcher;
};

TEST_F(RedisSource, AVersionedConfigIsAppliedOnceAndABadOneOrAnOutageKeepsTheRunningOne) {
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kFetchFailed);  // nothing published yet
  publish("1", bucket_config_json(10));
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kApplied);
  EXPECT_EQ(burst(), 10);
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kUnchanged);
  publish("2", R"({"policies": [{"match": "tenant:*", "type": "token_bucket", "rate": -1}]})");
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kRejected);
  EXPECT_EQ(burst(), 10);
  publish("3", bucket_config_json(30));
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kApplied);
  EXPECT_EQ(burst(), 30);
  server.reset();  // the store is gone
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kFetchFailed);
  EXPECT_EQ(burst(), 30);
  EXPECT_EQ(watcher->counts().last_error.find("s3cret"), std::string::npos)
      << watcher->counts().last_error;
}

}  // namespace
}  // namespace tollgate
