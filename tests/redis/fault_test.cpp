// Faults against real redis-servers, seen through the Limiter (docs/resilience.md):
//   1. a hung shard (SIGSTOP) under load: its breaker opens, its keys fall back to their
//      local buckets, the other shards' keys are untouched, try_acquire stays fast, and
//      after SIGCONT the shard is back within 2 s plus the break duration; the bound and
//      the fallback allowance hold, and the same run with a store that reports twice what
//      it grants (tools/faults) must exceed the bound;
//   3. a slow shard (DEBUG SLEEP): the slow-call rate opens the breaker;
//   4. connections dropped in a loop (CLIENT KILL) under load: the total stays within
//      the bound, and the store never grants more than its bucket holds;
//   6. wrong password, nothing listening, a port that never answers: a decision reason
//      and a log line, never a hang.
// (2, a killed shard, and 5, the bulkhead, are in breaker_test.cpp; 7, 30 s of mixed
// faults, is the simulator's sim.faults.)
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "faults/faulty_store.h"
#include "redis_server.h"
#include "store/redis/redis_store.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

// Breaker changes and log lines, with the time they arrived.
class Recorder final : public Observer {
 public:
  struct Change {
    std::uint32_t shard;
    BreakerState to;
    Steady::time_point at;
  };
  void on_breaker(const BreakerEvent& e) noexcept override {
    std::lock_guard lk(mu_);
    changes_.push_back({e.shard, e.to, Steady::now()});
  }
  void on_log(LogLevel, std::string_view message) noexcept override {
    std::lock_guard lk(mu_);
    logs_.emplace_back(message);
  }
  // The first change of `shard` to `to` at or after `since`.
  std::optional<Steady::time_point> first(std::uint32_t shard, BreakerState to,
                                          Steady::time_point since) const {
    std::lock_guard lk(mu_);
    for (const auto& c : changes_) {
      if (c.shard == shard && c.to == to && c.at >= since) return c.at;
    }
    return std::nullopt;
  }
  std::vector<std::string> logs() const {
    std::lock_guard lk(mu_);
    return logs_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Change> changes_;
  std::vector<std::string> logs_;
};

// Times this thread was preempted (not counting its own waits).
long involuntary_switches() {
  rusage u{};
  ::getrusage(RUSAGE_THREAD, &u);
  return u.ru_nivcsw;
}

// Waits for `done` (polled every 5 ms), at most `limit`. True when it happened.
template <typename F>
bool eventually(F done, Steady::duration limit) {
  const auto until = Steady::now() + limit;
  while (Steady::now() < until) {
    if (static_cast<bool>(done())) return true;
    std::this_thread::sleep_for(5ms);  // polling a condition, bounded by `limit`
  }
  return static_cast<bool>(done());
}

Config sharded_config(const std::vector<std::string>& shards, FallbackMode fallback) {
  Config c;
  Policy p;
  p.name = "tenants";
  p.match = "t:*";
  p.rate = 2000;
  p.burst = 2000;
  p.fallback.mode = fallback;
  c.policies.push_back(p);
  c.store.type = "redis";
  c.store.shards = shards;
  c.store.breaker.break_duration = 1s;
  c.leases.ttl = 2s;
  return c;
}

// ---------------------------------------------------------------------------------------
// 1. Hung shard under load

// What the hung-shard run admitted, per key, against its bounds.
struct HungShardKey {
  std::size_t shard = 0;
  std::uint64_t offered = 0, from_leases = 0, by_fallback = 0;
  double lease_bound = 0, allowance = 0;
};

// The hung-shard run, its store behind `fault`. Asserts what a hung shard must look like
// (breaker, fallback, recovery, latency); the bound is left to the caller, in `keys`.
void run_hung_shard(faults::Fault fault, std::vector<HungShardKey>& result) {
  testing::RedisServer s0, s1, s2;
  Config config = sharded_config({s0.url(), s1.url(), s2.url()}, FallbackMode::kLocal);
  // Each key is offered about 1000 calls a second, 16x its rate of 60/s: over a run of 2 s
  // or more that is more than 3x its bound plus the fallback allowance (below), so a
  // limiter that admitted everything would fail the check. The latencies are reported
  // for all calls and for admissions apart.
  config.policies[0].rate = 60;
  config.policies[0].burst = 60;
  // How soon a hung shard is noticed is mostly its timeouts: a lease that hangs, then the
  // retry's reconnect that hangs. 250 ms each leaves room under the 2 s target on a busy
  // machine; with the defaults (500 ms) it opens after ~1.1–1.4 s, sometimes ~2.2 s
  // (docs/resilience.md).
  config.store.command_timeout = 250ms;
  config.store.connect_timeout = 250ms;
  // The keys are over-offered, so they ask often (their buckets are always low: ~270 calls
  // a second per shard here), and the successes before the hang dilute the failure ratio
  // over the breaker's window: with the default 2 s it opened after 1.5-1.8 s, too close
  // to the 2 s asserted; with 1 s, after ~0.8 s.
  config.store.breaker.sampling_duration = 1s;
  auto recorder = std::make_shared<Recorder>();
  auto store = std::make_shared<redis::RedisStore>(config.store);
  Limiter limiter(config, Limiter::Options{.store = faults::with_fault(store, fault),
                                           .clock = nullptr,
                                           .background_thread = true,
                                           .observer = recorder});
  // Ten keys on each shard.
  std::vector<std::string> keys;
  std::vector<std::size_t> shard_of;
  const Policy& policy = config.policies[0];
  std::array<int, 3> per_shard{};
  for (int i = 0; keys.size() < 30; ++i) {
    const std::string k = "t:" + std::to_string(i);
    const std::size_t sh = store->shard_of(policy, k);
    if (per_shard[sh] == 10) continue;
    ++per_shard[sh];
    keys.push_back(k);
    shard_of.push_back(sh);
  }

  // Load: every key every millisecond, each call timed, from one thread (so that on two
  // cores it is seldom preempted in the middle of a call). Per key, admissions by reason.
  struct alignas(64) KeyCounts {
    std::atomic<std::uint64_t> offered{0}, ok{0}, fallback{0}, other{0};
  };
  std::vector<KeyCounts> counts(keys.size());
  std::atomic<bool> stop{false};
  std::vector<std::vector<std::uint32_t>> latency(1);
  std::atomic<int> preempted_rounds{0};
  std::vector<std::thread> load;
  for (int th = 0; th < 1; ++th) {
    load.emplace_back([&, th] {
      auto& lat = latency[static_cast<std::size_t>(th)];
      lat.reserve(1 << 21);
      std::vector<std::uint32_t> round;
      while (!stop.load(std::memory_order_relaxed)) {
        round.clear();
        const long switches = involuntary_switches();
        for (std::size_t k = 0; k < keys.size(); ++k) {
          const auto a = Steady::now();
          const Decision d = limiter.try_acquire(keys[k]);
          const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Steady::now() - a);
          counts[k].offered.fetch_add(1, std::memory_order_relaxed);
          // Admissions tagged in the top bit: their tail is the hot path's.
          round.push_back(
              static_cast<std::uint32_t>(std::min<std::int64_t>(ns.count(), 0x7fffffff)) |
              (d.allowed ? 0x80000000u : 0u));
          if (!d.allowed) continue;
          if (d.reason == Reason::kOk) {
            counts[k].ok.fetch_add(1, std::memory_order_relaxed);
          } else if (d.reason == Reason::kFallbackLocal) {
            counts[k].fallback.fetch_add(1, std::memory_order_relaxed);
          } else {
            counts[k].other.fetch_add(1, std::memory_order_relaxed);
          }
        }
        // A round in which the OS preempted the thread times the machine, not the SDK.
        if (involuntary_switches() == switches && lat.size() + round.size() <= lat.capacity()) {
          lat.insert(lat.end(), round.begin(), round.end());
        } else {
          ++preempted_rounds;
        }
        // A millisecond between rounds, spinning: a thread that slept comes back to caches
        // other processes have used, and would time the machine's load, not the SDK.
        const auto next = Steady::now() + 1ms;
        while (Steady::now() < next && !stop.load(std::memory_order_relaxed)) {
        }
      }
    });
  }
  const auto total = [&](std::size_t shard, auto field) {
    std::uint64_t n = 0;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      if (shard_of[k] == shard) n += (counts[k].*field).load();
    }
    return n;
  };
  struct Joiner {  // stops the load also when an ASSERT returns early
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop = true;
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } joiner{stop, load};
  using Field = std::atomic<std::uint64_t> KeyCounts::*;
  const Field ok = &KeyCounts::ok, fallback = &KeyCounts::fallback;
  const auto t_start = Steady::now();

  // Warm: every shard's keys admitted from leases.
  ASSERT_TRUE(eventually([&] { return total(0, ok) && total(1, ok) && total(2, ok); }, 10s));
  std::this_thread::sleep_for(500ms);  // half a second of steady load

  s1.pause();
  const auto t_stop = Steady::now();
  const std::uint64_t ok0 = total(0, ok), ok2 = total(2, ok);
  ASSERT_TRUE(eventually([&] { return recorder->first(1, BreakerState::kOpen, t_stop); }, 10s))
      << "shard 1's breaker never opened: failures " << store->counters().failures << ", calls "
      << store->counters().calls << ", retries " << store->counters().retries << ", state "
      << to_string(store->breaker_state(1)) << ", lease failures "
      << limiter.stats().lease_failures;
  const auto opened_after = *recorder->first(1, BreakerState::kOpen, t_stop) - t_stop;
  EXPECT_LT(opened_after, 2s);
  // Its keys fall back to their local buckets (their leases spent or expired).
  EXPECT_TRUE(eventually([&] { return total(1, fallback) > 0; }, 5s));
  // Meanwhile the other shards' keys keep being admitted from leases, never by fallback.
  EXPECT_TRUE(eventually([&] { return total(0, ok) > ok0 && total(2, ok) > ok2; }, 5s));
  EXPECT_EQ(total(0, fallback), 0u);
  EXPECT_EQ(total(2, fallback), 0u);
  EXPECT_FALSE(recorder->first(0, BreakerState::kOpen, t_start));
  EXPECT_FALSE(recorder->first(2, BreakerState::kOpen, t_start));
  const Stats during = limiter.stats();
  ASSERT_EQ(during.breakers.size(), 3u);
  EXPECT_GE(during.breakers_opened, 1u);

  s1.resume();
  const auto t_cont = Steady::now();
  const std::uint64_t ok1 = total(1, ok);
  ASSERT_TRUE(eventually([&] { return recorder->first(1, BreakerState::kClosed, t_cont); },
                         2s + config.store.breaker.break_duration + 5s))
      << "shard 1's breaker never closed";
  EXPECT_LT(*recorder->first(1, BreakerState::kClosed, t_cont) - t_cont,
            2s + config.store.breaker.break_duration);
  // Leases flow again: shard 1's keys are admitted from leases.
  EXPECT_TRUE(eventually([&] { return total(1, ok) > ok1; }, 5s));
  stop = true;
  for (auto& t : load) t.join();
  const double seconds = std::chrono::duration<double>(Steady::now() - t_start).count();
  const Stats after = limiter.stats();
  EXPECT_EQ(after.breakers[1], BreakerState::kClosed);
  EXPECT_GT(after.fallback_tokens, 0u);

  // Per key, apart: admissions from leases against the bound (burst + rate x (time +
  // ttl)), and by the fallback against the declared fallback allowance (its local
  // bucket's burst + rate x time; instances = 1; on shard 1 only).
  result.clear();
  for (std::size_t k = 0; k < keys.size(); ++k) {
    HungShardKey r;
    r.shard = shard_of[k];
    r.offered = counts[k].offered.load();
    r.from_leases = counts[k].ok.load() + counts[k].other.load();
    r.by_fallback = counts[k].fallback.load();
    r.lease_bound =
        policy.burst +
        policy.rate * (seconds + std::chrono::duration<double>(config.leases.ttl).count());
    if (shard_of[k] == 1) r.allowance = policy.fallback_burst() + policy.fallback_rate() * seconds;
    result.push_back(r);
  }

  // try_acquire never waited for the hung shard.
  std::vector<std::uint32_t> all, admissions;
  for (auto& l : latency) {
    for (std::uint32_t v : l) {
      all.push_back(v & 0x7fffffff);
      if (v & 0x80000000u) admissions.push_back(v & 0x7fffffff);
    }
  }
  std::sort(all.begin(), all.end());
  std::sort(admissions.begin(), admissions.end());
  ASSERT_FALSE(admissions.empty());
  const std::uint32_t p99_all = all[all.size() * 99 / 100];
  const std::uint32_t p99 = admissions[admissions.size() * 99 / 100];
  std::printf(
      "try_acquire over %zu calls: p50 %u ns, p99 %u ns, max %u ns; admissions (%zu): p50 %u "
      "ns, p99 %u ns; breaker opened after %lld ms\n",
      all.size(), all[all.size() / 2], p99_all, all.back(), admissions.size(),
      admissions[admissions.size() / 2], p99,
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(opened_after).count()));
  // A call that waited for the hung shard would take 500 ms (the command timeout).
  EXPECT_LT(all.back(), 100'000'000u) << "a try_acquire waited for the shard";
  // The 1 µs p99 target is reported, not asserted: on this two-core VM the p99 of
  // admissions measures 0.8–1.2 µs here whatever the SDK does (p50 ~70 ns), while
  // tollgate_sim sees ~300 ns; a timer in a test must not fail because a machine was
  // slow (docs/resilience.md, Figures).
}

