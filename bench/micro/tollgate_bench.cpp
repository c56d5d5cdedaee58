// Micro benchmarks of the Limiter's hot path and of its memory per tracked key.
// What each one measures, and the targets, are in docs/performance.md. Tooling reads the
// benchmark and counter names: keep them as they are.
//
//   BM_TryAcquireHit/threads:1   try_acquire on one warm key, one thread
//   BM_TryAcquireHit/threads:2   the same key from two threads at once
//   BM_TryAcquireManyKeys        100k warm keys, random order (a precomputed sequence)
//   BM_TryAcquireHitKeyRef       BM_TryAcquireHit/threads:1 through a KeyRef (no hash, no probe)
//   BM_TryAcquireManyKeyRefs     BM_TryAcquireManyKeys through one KeyRef per key
//   BM_BytesPerKey               1M keys tracked; counters bytes_per_key, stats_bytes_per_key
//   BM_ReferenceCas/threads:N    a bare load + CAS on one atomic: the floor, for comparison
//   BM_KeyFlood                  1M distinct keys a (virtual) second for 30 s beside 1,000
//                                steady tenants; counters steady_share, requests_to_admit
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tollgate/clock.h"
#include "tollgate/config.h"
#include "tollgate/decision.h"
#include "tollgate/limiter.h"
#include "tollgate/manual_clock.h"
#include "tollgate/quota_store.h"

namespace {

using namespace std::chrono_literals;
using tollgate::Config;
using tollgate::Decision;
using tollgate::Limiter;
using tollgate::Policy;
using tollgate::PolicyKind;

// A bucket that never runs dry within a benchmark: huge rate and burst, leases as large as
// the library allows (max_fraction 1.0), long-lived, and covering a long horizon.
Config never_dry_config(std::size_t max_keys) {
  Config c;
  Policy p;
  p.name = std::string("bench");  // not = "bench": GCC 12 -O3 -Wrestrict false positive
  p.match = std::string("*");
  p.kind = PolicyKind::kTokenBucket;
  p.rate = 1e12;
  p.burst = 1e12;
  c.policies.push_back(p);
  c.leases.ttl = 600s;
  c.leases.horizon = 1s;
  c.leases.max_fraction = 1.0;
  c.leases.expiry_margin = 20ms;
  c.max_keys = max_keys;
  c.idle_timeout = 3600s;
  c.instance_id = std::string("bench");
  return c;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "tollgate_bench: %s\n", what);
  std::abort();
}

// Calls try_acquire (with short real sleeps in between) until `key` is admitted: its first
// lease has arrived. The key table, the lease and the caches are warm afterwards.
bool warm_up(Limiter& limiter, std::string_view key) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (limiter.try_acquire(key)) {
      // A few more, so the first-touch paths are behind us.
      for (int i = 0; i < 1000; ++i) (void)limiter.try_acquire(key);
      return true;
    }
    std::this_thread::sleep_for(200us);
  }
  return false;
}

// Heap in use: small chunks (uordblks) and mmapped blocks (hblkhd, large arrays such as
// the key table's slots), summed over all arenas by glibc.
std::size_t heap_in_use() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// ---------------------------------------------------------------------------------------
// BM_TryAcquireHit: one warm key, 1 or 2 threads on it.

constexpr std::string_view kHotKey = "tenant:hot";
std::unique_ptr<Limiter> g_hot;

void setup_hot(const benchmark::State&) {
  g_hot = std::make_unique<Limiter>(never_dry_config(1024));
  if (!warm_up(*g_hot, kHotKey)) die("hot key never received a lease");
}

void teardown_hot(const benchmark::State&) {
  g_hot.reset();
}

void BM_TryAcquireHit(benchmark::State& state) {
  Limiter& limiter = *g_hot;
  std::uint64_t denied = 0;
  for (auto _ : state) {
    Decision d = limiter.try_acquire(kHotKey);
    denied += d.allowed ? 0 : 1;
    benchmark::DoNotOptimize(d);
  }
  // No items_per_second here: without UseRealTime() it would be computed from CPU time,
  // which for two threads is twice the wall time. The Time column is the figure.
  state.counters["denied"] = benchmark::Counter(static_cast<double>(denied));  // summed
}
// Not UseRealTime(): it would rename the runs BM_TryAcquireHit/real_time/threads:N, and the
// names are read by tooling. The "Time" column is wall-clock time either way (for N
// threads: elapsed time / iterations of all threads); only the choice of the iteration
// count differs. See docs/performance.md.
BENCHMARK(BM_TryAcquireHit)->Setup(setup_hot)->Teardown(teardown_hot)->Threads(1)->Threads(2);

