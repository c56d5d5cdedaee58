// The guarantee over Redis, with instances that share nothing but the shards: 8 driver
// processes (tests/redis/guarantee_driver.cpp), 2 threads each, 4 keys over 3 shards,
// offered load 2x capacity for 5 s. Over every interval of length T, what they admitted
// together stays within rate*(T + lease_ttl) + burst, and at least 97 % of the capacity
// is used in steady state.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "redis_server.h"

namespace tollgate {
namespace {

// The bound is asserted in every build. Utilisation is a performance figure: >= 97 % in
// the plain build; sanitizers slow every thread several-fold on two cores, so there a
// floor only catches gross regressions.
#ifdef TOLLGATE_SANITIZED
constexpr double kMinUtilisation = 0.90;
#else
constexpr double kMinUtilisation = 0.97;
#endif

constexpr int kInstances = 8, kKeys = 4;
constexpr double kRate = 2000, kBurst = 1000, kTtl = 1.0, kSeconds = 5;

struct Admission {
  std::int64_t at;
  int cost;
};

std::uint64_t max_in_window(const std::vector<Admission>& sorted, std::int64_t window_ns) {
  std::uint64_t best = 0, sum = 0;
  std::size_t lo = 0;
  for (std::size_t hi = 0; hi < sorted.size(); ++hi) {
    sum += static_cast<std::uint64_t>(sorted[hi].cost);
    while (sorted[hi].at - sorted[lo].at > window_ns) {
      sum -= static_cast<std::uint64_t>(sorted[lo++].cost);
    }
    best = std::max(best, sum);
  }
  return best;
}

TEST(GuaranteeOverRedis, ProcessesSharingThreeShardsStayWithinTheBoundAndUseTheQuota) {
  testing::RedisServer a, b, c;
  const std::string shards = a.url() + "," + b.url() + "," + c.url();
  const auto dir =
      std::filesystem::temp_directory_path() / ("tollgate-guarantee-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const std::int64_t start_ns =
      static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec + 1'500'000'000;
  std::vector<pid_t> pids;
  for (int i = 0; i < kInstances; ++i) {
    const std::string out = (dir / ("instance-" + std::to_string(i))).string();
    pid_t pid = ::fork();
    if (pid == 0) {
      ::execl(TOLLGATE_DRIVER_PATH, TOLLGATE_DRIVER_PATH, "--shards", shards.c_str(), "--instance",
              std::to_string(i).c_str(), "--out", out.c_str(), "--start-ns",
              std::to_string(start_ns).c_str(), "--seconds", std::to_string(kSeconds).c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a driver failed";
  }
  std::vector<std::vector<Admission>> admitted(kKeys);
  for (int i = 0; i < kInstances; ++i) {
    std::ifstream f(dir / ("instance-" + std::to_string(i)));
    int k = 0, cost = 0;
    std::int64_t at = 0;
    while (f >> k >> at >> cost) admitted[static_cast<std::size_t>(k)].push_back({at, cost});
  }
  std::filesystem::remove_all(dir);
  for (int k = 0; k < kKeys; ++k) {
    auto& adm = admitted[static_cast<std::size_t>(k)];
    std::sort(adm.begin(), adm.end(), [](auto& x, auto& y) { return x.at < y.at; });
    for (double w : {0.05, 0.25, 1.0, 2.0, kSeconds}) {
      const double bound = kRate * (w + kTtl) + kBurst;
      EXPECT_LE(static_cast<double>(max_in_window(adm, static_cast<std::int64_t>(w * 1e9))), bound)
          << "key " << k << ", window " << w << " s";
    }
    std::uint64_t steady = 0;
    for (auto& x : adm) {
      if (x.at >= 1'000'000'000 && x.at < static_cast<std::int64_t>((kSeconds - 0.5) * 1e9)) {
        steady += static_cast<std::uint64_t>(x.cost);
      }
    }
    const double capacity = kRate * (kSeconds - 1.5);
    std::printf("key %d: steady-state utilisation %.1f%%, busiest 1 s %llu (bound %.0f)\n", k,
                100.0 * static_cast<double>(steady) / capacity,
                static_cast<unsigned long long>(max_in_window(adm, 1'000'000'000)),
                kRate * (1 + kTtl) + kBurst);
    EXPECT_GE(static_cast<double>(steady), kMinUtilisation * capacity) << "key " << k;
  }
}

}  // namespace
}  // namespace tollgate