// The excess of a key's admissions over its bound plus its excess over the allowance.
double excess_of(const HungShardKey& r) {
  return std::max(0.0, static_cast<double>(r.from_leases) - r.lease_bound) +
         std::max(0.0, static_cast<double>(r.by_fallback) - r.allowance);
}

TEST(Faults, AHungShardFallsBackWithinTwoSecondsLeavesTheOthersAloneAndComesBack) {
  std::vector<HungShardKey> keys;
  run_hung_shard(faults::Fault::kNone, keys);
  if (HasFatalFailure()) return;
  double least_ratio = 1e9;
  for (std::size_t k = 0; k < keys.size(); ++k) {
    const HungShardKey& r = keys[k];
    least_ratio =
        std::min(least_ratio, static_cast<double>(r.offered) / (r.lease_bound + r.allowance));
    EXPECT_LE(static_cast<double>(r.from_leases), r.lease_bound) << "key " << k;
    EXPECT_LE(static_cast<double>(r.by_fallback), r.allowance) << "key " << k;
  }
  // Reported, not asserted: how many calls the load thread made depends on the machine.
  std::printf("offered at least %.1fx each key's bound plus allowance\n", least_ratio);
}

// The same run with a store that reports twice what it grants: the check above must see
// the keys of the healthy shards admitted beyond their bound.
TEST(Faults, AHungShardBoundCheckFailsUnderDoubleGrant) {
  std::vector<HungShardKey> keys;
  run_hung_shard(faults::Fault::kDoubleGrant, keys);
  if (HasFatalFailure()) return;
  std::size_t over = 0, healthy = 0;
  for (const HungShardKey& r : keys) {
    if (r.shard == 1) continue;
    ++healthy;
    if (excess_of(r) > 0) ++over;
  }
  std::printf("double-grant: %zu of %zu keys of the healthy shards over their bound\n", over,
              healthy);
  EXPECT_GT(over, 0u) << "the bound check did not see the fault";
}

