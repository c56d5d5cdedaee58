// tools/ctl/tollgate_ctl, the operator's CLI, against a real redis-server that a Limiter
// leases from: it shows a key's global bucket (tokens, given-back pool, reservations by
// instance), tops it up and resets it. The CLI runs as a process, as an operator runs it.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "redis_server.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

class Ctl : public ::testing::Test {
 protected:
  Ctl() {
    json = R"({"store": {"type": "redis", "shards": [")" + server.url() + R"("]},
               "leases": {"max_fraction": 0.25, "ttl_ms": 60000, "min_tokens": 25},
               "policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 0.001, "burst": 100},
                            {"match": "gpu:*", "type": "concurrency", "limit": 4}]})";
    path = server.dir() + "/ctl-config.json";
    std::ofstream(path) << json;
  }
  // Runs the CLI; its standard output.
  std::string ctl(const std::string& args) const {
    const std::string cmd = std::string(TOLLGATE_CTL) + " --config " + path + " " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    ::pclose(p);
    return out;
  }

  testing::RedisServer server;
  std::string json;
  std::string path;
};

TEST_F(Ctl, ShowsTopsUpAndResetsAKeysGlobalBucket) {
  Limiter limiter(Config::from_json(json));
  ASSERT_TRUE(limiter.acquire("tenant:x", 1, 5s).allowed);  // a lease of 25 from 100
  const std::string shown = ctl("show tenant:x");
  EXPECT_NE(shown.find("policy   tenant:* (token_bucket)"), std::string::npos) << shown;
  EXPECT_NE(shown.find("tokens   75.00 of 100"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("secret"), std::string::npos);
  const std::string topped = ctl("top-up tenant:x 10");
  EXPECT_NE(topped.find("10 tokens: 85"), std::string::npos) << topped;
  EXPECT_NE(ctl("show tenant:x").find("tokens   85.00 of 100"), std::string::npos);
  EXPECT_NE(ctl("reset tenant:x").find("bucket deleted"), std::string::npos);
  EXPECT_NE(ctl("show tenant:x").find("bucket   none"), std::string::npos);
}

TEST_F(Ctl, ShowsAConcurrencyKeysReservationsByInstance) {
  Limiter limiter(Config::from_json(json));
  Permit p = limiter.acquire_permit("gpu:a", 1);
  for (int i = 0; i < 500 && !p; ++i) {
    std::this_thread::sleep_for(10ms);
    p = limiter.acquire_permit("gpu:a", 1);
  }
  ASSERT_TRUE(p);
  const std::string shown = ctl("show gpu:a");
  EXPECT_NE(shown.find("holder   " + limiter.instance_id() + ": "), std::string::npos) << shown;
  EXPECT_NE(shown.find("of 4"), std::string::npos) << shown;
  EXPECT_NE(ctl("show nothing:here").find("no policy matches"), std::string::npos);
}

}  // namespace
}  // namespace tollgate
