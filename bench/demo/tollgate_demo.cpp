// Multi-instance quota simulation: N Limiter instances (each standing for one service
// replica, with 2 application threads) share one InProcessStore, the way the replicas of a
// deployment share one Redis. Each thread offers paced load, a multiple of every key's
// capacity, and counts what it is admitted. At the end the demo checks the documented
// bound for every key and prints a summary (docs/performance.md).
//
//   tollgate_demo [--instances N] [--seconds S] [--demand X] [--uniform] [--json]
//
// Exits 1 when any key was admitted more than its bound, 2 on bad arguments.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tollgate/clock.h"
#include "tollgate/config.h"
#include "tollgate/decision.h"
#include "tollgate/limiter.h"
#include "tollgate/quota_store.h"
#include "tollgate/version.h"

namespace {

using namespace std::chrono_literals;
using tollgate::Nanos;
using tollgate::PolicyKind;
using tollgate::Reason;
using Clock = std::chrono::steady_clock;

constexpr int kThreadsPerInstance = 2;
constexpr std::uint64_t kMaxCost = 4;  // costs are drawn from 1..kMaxCost

struct Options {
  int instances = 8;
  double seconds = 5;
  double demand = 2.0;   // offered load as a multiple of capacity
  bool uniform = false;  // split load evenly over instances (default: skewed)
  bool json = false;
};

// One key of the simulation and the policy that governs it.
struct KeySpec {
  std::string key;
  std::string policy;  // the policy's name
  PolicyKind kind;
  double rate = 0;  // token bucket
  double burst = 0;
  std::uint64_t limit = 0;  // fixed window
  Nanos window{0};

