// Hostile keys (issue: key floods): a flood of distinct keys neither displaces the keys
// that carry traffic nor locks new keys out; keys without a policy and over-long keys
// never create state. Manual clock, poll() every virtual millisecond: a fixed amount of
// work. The benchmark BM_KeyFlood is the same scenario at ten times the scale.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tollgate/clock.h"
#include "tollgate/config.h"
#include "tollgate/limiter.h"
#include "tollgate/manual_clock.h"
#include "tollgate/quota_store.h"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

// Flood keys are granted what they ask with no state; the rest go to an in-process store.
class FloodStore final : public QuotaStore {
 public:
  explicit FloodStore(std::shared_ptr<const Clock> clock)
      : clock_(clock), real_(std::make_shared<InProcessStore>(clock)) {}
  void lease(std::vector<LeaseRequest> batch, LeaseCallback done) override {
    std::vector<LeaseRequest> real;
    std::vector<std::size_t> where;
    std::vector<LeaseGrant> grants(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].key.starts_with("t:flood:")) {
        grants[i].granted = batch[i].want;
        grants[i].now = clock_->now();
        grants[i].expires_at = clock_->now() + batch[i].ttl;
        grants[i].remaining = 1'000'000;
        flood_granted += batch[i].want;
      } else {
        where.push_back(i);
        real.push_back(std::move(batch[i]));
      }
    }
    if (!real.empty()) {
      real_->lease(std::move(real), [&](std::vector<LeaseGrant> g) {
        for (std::size_t j = 0; j < g.size(); ++j) grants[where[j]] = std::move(g[j]);
      });
    }
    done(std::move(grants));
  }
  void give_back(std::vector<GiveBack> batch) override {
    for (const GiveBack& g : batch) {
      if (g.key.starts_with("t:flood:")) flood_given_back += g.tokens;
    }
    std::erase_if(batch, [](const GiveBack& g) { return g.key.starts_with("t:flood:"); });
    if (!batch.empty()) real_->give_back(std::move(batch));
  }
  std::uint64_t flood_granted = 0, flood_given_back = 0;

 private:
  std::shared_ptr<const Clock> clock_;
  std::shared_ptr<InProcessStore> real_;
};

Config flood_config(std::size_t max_keys) {
  Config c;
  Policy p;
  p.name = "t";
  p.match = "t:*";
  p.kind = PolicyKind::kTokenBucket;
  p.rate = 10;
  p.burst = 10;
  c.policies.push_back(p);
  c.max_keys = max_keys;
  c.instance_id = "flood-test";
  return c;
}

struct Outcome {
  std::uint64_t steady_admitted = 0;
  std::vector<int> to_admit;  // requests each newcomer sent until admitted; -1: never
  Stats stats;
  std::uint64_t max_bytes = 0, max_keys_tracked = 0;
  std::uint64_t flood_granted = 0, flood_given_back = 0;
};

// 100 steady tenants (20 requests/s each, twice their rate), from 0.5 s a newcomer every
// 200 ms sending 10/s, and (when flooding) 400 new random keys a millisecond: ten times
// the table a second, as in BM_KeyFlood, and faster than a full table's idle scan evicts
// (256 keys a tick), so that without admission the table stays full of flood keys.
constexpr std::size_t kMaxKeys = 40'000;
Outcome run(bool flood, int seconds = 3) {
  const std::size_t max_keys = kMaxKeys;
  auto clock = std::make_shared<ManualClock>();
  auto store = std::make_shared<FloodStore>(clock);
  Limiter limiter(
      flood_config(max_keys),
      Limiter::Options{.store = store, .clock = clock, .background_thread = false, .observer = {}});
  Outcome out;
  const int newcomers = (seconds * 1000 - 500) / 200;
  std::vector<int> sent(newcomers, 0);
  std::vector<bool> in(newcomers, false);
  std::uint64_t rng = 12345;
  char buf[40];
  for (int ms = 0; ms < seconds * 1000; ++ms) {
    if (flood) {
      for (int k = 0; k < 400; ++k) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int n = std::snprintf(buf, sizeof(buf), "t:flood:%016llx",
                              static_cast<unsigned long long>(rng));
        (void)limiter.try_acquire(std::string_view(buf, static_cast<std::size_t>(n)));
      }
    }
    for (int j = ms % 50; j < 100; j += 50) {
      out.steady_admitted += limiter.try_acquire("t:steady:" + std::to_string(j)) ? 1 : 0;
    }
    for (int i = 0; i < newcomers; ++i) {
      const int start = 500 + i * 200;
      if (in[i] || ms < start || (ms - start) % 100 != 0) continue;
      ++sent[i];
      in[i] = limiter.try_acquire("t:new:" + std::to_string(i)).allowed;
    }
    clock->advance(1ms);
    limiter.poll();
    if (ms % 50 == 0) {
      Stats st = limiter.stats();
      out.max_bytes = std::max(out.max_bytes, st.bytes_used);
      out.max_keys_tracked = std::max(out.max_keys_tracked, st.keys_tracked);
    }
  }
  for (int i = 0; i < newcomers; ++i) {
    // Only those that had a second to try.
    if (500 + i * 200 + 1000 <= seconds * 1000) out.to_admit.push_back(in[i] ? sent[i] : -1);
  }
  out.stats = limiter.stats();
  out.flood_granted = store->flood_granted;
  out.flood_given_back = store->flood_given_back;
  return out;
}