void BM_TryAcquireHitKeyRef(benchmark::State& state) {
  Limiter& limiter = *g_hot;
  const tollgate::KeyRef key = limiter.key_ref(kHotKey);
  std::uint64_t denied = 0;
  for (auto _ : state) {
    Decision d = limiter.try_acquire(key);
    denied += d.allowed ? 0 : 1;
    benchmark::DoNotOptimize(d);
  }
  state.counters["denied"] = benchmark::Counter(static_cast<double>(denied));
}
BENCHMARK(BM_TryAcquireHitKeyRef)->Setup(setup_hot)->Teardown(teardown_hot);

// ---------------------------------------------------------------------------------------
// BM_ReferenceCas: the floor under BM_TryAcquireHit on this machine — a load and a CAS on
// one shared atomic, nothing else. Two threads show what moving one cache line between
// cores costs.

alignas(64) std::atomic<std::int64_t> g_reference{std::int64_t{1} << 62};

void BM_ReferenceCas(benchmark::State& state) {
  for (auto _ : state) {
    std::int64_t b = g_reference.load(std::memory_order_relaxed);
    while (!g_reference.compare_exchange_weak(b, b - 1, std::memory_order_acquire,
                                              std::memory_order_relaxed)) {
    }
  }
}
BENCHMARK(BM_ReferenceCas)->Threads(1)->Threads(2);

// ---------------------------------------------------------------------------------------
// BM_TryAcquireManyKeys: 100k warm keys, accessed in a random order.

constexpr std::size_t kManyKeys = 100'000;
constexpr std::size_t kSequence = 1 << 20;  // precomputed random key indices
std::unique_ptr<Limiter> g_many;
std::vector<std::string> g_keys;
std::vector<std::uint32_t> g_order;

void setup_many(const benchmark::State&) {
  g_keys.clear();
  g_keys.reserve(kManyKeys);
  char buf[32];
  for (std::size_t i = 0; i < kManyKeys; ++i) {
    std::snprintf(buf, sizeof(buf), "tenant:%06zu", i);
    g_keys.emplace_back(buf);
  }
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::uint32_t> pick(0, kManyKeys - 1);
  g_order.resize(kSequence);
  for (auto& i : g_order) i = pick(rng);

  g_many = std::make_unique<Limiter>(never_dry_config(2 * kManyKeys));
  // First sight of every key asks for its lease; then retry until all are admitted.
  std::vector<std::uint32_t> cold(kManyKeys);
  for (std::uint32_t i = 0; i < kManyKeys; ++i) cold[i] = i;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!cold.empty()) {
    std::vector<std::uint32_t> still;
    for (std::uint32_t i : cold) {
      if (!g_many->try_acquire(g_keys[i])) still.push_back(i);
    }
    cold.swap(still);
    if (cold.empty()) break;
    if (std::chrono::steady_clock::now() > deadline) die("100k keys never all received a lease");
    std::this_thread::sleep_for(1ms);
  }
}

void teardown_many(const benchmark::State&) {
  g_many.reset();
  g_keys = {};
  g_order = {};
}