  // Tokens per second the key's policy lets through in the long run.
  double refill_per_second() const {
    if (kind == PolicyKind::kTokenBucket) return rate;
    return static_cast<double>(limit) * 1e9 / static_cast<double>(window.count());
  }
};

std::vector<KeySpec> demo_keys() {
  return {
      {"tenant:acme", "acme", PolicyKind::kTokenBucket, 2000, 500, 0, Nanos{0}},
      {"tenant:globex", "globex", PolicyKind::kTokenBucket, 1000, 250, 0, Nanos{0}},
      // Matched by the tenant:* pattern: the default for tenants without an override.
      {"tenant:initech", "tenant-default", PolicyKind::kTokenBucket, 500, 125, 0, Nanos{0}},
      {"export:nightly", "exports", PolicyKind::kFixedWindow, 0, 0, 400, Nanos{1s}},
  };
}

tollgate::Config demo_config(const std::vector<KeySpec>& keys, int instance) {
  tollgate::Config c;
  auto bucket = [](std::string name, std::string match, double rate, double burst) {
    tollgate::Policy p;
    p.name = std::move(name);
    p.match = std::move(match);
    p.kind = PolicyKind::kTokenBucket;
    p.rate = rate;
    p.burst = burst;
    return p;
  };
  c.policies.push_back(bucket("acme", "tenant:acme", keys[0].rate, keys[0].burst));
  c.policies.push_back(bucket("globex", "tenant:globex", keys[1].rate, keys[1].burst));
  c.policies.push_back(bucket("tenant-default", "tenant:*", keys[2].rate, keys[2].burst));
  tollgate::Policy fw;
  fw.name = "exports";
  fw.match = "export:*";
  fw.kind = PolicyKind::kFixedWindow;
  fw.limit = keys[3].limit;
  fw.window = keys[3].window;
  c.policies.push_back(fw);
  // Leases, cold keys: the SDK's defaults (LeaseOptions), printed at the start.
  c.instance_id = "demo-" + std::to_string(instance);
  return c;
}

// Counters of one application thread for one key. Written by that thread only (relaxed
// atomics, so the progress line can read them while it runs).
struct alignas(64) KeyCounters {
  std::atomic<std::uint64_t> offered{0}, offered_tokens{0};
  std::atomic<std::uint64_t> admitted{0}, admitted_tokens{0};
  std::array<std::atomic<std::uint64_t>, tollgate::kReasonCount> denied{};
};

struct Worker {
  int instance = 0;
  std::vector<double> tokens_per_second;  // offered, per key
  std::unique_ptr<KeyCounters[]> counters;
  std::thread thread;
};

std::uint64_t load(const std::atomic<std::uint64_t>& a) {
  return a.load(std::memory_order_relaxed);
}
void bump(std::atomic<std::uint64_t>& a, std::uint64_t by) {
  a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

// Offers load at a steady pace: every millisecond, whatever budget has accrued since the
// last round is spent on try_acquire calls of random cost.
void run_worker(Worker& w, tollgate::Limiter& limiter, const std::vector<KeySpec>& keys,
                const std::atomic<bool>& stop, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::uint64_t> cost_of(1, kMaxCost);
  const std::size_t n = keys.size();
  std::vector<double> budget(n, 0.0);
  std::vector<std::uint64_t> next_cost(n);
  for (auto& c : next_cost) c = cost_of(rng);
  auto last = Clock::now();
  auto next = last;
  while (!stop.load(std::memory_order_relaxed)) {
    next += 1ms;
    std::this_thread::sleep_until(next);
    const auto now = Clock::now();
    const double dt = std::chrono::duration<double>(now - last).count();
    last = now;
    if (now > next + 50ms) next = now;  // fell far behind (e.g. descheduled): do not catch up
    for (std::size_t k = 0; k < n; ++k) {
      budget[k] += w.tokens_per_second[k] * dt;
      KeyCounters& c = w.counters[k];
      while (budget[k] >= static_cast<double>(next_cost[k])) {
        const std::uint64_t cost = next_cost[k];
        budget[k] -= static_cast<double>(cost);
        next_cost[k] = cost_of(rng);
        const tollgate::Decision d = limiter.try_acquire(keys[k].key, cost);
        bump(c.offered, 1);
        bump(c.offered_tokens, cost);
        if (d.allowed) {
          bump(c.admitted, 1);
          bump(c.admitted_tokens, cost);
        } else {
          bump(c.denied[static_cast<int>(d.reason)], 1);
        }
      }
    }
  }
}

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tollgate_demo: %s needs a value\n", name);
        return nullptr;
      }
      return argv[++i];
    };
    if (a == "--instances") {
      const char* v = value("--instances");
      if (v == nullptr) return false;
      o.instances = std::atoi(v);
    } else if (a == "--seconds") {
      const char* v = value("--seconds");
      if (v == nullptr) return false;
      o.seconds = std::atof(v);
    } else if (a == "--demand") {
      const char* v = value("--demand");
      if (v == nullptr) return false;
      o.demand = std::atof(v);
    } else if (a == "--uniform") {
      o.uniform = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: tollgate_demo [--instances N] [--seconds S] [--demand X] [--uniform] "
          "[--json]\n"
          "  --instances N  Limiter instances sharing one store (default 8), 2 threads each\n"
          "  --seconds S    how long to offer load (default 5)\n"
          "  --demand X     offered load as a multiple of each key's capacity (default 2)\n"
          "  --uniform      spread load evenly (default: instance i gets weight i+1)\n"
          "  --json         print one JSON object with the results as the last line\n");
      std::exit(0);
    } else {
      std::fprintf(stderr, "tollgate_demo: unknown argument '%s' (try --help)\n", argv[i]);
      return false;
    }
  }
  if (o.instances < 1 || o.instances > 256) {
    std::fprintf(stderr, "tollgate_demo: --instances must be 1..256\n");
    return false;
  }
  if (!(o.seconds > 0 && o.seconds <= 3600)) {
    std::fprintf(stderr, "tollgate_demo: --seconds must be in (0, 3600]\n");
    return false;
  }
  if (!(o.demand > 0 && o.demand <= 1000)) {
    std::fprintf(stderr, "tollgate_demo: --demand must be in (0, 1000]\n");
    return false;
  }
  return true;
}

