// The I/O paths under real threads, for ThreadSanitizer (scripts/test's tsan stage runs
// the label "concurrency"; the cpp and asan stages run these too): the Redis store's
// connections, breakers and bulkheads, and the fallback switching on and off, while
// application threads decide, against real redis-servers that are killed, restarted,
// hung and resumed; and the C API called from several threads at once over Redis.
// Bounded: a fixed number of fault rounds, each waiting (polled, bounded) for the state it
// caused; nothing asserts how long anything took.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "redis_server.h"
#include "tollgate/tollgate.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

// Waits for `done` (polled every 5 ms), at most `limit`. True when it happened.
template <typename F>
bool eventually(F done, Steady::duration limit = 30s) {
  const auto until = Steady::now() + limit;
  while (Steady::now() < until) {
    if (static_cast<bool>(done())) return true;
    std::this_thread::sleep_for(5ms);  // polling a condition, bounded by `limit`
  }
  return static_cast<bool>(done());
}

class BreakerCount final : public Observer {
 public:
  void on_breaker(const BreakerEvent& e) noexcept override {
    changes.fetch_add(1, std::memory_order_relaxed);
    if (e.to == BreakerState::kOpen) opened.fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> changes{0}, opened{0};
};

// Decisions seen by the application threads, by reason.
struct Seen {
  std::atomic<std::uint64_t> by_reason[kReasonCount]{};
  void add(const Decision& d) { by_reason[static_cast<int>(d.reason)].fetch_add(1); }
  std::uint64_t operator[](Reason r) const { return by_reason[static_cast<int>(r)].load(); }
};

bool all_closed(const Limiter& l) {
  const Stats st = l.stats();
  for (BreakerState b : st.breakers) {
    if (b != BreakerState::kClosed) return false;
  }
  return !st.breakers.empty();
}

TEST(IoConcurrency, RedisStoreUnderThreadsThroughKillsRestartsAndHangs) {
  testing::RedisServer s0, s1;
  Config c;
  Policy local;
  local.name = "local";
  local.match = "t:*";
  local.rate = 500;
  local.burst = 500;
  local.fallback.mode = FallbackMode::kLocal;
  Policy deny = local;
  deny.name = "deny";
  deny.match = "d:*";
  deny.fallback.mode = FallbackMode::kDeny;
  Policy permits;
  permits.name = "permits";
  permits.match = "c:*";
  permits.kind = PolicyKind::kConcurrency;
  permits.limit = 4;
  c.policies = {local, deny, permits};
  c.store.type = "redis";
  c.store.shards = {s0.url(), s1.url()};
  c.store.command_timeout = 200ms;
  c.store.connect_timeout = 200ms;
  c.store.breaker.break_duration = 300ms;
  c.store.breaker.minimum_throughput = 2;
  c.store.breaker.sampling_duration = 1s;
  // A small bulkhead, so that 96 keys at once overflow it now and then.
  c.store.bulkhead.max_in_flight = 8;
  c.store.bulkhead.max_queue = 16;
  c.leases.ttl = 1s;
  auto observer = std::make_shared<BreakerCount>();
  Seen seen;
  std::atomic<std::uint64_t> async_started{0}, async_done{0};
  {
    Limiter limiter(
        c,
        Limiter::Options{
            .store = nullptr, .clock = nullptr, .background_thread = true, .observer = observer});
    std::atomic<bool> stop{false};
    std::vector<std::thread> app;
    for (int t = 0; t < 4; ++t) {
      app.emplace_back([&, t] {
        std::uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          ++n;
          const int k = static_cast<int>((n * 7 + static_cast<std::uint64_t>(t)) % 32);
          seen.add(limiter.try_acquire("t:" + std::to_string(k)));
          seen.add(limiter.try_acquire("d:" + std::to_string(k)));
          if (n % 16 == 0) {
            async_started.fetch_add(1);
            const WaitId id = limiter.acquire_async("t:" + std::to_string(k + 32), 1, 20ms,
                                                    [&](const Decision& d) {
                                                      seen.add(d);
                                                      async_done.fetch_add(1);
                                                    });
            if (id != 0 && n % 32 == 0) (void)limiter.cancel(id);
          }
          if (n % 64 == 0) seen.add(limiter.acquire("d:" + std::to_string(k + 32), 1, 5ms));
          if (n % 8 == 0) {
            Permit p = limiter.acquire_permit("c:" + std::to_string(k % 4));
            seen.add(p.decision());
          }
          if (n % 256 == 0) (void)limiter.stats();
        }
      });
    }

    auto ok_now = [&] { return seen[Reason::kOk]; };
    ASSERT_TRUE(eventually([&] { return ok_now() > 1000; })) << "leases never flowed";
    // Round 1: a shard killed (connections refused), then back on the same port, empty.
    const std::uint64_t opened = observer->opened.load();
    s0.kill();
    EXPECT_TRUE(eventually([&] { return observer->opened.load() > opened; }))
        << "the killed shard's breaker never opened";
    const std::uint64_t fell_back = seen[Reason::kFallbackLocal] + seen[Reason::kFallbackDeny];
    EXPECT_TRUE(eventually([&] {
      return seen[Reason::kFallbackLocal] + seen[Reason::kFallbackDeny] > fell_back + 100;
    })) << "no fallback decisions while a shard was down";
    s0.start();
    EXPECT_TRUE(eventually([&] { return all_closed(limiter); })) << "never closed again";
    std::uint64_t ok = ok_now();
    EXPECT_TRUE(eventually([&] { return ok_now() > ok + 1000; })) << "leases never came back";
    // Round 2: a shard hung (accepts, answers nothing: timeouts), then resumed.
    const std::uint64_t opened2 = observer->opened.load();
    s1.pause();
    EXPECT_TRUE(eventually([&] { return observer->opened.load() > opened2; }))
        << "the hung shard's breaker never opened";
    s1.resume();
    EXPECT_TRUE(eventually([&] { return all_closed(limiter); })) << "never closed again";
    ok = ok_now();
    EXPECT_TRUE(eventually([&] { return ok_now() > ok + 1000; })) << "leases never came back";

    stop.store(true);
    for (auto& th : app) th.join();
    const Stats st = limiter.stats();
    EXPECT_GT(st.lease_failures, 0u);
    EXPECT_GT(st.fallback_tokens, 0u);
  }  // destroyed: pending waits complete with shutdown
  EXPECT_EQ(async_done.load(), async_started.load()) << "every wait completes exactly once";
  EXPECT_GT(seen[Reason::kFallbackLocal], 0u);
  EXPECT_GT(seen[Reason::kFallbackDeny], 0u);
}