const Outcome& flooded() {
  static const Outcome out = run(true);
  return out;
}

TEST(KeyFlood, SteadyTenantsKeepTheirShareAndNewKeysGetIn) {
  const Outcome quiet = run(false);
  const Outcome& flood = flooded();
  ASSERT_GT(quiet.steady_admitted, 0u);
  EXPECT_GE(static_cast<double>(flood.steady_admitted),
            0.99 * static_cast<double>(quiet.steady_admitted))
      << flood.steady_admitted << " vs " << quiet.steady_admitted;
  std::vector<int> sorted = flood.to_admit;
  ASSERT_FALSE(sorted.empty());
  for (int n : sorted) EXPECT_GT(n, 0) << "a newcomer was never admitted";
  std::sort(sorted.begin(), sorted.end());
  EXPECT_LE(sorted[sorted.size() / 2], 10) << "median requests until admitted";
  EXPECT_GT(flood.stats.denied[static_cast<int>(Reason::kKeyTableFull)], 0u);
  EXPECT_GT(flood.stats.keys_evicted, 0u);
}

TEST(KeyFlood, MemoryStaysWithinTheTableBound) {
  const Outcome& flood = flooded();
  EXPECT_LE(flood.max_keys_tracked, kMaxKeys);
  // 200 B per key with the sketch and the scheduler's timers counted (docs/performance.md).
  std::printf("bytes_used per max_keys: %.1f\n",
              static_cast<double>(flood.max_bytes) / static_cast<double>(kMaxKeys));
  EXPECT_LE(flood.max_bytes, kMaxKeys * 200u) << "bytes_used, the sketch and timers included";
}

TEST(KeyFlood, EvictedFloodKeysGiveTheirTokensBack) {
  const Outcome& flood = flooded();
  ASSERT_GT(flood.stats.keys_evicted, 0u);
  // Each flood key spent one token of its lease: the rest went back or is still held.
  EXPECT_GT(flood.flood_given_back, 0u);
  EXPECT_GE(flood.stats.tokens_given_back, flood.flood_given_back);
}

TEST(KeyFlood, KeysWithoutPolicyOrTooLongNeverCreateState) {
  auto clock = std::make_shared<ManualClock>();
  Config c = flood_config(100);
  c.max_key_length = 32;
  Limiter limiter(
      std::move(c),
      Limiter::Options{
          .store = nullptr, .clock = clock, .background_thread = false, .observer = {}});
  for (int i = 0; i < 10'000; ++i) {
    EXPECT_EQ(limiter.try_acquire("other:" + std::to_string(i)).reason, Reason::kNoPolicy);
  }
  const std::string too_long = "t:" + std::string(31, 'x');
  const std::string longest = "t:" + std::string(30, '\xff');
  EXPECT_EQ(limiter.try_acquire(too_long).reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter.acquire(too_long, 1, 1ms).reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter.stats().keys_tracked, 0u);
  EXPECT_EQ(limiter.try_acquire(longest).reason, Reason::kColdKey);
  EXPECT_EQ(limiter.try_acquire(std::string("t:\0\n\r{}", 7)).reason, Reason::kColdKey);
  EXPECT_EQ(limiter.stats().keys_tracked, 2u);
}

}  // namespace
}  // namespace tollgate