std::string fmt_count(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse_args(argc, argv, opt)) return 2;

  const std::vector<KeySpec> keys = demo_keys();
  const std::size_t nkeys = keys.size();

  // One shared store: the global buckets every instance leases from.
  auto store = std::make_shared<tollgate::InProcessStore>();
  std::vector<std::unique_ptr<tollgate::Limiter>> limiters;
  for (int i = 0; i < opt.instances; ++i) {
    tollgate::Limiter::Options lo;
    lo.store = store;
    limiters.push_back(std::make_unique<tollgate::Limiter>(demo_config(keys, i), lo));
  }
  const Nanos lease_ttl = limiters[0]->config()->leases.ttl;

  // Load split: instance i gets weight i+1 (skewed, as load balancers are), or 1.
  std::vector<double> weight(opt.instances);
  for (int i = 0; i < opt.instances; ++i) weight[i] = opt.uniform ? 1.0 : i + 1.0;
  double weight_sum = 0;
  for (double x : weight) weight_sum += x;

  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < opt.instances; ++i) {
    for (int t = 0; t < kThreadsPerInstance; ++t) {
      auto w = std::make_unique<Worker>();
      w->instance = i;
      w->counters = std::make_unique<KeyCounters[]>(nkeys);
      for (const KeySpec& k : keys) {
        w->tokens_per_second.push_back(opt.demand * k.refill_per_second() * weight[i] / weight_sum /
                                       kThreadsPerInstance);
      }
      workers.push_back(std::move(w));
    }
  }

  const tollgate::LeaseOptions& lo = limiters[0]->config()->leases;
  std::printf(
      "tollgate %s demo: %d instances x %d threads, one shared InProcessStore, %.1f s, "
      "offered load %.1fx capacity, %s split, lease ttl %.1f s, horizon %.1f s, max_fraction "
      "%.2f, min_tokens %llu, refresh %.1f s\n",
      std::string(tollgate::version()).c_str(), opt.instances, kThreadsPerInstance, opt.seconds,
      opt.demand, opt.uniform ? "even" : "skewed (instance i: weight i+1)",
      std::chrono::duration<double>(lease_ttl).count(),
      std::chrono::duration<double>(lo.horizon).count(), lo.max_fraction,
      static_cast<unsigned long long>(lo.min_tokens),
      std::chrono::duration<double>(lo.refresh).count());
  std::fflush(stdout);

  std::atomic<bool> stop{false};
  const Nanos store_start = tollgate::SteadyClock::shared()->now();
  const auto t0 = Clock::now();
  for (std::size_t w = 0; w < workers.size(); ++w) {
    Worker& wk = *workers[w];
    wk.thread = std::thread(run_worker, std::ref(wk), std::ref(*limiters[wk.instance]),
                            std::cref(keys), std::cref(stop), static_cast<unsigned>(1234 + w));
  }

  // Live progress, once a second, on stderr (stdout stays clean for the summary and JSON).
  auto key_admitted = [&](std::size_t k) {
    std::uint64_t s = 0;
    for (auto& w : workers) s += load(w->counters[k].admitted_tokens);
    return s;
  };
  std::vector<std::uint64_t> last(nkeys, 0);
  const auto deadline =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.seconds));
  auto tick = t0;
  while (true) {
    tick += 1s;
    const auto until = std::min(tick, deadline);
    std::this_thread::sleep_until(until);
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    std::string line;
    char buf[128];
    std::snprintf(buf, sizeof(buf), "[%5.1f / %.1f s] admitted/s:", elapsed, opt.seconds);
    line += buf;
    for (std::size_t k = 0; k < nkeys; ++k) {
      const std::uint64_t now_admitted = key_admitted(k);
      std::snprintf(buf, sizeof(buf), "  %s %llu", keys[k].key.c_str(),
                    static_cast<unsigned long long>(now_admitted - last[k]));
      line += buf;
      last[k] = now_admitted;
    }
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
    if (until >= deadline) break;
  }
  stop.store(true);
  for (auto& w : workers) w->thread.join();
  const auto t1 = Clock::now();
  const Nanos store_end = tollgate::SteadyClock::shared()->now();
  const double T = std::chrono::duration<double>(t1 - t0).count();
  const double ttl_s = std::chrono::duration<double>(lease_ttl).count();

  // Per-instance SDK statistics, before the limiters are destroyed (which gives back
  // every unspent token).
  std::vector<tollgate::Stats> stats;
  for (auto& l : limiters) stats.push_back(l->stats());

  // ---- per key
  nlohmann::json jkeys = nlohmann::json::array();
  int violations = 0;
  std::printf(
      "\nPer key (tokens; capacity over the run, bound = the documented admission bound)\n");
  std::printf("%-15s %-13s %9s %9s %9s %6s %9s %9s %9s  %s\n", "key", "policy", "offered",
              "capacity", "admitted", "util", "bound", "denied", "pending", "bound check");
  for (std::size_t k = 0; k < nkeys; ++k) {
    const KeySpec& ks = keys[k];
    std::uint64_t offered = 0, admitted = 0, admitted_req = 0, offered_req = 0;
    std::array<std::uint64_t, tollgate::kReasonCount> denied{};
    for (auto& w : workers) {
      const KeyCounters& c = w->counters[k];
      offered += load(c.offered_tokens);
      offered_req += load(c.offered);
      admitted += load(c.admitted_tokens);
      admitted_req += load(c.admitted);
      for (int r = 0; r < tollgate::kReasonCount; ++r) denied[r] += load(c.denied[r]);
    }
    std::uint64_t denied_total = 0;
    for (auto d : denied) denied_total += d;
    double capacity = 0, bound = 0;
    std::string policy_desc;
    nlohmann::json jk;
    if (ks.kind == PolicyKind::kTokenBucket) {
      // Over any interval of length T: admitted <= rate * (T + lease ttl) + burst.
      capacity = ks.rate * T + ks.burst;
      bound = ks.rate * (T + ttl_s) + ks.burst;
      policy_desc = "bucket " + fmt_count(ks.rate) + "/s";
      jk["rate"] = ks.rate;
      jk["burst"] = ks.burst;
    } else {
      // The store grants at most `limit` per window, and windows are aligned to its clock:
      // everything admitted was granted in a window that overlapped the run.
      const std::int64_t w = ks.window.count();
      const std::int64_t windows = store_end.count() / w - store_start.count() / w + 1;
      capacity = static_cast<double>(ks.limit) * static_cast<double>(windows);
      bound = capacity;
      policy_desc = "window " + fmt_count(static_cast<double>(ks.limit)) + "/" +
                    fmt_count(std::chrono::duration<double>(ks.window).count()) + "s";
      jk["limit"] = ks.limit;
      jk["window_s"] = std::chrono::duration<double>(ks.window).count();
      jk["windows"] = windows;
    }
    const bool ok = static_cast<double>(admitted) <= bound;
    if (!ok) ++violations;
    const double util = capacity > 0 ? static_cast<double>(admitted) / capacity : 0;
    std::printf("%-15s %-13s %9llu %9.0f %9llu %5.1f%% %9.0f %9llu %9llu  %s\n", ks.key.c_str(),
                policy_desc.c_str(), static_cast<unsigned long long>(offered), capacity,
                static_cast<unsigned long long>(admitted), util * 100, bound,
                static_cast<unsigned long long>(denied_total),
                static_cast<unsigned long long>(denied[static_cast<int>(Reason::kLeasePending)]),
                ok ? "ok" : "VIOLATED");
    jk["key"] = ks.key;
    jk["policy"] = ks.policy;
    jk["kind"] = std::string(tollgate::to_string(ks.kind));
    jk["offered_tokens"] = offered;
    jk["offered_requests"] = offered_req;
    jk["capacity"] = capacity;
    jk["admitted_tokens"] = admitted;
    jk["admitted_requests"] = admitted_req;
    jk["utilization"] = util;
    jk["bound"] = bound;
    jk["bound_ok"] = ok;
    nlohmann::json jd = nlohmann::json::object();
    for (int r = 0; r < tollgate::kReasonCount; ++r) {
      if (denied[r] != 0) jd[std::string(tollgate::to_string(static_cast<Reason>(r)))] = denied[r];
    }
    jk["denied"] = jd;
    jkeys.push_back(jk);
  }

  // ---- per instance
  nlohmann::json jinst = nlohmann::json::array();
  std::printf(
      "\nPer instance (admitted: the demo's counters; leases and tokens: Limiter::stats())\n");
  std::printf("%-8s %6s %9s %9s %12s %12s %12s %12s %12s\n", "instance", "weight", "offered",
              "admitted", "leases asked", "leases grant", "tokens lease", "given back", "expired");
  for (int i = 0; i < opt.instances; ++i) {
    std::uint64_t offered = 0, admitted = 0;
    for (auto& w : workers) {
      if (w->instance != i) continue;
      for (std::size_t k = 0; k < nkeys; ++k) {
        offered += load(w->counters[k].offered_tokens);
        admitted += load(w->counters[k].admitted_tokens);
      }
    }
    const tollgate::Stats& s = stats[i];
    std::printf("%-8d %6.0f %9llu %9llu %12llu %12llu %12llu %12llu %12llu\n", i, weight[i],
                static_cast<unsigned long long>(offered), static_cast<unsigned long long>(admitted),
                static_cast<unsigned long long>(s.leases_asked),
                static_cast<unsigned long long>(s.leases_granted),
                static_cast<unsigned long long>(s.tokens_leased),
                static_cast<unsigned long long>(s.tokens_given_back),
                static_cast<unsigned long long>(s.tokens_expired));
    jinst.push_back({{"instance", limiters[i]->instance_id()},
                     {"weight", weight[i]},
                     {"offered_tokens", offered},
                     {"admitted_tokens", admitted},
                     {"sdk_admitted_tokens", s.admitted_tokens},
                     {"leases_asked", s.leases_asked},
                     {"leases_granted", s.leases_granted},
                     {"tokens_leased", s.tokens_leased},
                     {"tokens_given_back", s.tokens_given_back},
                     {"tokens_expired", s.tokens_expired}});
  }

  limiters.clear();  // gives unspent tokens back to the store
  const tollgate::InProcessStore::Totals totals = store->totals();
  std::printf(
      "\nStore: %llu lease requests, %llu tokens granted, %llu given back, %llu dropped "
      "(lease already expired)\n",
      static_cast<unsigned long long>(totals.leases),
      static_cast<unsigned long long>(totals.granted),
      static_cast<unsigned long long>(totals.given_back),
      static_cast<unsigned long long>(totals.dropped));
  std::printf("Run: %.3f s. Bound check: %s\n", T,
              violations == 0 ? "every key within its bound"
                              : (std::to_string(violations) + " key(s) VIOLATED").c_str());

  if (opt.json) {
    nlohmann::json j;
    j["instances"] = opt.instances;
    j["threads_per_instance"] = kThreadsPerInstance;
    j["seconds"] = T;
    j["demand"] = opt.demand;
    j["split"] = opt.uniform ? "even" : "skewed";
    j["lease_ttl_s"] = ttl_s;
    j["keys"] = jkeys;
    j["per_instance"] = jinst;
    j["store"] = {{"leases", totals.leases},
                  {"granted", totals.granted},
                  {"given_back", totals.given_back},
                  {"dropped", totals.dropped}};
    j["violations"] = violations;
    j["ok"] = violations == 0;
    std::printf("%s\n", j.dump().c_str());
  }
  std::fflush(stdout);
  return violations == 0 ? 0 : 1;
}