// ---------------------------------------------------------------------------------------
// 3. Slow shard

TEST(Faults, ASlowShardOpensTheBreakerByTheSlowCallRateAlone) {
  testing::RedisServer s;
  StoreConfig sc;
  sc.type = "redis";
  sc.shards = {s.url()};
  sc.command_timeout = 5s;  // slow calls, never timeouts
  sc.breaker.failure_ratio = 1.0;
  sc.breaker.slow_call_duration_threshold = 100ms;
  sc.breaker.slow_call_rate_threshold = 0.5;
  sc.breaker.minimum_throughput = 4;
  sc.breaker.sampling_duration = 10s;
  redis::RedisStore store(sc);
  auto p = std::make_shared<ResolvedPolicy>();
  p->name = p->match = "t";
  p->rate = 1e6;
  p->burst = 1e6;
  // Calls go out every 20 ms, without waiting for each other (as a limiter's refills
  // do), while the server sleeps 1.5 s: those caught behind the sleep are slow.
  std::thread sleeper([&] { EXPECT_EQ(s.cli({"DEBUG", "SLEEP", "1.5"}), "OK"); });
  constexpr int kCalls = 50;
  std::atomic<int> answered{0}, failed{0};
  std::promise<void> all;
  for (int i = 0; i < kCalls; ++i) {
    LeaseRequest r;
    r.key = "t:a";
    r.policy = p;
    r.want = 1;
    r.holder = "h";
    r.request_id = "h:" + std::to_string(i);
    r.ttl = 2s;
    store.lease({r}, [&](std::vector<LeaseGrant> g) {
      if (!g.at(0).ok && g.at(0).error.find("circuit open") == std::string::npos) ++failed;
      if (++answered == kCalls) all.set_value();
    });
    std::this_thread::sleep_for(20ms);  // the pace of the calls, not a wait
  }
  ASSERT_EQ(all.get_future().wait_for(20s), std::future_status::ready);
  sleeper.join();
  EXPECT_EQ(store.breaker_state(0), BreakerState::kOpen);
  EXPECT_EQ(failed.load(), 0) << "slow, not failed: the slow-call rate opened it";
  EXPECT_EQ(store.counters().failures, 0u);
}