// ---------------------------------------------------------------------------------------
// The C API from several threads over Redis: decisions, waits and cancels, permits, stats
// and breaker states at once, through a shard killed and restarted; then destroyed with
// waits pending, from another thread than the ones that started them.

struct CWaits {
  std::atomic<std::uint64_t> started{0}, done{0}, shutdown{0};
};

void on_c_done(const tg_decision* d, void* user_data) {
  auto* w = static_cast<CWaits*>(user_data);
  if (d->reason == TG_REASON_SHUTDOWN) w->shutdown.fetch_add(1);
  w->done.fetch_add(1);
}

TEST(IoConcurrency, CApiFromSeveralThreadsThroughARestart) {
  testing::RedisServer s;
  const std::string config = R"({"store": {"type": "redis", "shards": [")" + s.url() +
                             R"("], "command_timeout_ms": 200, "connect_timeout_ms": 200,
           "breaker": {"break_duration_ms": 300, "minimum_throughput": 2}},
          "leases": {"ttl_ms": 1000},
          "policies": [
            {"match": "t:*", "type": "token_bucket", "rate": 500, "burst": 500},
            {"match": "c:*", "type": "concurrency", "limit": 3}]})";
  tg_limiter* l = nullptr;
  char err[256] = "";
  ASSERT_EQ(tg_limiter_create(&l, config.c_str(), nullptr, err, sizeof err), TG_OK) << err;
  CWaits waits;
  std::atomic<std::uint64_t> admitted{0}, bad_status{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::uint64_t n = 0;
      char key[16];
      while (!stop.load(std::memory_order_relaxed)) {
        ++n;
        const int len = std::snprintf(key, sizeof key, "t:%d", static_cast<int>(n % 16));
        tg_decision d;
        if (tg_try_acquire(&d, l, key, static_cast<size_t>(len), 1) != TG_OK) bad_status++;
        if (d.allowed) admitted++;
        if (n % 8 == static_cast<std::uint64_t>(t)) {
          std::uint64_t id = 0;
          waits.started++;
          if (tg_acquire_async(&id, l, key, static_cast<size_t>(len), 1, 10'000'000, on_c_done,
                               &waits) != TG_OK) {
            bad_status++;
          }
          int cancelled = 0;
          if (id != 0 && n % 16 == 0 && tg_cancel(&cancelled, l, id) != TG_OK) bad_status++;
        }
        if (n % 4 == 0) {
          tg_permit* p = nullptr;
          if (tg_acquire_permit(&p, &d, l, "c:x", 3, 1) != TG_OK) bad_status++;
          tg_permit_destroy(&p);
        }
        if (n % 128 == 0) {
          tg_stats st = TG_STATS_INIT;
          if (tg_limiter_stats(&st, l) != TG_OK) bad_status++;
          tg_breaker_state states[4];
          size_t count = 0;
          if (tg_limiter_breakers(states, 4, &count, l) != TG_OK || count != 1) bad_status++;
        }
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return admitted.load() > 1000; })) << "leases never flowed";
  s.kill();
  tg_stats st = TG_STATS_INIT;
  EXPECT_TRUE(eventually([&] {
    return tg_limiter_stats(&st, l) == TG_OK && st.breakers_opened > 0;
  })) << "the breaker never opened";
  s.start();
  EXPECT_TRUE(eventually([&] {
    return tg_limiter_stats(&st, l) == TG_OK && st.breakers_closed == 1;
  })) << "never closed again";
  const std::uint64_t before = admitted.load();
  EXPECT_TRUE(eventually([&] { return admitted.load() > before + 1000; }));
  stop.store(true);
  for (auto& th : threads) th.join();
  // Waits still pending (10 s timeouts) complete with shutdown, on this thread.
  tg_decision d;
  std::uint64_t id = 0;
  waits.started++;
  ASSERT_EQ(tg_acquire_async(&id, l, "t:pending", 9, 500, 10'000'000'000, on_c_done, &waits),
            TG_OK);
  tg_limiter_destroy(&l);
  EXPECT_EQ(l, nullptr);
  EXPECT_EQ(waits.done.load(), waits.started.load()) << "every wait completes exactly once";
  EXPECT_EQ(bad_status.load(), 0u);
  (void)d;
}

}  // namespace
}  // namespace tollgate
