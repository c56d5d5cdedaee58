// The HTTP config source (Tollgate::http, cpprestsdk's http_client) under a ConfigWatcher,
// against a real local HTTP server (python3's http.server, tests/http/config_server.py):
// 200, 304, 500, a timeout and a body that is no config; the running config stays through
// every failure.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/source_config.h"
#include "config_server.h"
#include "tollgate/http_config_source.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

using testing::bucket_config_json;

class HttpSource : public ::testing::Test {
 protected:
  HttpSource() {
    server.set_config(bucket_config_json(10));
    ConfigWatchOptions o;
    o.background_thread = false;
    o.poll_interval = 1s;
    o.backoff_base = 100ms;
    o.backoff_cap = 2s;
    o.seed = 7;
    watcher = std::make_unique<ConfigWatcher>(
        limiter, std::make_unique<HttpConfigSource>(server.url(), HttpConfigSource::Options{300ms}),
        o);
  }
  double burst() const { return limiter.config()->policies.at(0).burst; }

  testing::ConfigServer server;
  Limiter limiter{Config::from_json(bucket_config_json(5))};
  std::unique_ptr<ConfigWatcher> watcher;
};

TEST_F(HttpSource, AChangeIsAppliedAndAnUnchangedConfigCostsA304) {
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kApplied);
  EXPECT_EQ(burst(), 10);
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kUnchanged);
  EXPECT_EQ(server.answered(), "200\n304\n");
  server.set_config(bucket_config_json(20));
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kApplied);
  EXPECT_EQ(burst(), 20);
  EXPECT_EQ(watcher->next_delay(), 1s);
  EXPECT_EQ(limiter.stats().config_updates, 2u);
}

TEST_F(HttpSource, AServerErrorKeepsTheRunningConfigAndBacksOff) {
  ASSERT_EQ(watcher->poll(), ConfigWatcher::Result::kApplied);
  server.set_mode("500");
  server.set_config(bucket_config_json(30));
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kFetchFailed);
  EXPECT_EQ(watcher->counts().last_error, "HTTP 500");
  EXPECT_EQ(burst(), 10);
  const Nanos first = watcher->next_delay();
  EXPECT_GE(first, 100ms);
  EXPECT_LE(first, 2s);
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kFetchFailed);
  EXPECT_GE(watcher->next_delay(), 100ms);
  server.set_mode("ok");
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kApplied);
  EXPECT_EQ(burst(), 30);
  EXPECT_EQ(watcher->next_delay(), 1s);  // back to the poll interval
}

TEST_F(HttpSource, ATimeoutIsAFailureAndTheRunningConfigStays) {
  ASSERT_EQ(watcher->poll(), ConfigWatcher::Result::kApplied);
  server.set_mode("sleep");
  server.set_config(bucket_config_json(40));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kFetchFailed);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s) << "the 300 ms timeout did not hold";
  EXPECT_EQ(burst(), 10);
  EXPECT_FALSE(watcher->counts().last_error.empty());
}

TEST_F(HttpSource, AGarbageBodyIsRefusedAndTheRunningConfigStays) {
  ASSERT_EQ(watcher->poll(), ConfigWatcher::Result::kApplied);
  server.set_mode("garbage");
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kRejected);
  EXPECT_EQ(burst(), 10);
  EXPECT_NE(watcher->counts().last_error.find("$: invalid JSON"), std::string::npos)
      << watcher->counts().last_error;
  EXPECT_EQ(limiter.stats().config_rejected, 1u);
  EXPECT_GE(watcher->next_delay(), 100ms);
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kUnchanged);  // the same body: a 304
  server.set_mode("ok");
  server.set_config(bucket_config_json(50));
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kApplied);
  EXPECT_EQ(burst(), 50);
}

TEST_F(HttpSource, AChangeThatNeedsANewLimiterIsRefused) {
  server.set_config(R"({"max_keys": 7, "policies": [{"match": "tenant:*", "type": "token_bucket",
                        "rate": 1, "burst": 60}]})");
  EXPECT_EQ(watcher->poll(), ConfigWatcher::Result::kRejected);
  EXPECT_NE(watcher->counts().last_error.find("max_keys"), std::string::npos);
  EXPECT_EQ(burst(), 5);
  EXPECT_EQ(limiter.stats().config_rejected, 1u);
}

}  // namespace
}  // namespace tollgate