// ---------------------------------------------------------------------------------------
// 4. Dropped connections under load

// 4 instances offer one key ~200 000 calls a second for 6 s (the bound: ~9000), while its
// shard's connections are killed every 50 ms. `fault` wraps each instance's store.
struct DropRun {
  std::uint64_t admitted = 0, leased = 0;
  double bound = 0;
};
DropRun run_dropped_connections(faults::Fault fault) {
  testing::RedisServer s;
  Config config = sharded_config({s.url()}, FallbackMode::kDeny);  // the strict bound
  config.policies[0].rate = 1000;
  config.policies[0].burst = 1000;
  constexpr int kInstances = 4;
  auto recorder = std::make_shared<Recorder>();
  std::vector<std::shared_ptr<redis::RedisStore>> stores;
  std::vector<std::unique_ptr<Limiter>> limiters;
  for (int i = 0; i < kInstances; ++i) {
    config.instance_id = "drop-" + std::to_string(i);
    stores.push_back(std::make_shared<redis::RedisStore>(config.store));
    limiters.push_back(std::make_unique<Limiter>(
        config, Limiter::Options{.store = faults::with_fault(stores.back(), fault),
                                 .clock = nullptr,
                                 .background_thread = true,
                                 .observer = recorder}));
  }
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> admitted{0};
  const auto t0 = Steady::now();
  std::vector<std::thread> load;
  for (int i = 0; i < kInstances; ++i) {
    load.emplace_back([&, i] {
      while (!stop.load(std::memory_order_relaxed)) {
        for (int n = 0; n < 50; ++n) {
          if (limiters[static_cast<std::size_t>(i)]->try_acquire("t:shared")) ++admitted;
        }
        std::this_thread::sleep_for(1ms);
      }
    });
  }
  std::thread killer([&] {
    while (!stop) {
      s.cli({"CLIENT", "KILL", "TYPE", "normal"});
      std::this_thread::sleep_for(50ms);
    }
  });
  std::this_thread::sleep_for(6s);  // the length of the run, not a wait for something
  stop = true;
  for (auto& t : load) t.join();
  killer.join();
  const double seconds = std::chrono::duration<double>(Steady::now() - t0).count();
  std::uint64_t leased = 0, retries = 0, failed = 0;
  for (auto& l : limiters) {
    leased += l->stats().tokens_leased;
    failed += l->stats().lease_failures;
  }
  for (auto& st : stores) retries += st->counters().retries;
  const Policy& p = config.policies[0];
  // What the store may grant in all: the burst and the refill since the start (plus the
  // first lease's head start of one ttl). A refill granted twice would exceed it.
  const double store_bound = p.burst + p.rate * (seconds + 2.0);
  std::size_t drops = 0;
  for (const auto& line : recorder->logs()) {
    drops += line.find("closed the connection") != std::string::npos ? 1 : 0;
  }
  EXPECT_GE(drops, 10u) << "the connections were not dropped";
  // And quotas kept working between the drops.
  EXPECT_GT(static_cast<double>(admitted.load()), 0.3 * (p.burst + p.rate * seconds));
  std::printf(
      "admitted %llu in %.1f s (bound %.0f), leased %llu, drops %zu, retries %llu, "
      "failed %llu\n",
      static_cast<unsigned long long>(admitted.load()), seconds, store_bound,
      static_cast<unsigned long long>(leased), drops, static_cast<unsigned long long>(retries),
      static_cast<unsigned long long>(failed));
  return {admitted.load(), leased, store_bound};
}

