// The Redis store's sockets are opened close-on-exec: a child process the application
// starts (the soak found it with restarted redis-servers) must not inherit Redis
// connections and keep them open after the SDK has closed its side.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "redis_server.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

// (sockets, of which close-on-exec) among this process's open descriptors.
std::pair<int, int> sockets() {
  int all = 0, cloexec = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(e.path(), ec).string();
    if (ec || target.rfind("socket:", 0) != 0) continue;
    const int fd = std::stoi(e.path().filename().string());
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) continue;
    ++all;
    cloexec += (flags & FD_CLOEXEC) ? 1 : 0;
  }
  return {all, cloexec};
}

TEST(Sockets, RedisConnectionsAreCloseOnExec) {
  testing::RedisServer server;
  const auto [before, before_cloexec] = sockets();
  Config c;
  Policy p;
  p.match = "t:*";
  p.rate = 100;
  p.burst = 100;
  c.policies.push_back(p);
  c.store.type = "redis";
  c.store.shards = {server.url()};
  Limiter limiter(c);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!limiter.try_acquire("t:a") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);  // polling a condition (the first lease), bounded
  }
  ASSERT_TRUE(limiter.try_acquire("t:a").allowed) << "no lease within 20 s";
  const auto [after, after_cloexec] = sockets();
  ASSERT_GT(after, before) << "no socket to Redis found";
  EXPECT_EQ(after - before, after_cloexec - before_cloexec)
      << "a Redis socket without close-on-exec";
}

}  // namespace
}  // namespace tollgate
