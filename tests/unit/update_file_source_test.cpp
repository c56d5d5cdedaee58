// The file config source under a ConfigWatcher, on real files: a file replaced atomically
// (rename over it) and one rewritten in place are both picked up; a missing or bad file
// keeps the running config and backs off with jitter; the watcher's own thread applies a
// change within its poll interval.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "common/source_config.h"
#include "tollgate/config_source.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

using testing::bucket_config_json;

class FileSource : public ::testing::Test {
 protected:
  FileSource() {
    dir = std::filesystem::temp_directory_path() /
          ("tollgate-file-source-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir);
    path = (dir / "tollgate.json").string();
    in_place(bucket_config_json(10));
  }
  ~FileSource() override { std::filesystem::remove_all(dir); }

  std::unique_ptr<ConfigWatcher> watch(ConfigWatchOptions o = manual()) {
    return std::make_unique<ConfigWatcher>(limiter, std::make_unique<FileConfigSource>(path), o);
  }
  static ConfigWatchOptions manual() {
    ConfigWatchOptions o;
    o.background_thread = false;
    o.poll_interval = 1s;
    o.backoff_base = 100ms;
    o.backoff_cap = 2s;
    o.seed = 11;
    return o;
  }
  // What an editor or `cat >` does: the same inode, truncated and written.
  void in_place(const std::string& text) const { std::ofstream(path, std::ios::trunc) << text; }
  // What config management and Kubernetes do: a new file renamed over the old one.
  void replace(const std::string& text) const {
    std::ofstream(path + ".new") << text;
    std::filesystem::rename(path + ".new", path);
  }
  double burst() const { return limiter.config()->policies.at(0).burst; }

  std::filesystem::path dir;
  std::string path;
  Limiter limiter{Config::from_json(bucket_config_json(5))};
};

TEST_F(FileSource, AFileReplacedAtomicallyOrRewrittenInPlaceIsApplied) {
  auto w = watch();
  EXPECT_EQ(w->poll(), ConfigWatcher::Result::kApplied);
  EXPECT_EQ(burst(), 10);
  EXPECT_EQ(w->poll(), ConfigWatcher::Result::kUnchanged);
  replace(bucket_config_json(20));
  EXPECT_EQ(w->poll(), ConfigWatcher::Result::kApplied);
  EXPECT_EQ(burst(), 20);
  in_place(bucket_config_json(30));
  EXPECT_EQ(w->poll(), ConfigWatcher::Result::kApplied);
  EXPECT_EQ(burst(), 30);
  EXPECT_EQ(w->counts().applied, 3u);
  EXPECT_EQ(limiter.stats().config_updates, 3u);
}

TEST_F(FileSource, AMissingOrBadFileKeepsTheRunningConfigAndBacksOff) {
  auto w = watch();
  ASSERT_EQ(w->poll(), ConfigWatcher::Result::kApplied);
  std::filesystem::remove(path);
  EXPECT_EQ(w->poll(), ConfigWatcher::Result::kFetchFailed);
  EXPECT_EQ(burst(), 10);
  // Decorrelated jitter: each delay between the base and three times the last, capped.
  Nanos last = w->next_delay();
  EXPECT_GE(last, 100ms);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(w->poll(), ConfigWatcher::Result::kFetchFailed);
    const Nanos d = w->next_delay();
    EXPECT_GE(d, 100ms);
    EXPECT_LE(d, std::min<Nanos>(3 * last, 2s));
    last = d;
  }
  replace(R"({"policies": [{"match": "tenant:*", "type": "token_bucket", "rate": -1}]})");
  EXPECT_EQ(w->poll(), ConfigWatcher::Result::kRejected);
  EXPECT_NE(w->counts().last_error.find("policies[0].rate"), std::string::npos);
  EXPECT_EQ(burst(), 10);
  EXPECT_EQ(limiter.stats().config_rejected, 1u);
  replace(bucket_config_json(40));
  EXPECT_EQ(w->poll(), ConfigWatcher::Result::kApplied);
  EXPECT_EQ(burst(), 40);
  EXPECT_EQ(w->next_delay(), 1s);
  EXPECT_TRUE(w->counts().last_error.empty());
}

// The watcher's thread, real time: how long from a file's change to its config being in
// force (printed; the check is only that it comes, within a generous deadline).
TEST_F(FileSource, TheWatchersThreadAppliesAChangeWithinItsPollInterval) {
  ConfigWatchOptions o = manual();
  o.background_thread = true;
  o.poll_interval = 50ms;
  auto w = watch(o);
  for (int i = 0; i < 500 && burst() != 10; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(burst(), 10);
  const auto t0 = std::chrono::steady_clock::now();
  replace(bucket_config_json(60));
  while (burst() != 60 && std::chrono::steady_clock::now() - t0 < 10s)
    std::this_thread::sleep_for(1ms);
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
  ASSERT_EQ(burst(), 60);
  std::printf("file change to config in force: %.1f ms (poll interval 50 ms)\n", ms.count());
}

}  // namespace
}  // namespace tollgate