// Decides on keys[order[0]], keys[order[1]], ... (one precomputed random sequence).
template <typename Key>
void decide_in_random_order(benchmark::State& state, Limiter& limiter, const Key* keys) {
  const std::uint32_t* order = g_order.data();
  std::size_t pos = 0;
  std::uint64_t denied = 0;
  for (auto _ : state) {
    const Key& key = keys[order[pos]];
    pos = (pos + 1) & (kSequence - 1);
    Decision d = limiter.try_acquire(key);
    denied += d.allowed ? 0 : 1;
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["denied"] = benchmark::Counter(static_cast<double>(denied));
}

void BM_TryAcquireManyKeys(benchmark::State& state) {
  decide_in_random_order(state, *g_many, g_keys.data());
  state.counters["keys"] = benchmark::Counter(static_cast<double>(g_many->stats().keys_tracked));
}
BENCHMARK(BM_TryAcquireManyKeys)->Setup(setup_many)->Teardown(teardown_many);

void BM_TryAcquireManyKeyRefs(benchmark::State& state) {
  Limiter& limiter = *g_many;
  std::vector<tollgate::KeyRef> refs;
  refs.reserve(kManyKeys);
  for (const std::string& key : g_keys) refs.push_back(limiter.key_ref(key));
  for (const auto& k : refs) (void)limiter.try_acquire(k);  // resolve each once
  decide_in_random_order(state, limiter, refs.data());
}
BENCHMARK(BM_TryAcquireManyKeyRefs)->Setup(setup_many)->Teardown(teardown_many);

// ---------------------------------------------------------------------------------------
// BM_BytesPerKey: what tracking a million keys costs in memory.
//
// A store that grants whatever is asked, inline, and keeps nothing per key: the heap
// growth measured is then the Limiter's alone (the global buckets live in Redis in
// production). Every key is leased, so the scheduler's per-key state (lease timers)
// is counted too.
class GrantAllStore final : public tollgate::QuotaStore {
 public:
  void lease(std::vector<tollgate::LeaseRequest> batch, LeaseCallback done) override {
    const tollgate::Nanos now = clock_->now();
    std::vector<tollgate::LeaseGrant> grants(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      grants[i].granted = batch[i].want;
      grants[i].now = now;
      grants[i].expires_at = now + batch[i].ttl;
      grants[i].remaining = 1'000'000'000;
    }
    batch.clear();
    batch.shrink_to_fit();
    done(std::move(grants));
  }
  void give_back(std::vector<tollgate::GiveBack>) override {}

 private:
  std::shared_ptr<tollgate::SteadyClock> clock_ = tollgate::SteadyClock::shared();
};

constexpr std::size_t kMillion = 1'000'000;

void BM_BytesPerKey(benchmark::State& state) {
  for (auto _ : state) {
    Config config = never_dry_config(kMillion);
    Limiter::Options options;
    options.store = std::make_shared<GrantAllStore>();
    options.background_thread = false;  // leases are driven by poll() below
    // Measured before the Limiter exists: what it allocates up front (the admission
    // sketch, 2 MiB at 1M keys) is counted too.
    const std::size_t before = heap_in_use();
    auto limiter = std::make_unique<Limiter>(std::move(config), std::move(options));
    limiter->poll();

    char buf[32];
    std::uint64_t created = 0;
    for (std::size_t i = 0; i < kMillion; ++i) {
      // Keys are formatted on the stack: the benchmark keeps no copy of them.
      int n = std::snprintf(buf, sizeof(buf), "tenant:%07zu", i);
      Decision d = limiter->try_acquire(std::string_view(buf, static_cast<std::size_t>(n)));
      created += d.reason == tollgate::Reason::kColdKey ? 1 : 0;
    }
    // Lease every key, then let the scheduler free what it can (retired slot arrays).
    for (int i = 0; i < 3; ++i) limiter->poll();
    const tollgate::Stats st = limiter->stats();
    const std::size_t after = heap_in_use();

    std::uint64_t admitted = 0;  // spot check: leased keys admit
    for (std::size_t i = 0; i < kMillion; i += 1000) {
      int n = std::snprintf(buf, sizeof(buf), "tenant:%07zu", i);
      admitted += limiter->try_acquire(std::string_view(buf, static_cast<std::size_t>(n))) ? 1 : 0;
    }

    const double keys = static_cast<double>(st.keys_tracked);
    state.counters["keys"] = keys;
    state.counters["cold_denials"] = static_cast<double>(created);
    state.counters["leases_granted"] = static_cast<double>(st.leases_granted);
    state.counters["spot_admitted_pct"] = static_cast<double>(admitted) / (kMillion / 1000) * 100;
    state.counters["bytes_per_key"] = keys > 0 ? static_cast<double>(after - before) / keys : 0.0;
    state.counters["stats_bytes_per_key"] =
        keys > 0 ? static_cast<double>(st.bytes_used) / keys : 0.0;
    state.PauseTiming();
    limiter.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_BytesPerKey)->Iterations(1)->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------------------
// BM_KeyFlood: a flood of distinct keys beside the keys that carry real traffic, on a
// manual clock (a fixed amount of work, not wall-clock seconds). Default max_keys (100k),
// one policy `t:*` (10 tokens/s, burst 10). Each virtual millisecond: 1,000 random keys
// (1M/s, `t:f:` and 10 hex digits), 20 of the 1,000 steady tenants (each sends 20/s, twice its
// rate), the newcomers due (from second 1 on, one new key a second, each sending 10/s), then one
// poll().
//
//   steady_share       steady tenants' admissions with the flood / without it (>= 0.99)
//   requests_to_admit  median requests a newcomer sent until one was admitted (<= 10);
//                      one never admitted counts all it sent
//   never_admitted     newcomers not admitted by the end
//   bytes_per_max_key  most of Stats::bytes_used seen, / max_keys (<= 200)
//   heap_per_max_key   most heap growth seen (the Limiter constructed inside it), / max_keys
//   p99_ns             99th percentile of a try_acquire call during the flood (all keys)

// A store that keeps only a token bucket per steady key (10/s, burst 10, no request-id
// memory), and nothing for flood keys (granted as asked): the heap growth measured is then
// the Limiter's own, as with Redis holding the buckets in production.
class FloodStore final : public tollgate::QuotaStore {
 public:
  explicit FloodStore(std::shared_ptr<const tollgate::Clock> clock) : clock_(std::move(clock)) {}
  void lease(std::vector<tollgate::LeaseRequest> batch, LeaseCallback done) override {
    const tollgate::Nanos now = clock_->now();
    std::vector<tollgate::LeaseGrant> grants(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      tollgate::LeaseGrant& g = grants[i];
      g.now = now;
      g.expires_at = now + batch[i].ttl;
      g.remaining = 1'000'000;
      if (batch[i].key.starts_with("t:f:")) {
        g.granted = batch[i].want;
        continue;
      }
      Bucket& b = buckets_.try_emplace(batch[i].key, Bucket{10.0, now}).first->second;
      b.tokens = std::min(10.0, b.tokens + std::chrono::duration<double>(now - b.at).count() * 10);
      b.at = now;
      const auto have = static_cast<std::uint64_t>(b.tokens);
      g.granted = have >= batch[i].min ? std::min(have, batch[i].want) : 0;
      b.tokens -= static_cast<double>(g.granted);
      g.remaining = static_cast<std::uint64_t>(b.tokens);
      if (g.granted == 0) g.wait_until = now + std::chrono::milliseconds(100);
    }
    done(std::move(grants));
  }
  void give_back(std::vector<tollgate::GiveBack> batch) override {
    for (const tollgate::GiveBack& g : batch) {
      auto it = buckets_.find(g.key);
      if (it != buckets_.end()) {
        it->second.tokens = std::min(10.0, it->second.tokens + static_cast<double>(g.tokens));
      }
    }
  }

 private:
  struct Bucket {
    double tokens;
    tollgate::Nanos at;
  };
  std::shared_ptr<const tollgate::Clock> clock_;
  std::unordered_map<std::string, Bucket> buckets_;
};

struct FloodRun {
  std::uint64_t steady_admitted = 0;
  std::vector<std::uint64_t> to_admit;  // per newcomer
  std::size_t never_admitted = 0;
  std::uint64_t max_bytes_used = 0;
  std::size_t heap_growth = 0;
  double p99_ns = 0;
  std::size_t max_keys = 0;
  std::uint64_t evicted = 0;
};

FloodRun run_flood(bool flood) {
  constexpr int kSeconds = 30;
  constexpr int kSteady = 1000;
  constexpr int kFloodPerMs = 1000;
  std::vector<float> samples;  // every 8th call's duration
  samples.reserve(static_cast<std::size_t>(kSeconds) * 1000 * (kFloodPerMs + 30) / 8 + 1);
  const std::size_t heap_before = heap_in_use();  // the Limiter's table and sketch are counted
  auto clock = std::make_shared<tollgate::ManualClock>();
  Config c;
  Policy p;
  p.name = std::string("t");
  p.match = std::string("t:*");
  p.kind = PolicyKind::kTokenBucket;
  p.rate = 10;
  p.burst = 10;
  c.policies.push_back(p);
  c.instance_id = std::string("bench");
  Limiter::Options options;
  options.store = std::make_shared<FloodStore>(clock);
  options.clock = clock;
  options.background_thread = false;
  auto limiter_ptr = std::make_unique<Limiter>(std::move(c), std::move(options));
  Limiter& limiter = *limiter_ptr;
  FloodRun run;
  run.max_keys = limiter.config()->max_keys;
  std::size_t heap_max = 0;

  std::vector<std::string> steady(kSteady);
  for (int j = 0; j < kSteady; ++j) steady[j] = "t:steady:" + std::to_string(j);
  std::vector<std::string> newcomers(kSeconds);
  for (int i = 1; i < kSeconds; ++i) newcomers[i] = "t:new:" + std::to_string(i);
  std::vector<std::uint64_t> sent(kSeconds, 0);
  std::vector<bool> admitted(kSeconds, false);

  std::uint64_t calls = 0;
  auto timed = [&](std::string_view key) {
    const bool sample = (++calls & 7) == 0;
    const auto t0 =
        sample ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    Decision d = limiter.try_acquire(key);
    if (sample)
      samples.push_back(static_cast<float>((std::chrono::steady_clock::now() - t0).count()));
    return d;
  };

  std::uint64_t rng = 0x9e3779b97f4a7c15ULL;
  auto next = [&rng] {  // splitmix64
    std::uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  limiter.poll();
  char buf[32];
  for (int ms = 0; ms < kSeconds * 1000; ++ms) {
    if (flood) {
      for (int k = 0; k < kFloodPerMs; ++k) {
        // 14 bytes, as BM_BytesPerKey's keys: memory per key grows by one byte per key byte.
        int n = std::snprintf(buf, sizeof(buf), "t:f:%010llx",
                              static_cast<unsigned long long>(next() >> 24));
        benchmark::DoNotOptimize(timed(std::string_view(buf, static_cast<std::size_t>(n))));
      }
    }
    for (int j = ms % 50; j < kSteady; j += 50) run.steady_admitted += timed(steady[j]) ? 1 : 0;
    for (int i = 1; i <= ms / 1000 && i < kSeconds; ++i) {
      if (ms % 100 != i % 100 || admitted[i]) continue;
      ++sent[i];
      admitted[i] = timed(newcomers[i]).allowed;
    }
    clock->advance(1ms);
    limiter.poll();
    if (ms % 100 == 0) {
      run.max_bytes_used = std::max(run.max_bytes_used, limiter.stats().bytes_used);
      heap_max = std::max(heap_max, heap_in_use());
    }
  }
  run.heap_growth = heap_max > heap_before ? heap_max - heap_before : 0;
  for (int i = 1; i < kSeconds; ++i) {
    run.to_admit.push_back(sent[i]);
    run.never_admitted += admitted[i] ? 0 : 1;
  }
  if (!samples.empty()) {
    auto at = samples.begin() + static_cast<std::ptrdiff_t>(samples.size() * 99 / 100);
    std::nth_element(samples.begin(), at, samples.end());
    run.p99_ns = *at;
  }
  run.evicted = limiter.stats().keys_evicted;
  return run;
}

void BM_KeyFlood(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    const FloodRun quiet = run_flood(false);
    state.ResumeTiming();
    const FloodRun run = run_flood(true);
    std::vector<std::uint64_t> to_admit = run.to_admit;
    std::nth_element(to_admit.begin(), to_admit.begin() + to_admit.size() / 2, to_admit.end());
    const double max_keys = static_cast<double>(run.max_keys);
    state.counters["steady_share"] =
        quiet.steady_admitted > 0
            ? static_cast<double>(run.steady_admitted) / static_cast<double>(quiet.steady_admitted)
            : 0.0;
    state.counters["requests_to_admit"] = static_cast<double>(to_admit[to_admit.size() / 2]);
    state.counters["never_admitted"] = static_cast<double>(run.never_admitted);
    state.counters["bytes_per_max_key"] = static_cast<double>(run.max_bytes_used) / max_keys;
    state.counters["heap_per_max_key"] = static_cast<double>(run.heap_growth) / max_keys;
    state.counters["p99_ns"] = run.p99_ns;
    state.counters["keys_evicted"] = static_cast<double>(run.evicted);
  }
}
BENCHMARK(BM_KeyFlood)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