TEST(Faults, ConnectionsDroppedInALoopNeverGrantARefillTwice) {
  const DropRun r = run_dropped_connections(faults::Fault::kNone);
  EXPECT_LE(static_cast<double>(r.leased), r.bound);
  EXPECT_LE(static_cast<double>(r.admitted), r.bound);
}

// The same run with stores that report twice what they grant: the check above must see
// the bound exceeded.
TEST(Faults, ConnectionsDroppedBoundCheckFailsUnderDoubleGrant) {
  const DropRun r = run_dropped_connections(faults::Fault::kDoubleGrant);
  EXPECT_GT(static_cast<double>(r.admitted), r.bound) << "the bound check did not see the fault";
}

// ---------------------------------------------------------------------------------------
// 6. Start-up errors: a decision reason and a log line, never a hang

// A loopback port: with a listener that accepts and never answers, or with nothing.
class Port {
 public:
  explicit Port(bool listen) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (listen) {
      ::listen(fd_, 16);  // the kernel completes handshakes; nobody ever reads
    } else {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Port() {
    if (fd_ >= 0) ::close(fd_);
  }
  std::string url(const std::string& userinfo = "") const {
    return "redis://" + userinfo + "127.0.0.1:" + std::to_string(port_);
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

struct StartUp {
  std::string name;
  FallbackMode mode;
  Reason expected;
  std::string log_contains;
};

class StartUpFaults : public ::testing::TestWithParam<StartUp> {};

TEST_P(StartUpFaults, AnswerWithTheFallbackReasonAndALogLineNeverAHang) {
  const StartUp& c = GetParam();
  testing::RedisServer::Options so;
  so.password = "right-secret";
  std::optional<testing::RedisServer> server;
  std::optional<Port> port;
  std::string url;
  if (c.name == "wrong_password") {
    server.emplace(so);
    url = server->url(":wrong-secret@");
  } else {
    port.emplace(c.name == "silent_port");
    url = port->url();
  }
  Config config = sharded_config({url}, c.mode);
  config.store.connect_timeout = 300ms;
  config.store.command_timeout = 300ms;
  auto recorder = std::make_shared<Recorder>();
  Limiter limiter(
      config,
      Limiter::Options{
          .store = nullptr, .clock = nullptr, .background_thread = true, .observer = recorder});
  Decision d;
  const auto t0 = Steady::now();
  // Cold, then waiting for the first answer; then the fallback decides.
  EXPECT_TRUE(eventually(
      [&] {
        d = limiter.try_acquire("t:a");
        return d.reason != Reason::kColdKey && d.reason != Reason::kLeasePending;
      },
      10s))
      << "still " << to_string(d.reason) << " after 10 s";
  EXPECT_EQ(d.reason, c.expected) << to_string(d.reason);
  // allow admits; deny refuses; local (share mode, the default) refuses a key this instance
  // was never granted: it has no share to fall back on (docs/resilience.md, "Fallbacks").
  EXPECT_EQ(d.allowed, c.expected == Reason::kFallbackAllow);
  // A waiting acquire ends too (by its timeout at the latest).
  const Decision w = limiter.acquire("t:b", 1, 500ms);
  EXPECT_TRUE(w.allowed || w.reason == Reason::kTimeout || w.reason == Reason::kFallbackDeny ||
              w.reason == Reason::kFallbackLocal)
      << to_string(w.reason);
  std::printf(
      "%s: %s after %lld ms\n", c.name.c_str(), std::string(to_string(d.reason)).c_str(),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - t0).count()));
  // The log line comes with the call's failure, which may follow the decision: an overdue
  // refill (leases.overdue_floor) hands the key to the fallback before the call times out.
  std::vector<std::string> logs;
  auto logged = [&] {
    logs = recorder->logs();
    for (const auto& line : logs)
      if (line.find(c.log_contains) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(eventually(logged, 10s))
      << "no log line with \"" << c.log_contains << "\" among " << logs.size();
  for (const auto& line : logs)
    EXPECT_EQ(line.find("secret"), std::string::npos) << "a password in a log line: " << line;
}

INSTANTIATE_TEST_SUITE_P(Faults, StartUpFaults,
                         ::testing::Values(StartUp{"wrong_password", FallbackMode::kDeny,
                                                   Reason::kFallbackDeny, "WRONGPASS"},
                                           StartUp{"nothing_listening", FallbackMode::kAllow,
                                                   Reason::kFallbackAllow, "cannot connect"},
                                           StartUp{"silent_port", FallbackMode::kLocal,
                                                   Reason::kFallbackLocal, "timed out"}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace tollgate
