// The distributed picture over real Redis: N instances (each a Limiter with its own
// connections, 2 load threads) share T tenants' quotas, grouped into G groups, through
// Redis shards that the simulator starts (--start-shards) or is given (--shards). Load is
// offered at --demand times capacity, evenly or skewed (--skew zipf:S). The simulator
// counts admissions itself (not from the SDK's stats), checks them against the documented
// bound, and reports utilisation, Redis calls per admission and try_acquire latency.
//
//   tollgate_sim [--start-shards N | --shards URL,...] [--instances 8] [--tenants 20]
//                [--groups 5] [--rate 5000] [--seconds 20] [--demand 2.0]
//                [--skew zipf:S] [--json] [--fault KIND:SHARD@START+DURATION ...]
//
// Faults (on started shards; docs/resilience.md): stop = SIGSTOP, SIGCONT at the end;
// kill = SIGKILL, restarted empty on the same port at the end; slow = DEBUG SLEEP 0.5 back
// to back; drop = CLIENT KILL TYPE normal every 100 ms. E.g. --fault stop:1@5s+10s.
//
// Exit status: 0; 1 when any tenant was admitted beyond its bound (plus, on a faulted
// shard, the declared fallback allowance); 2 on bad arguments; 3 when a shard never
// recovered from a fault.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "redis/redis_store.h"
#include "redis_server.h"
#include "tollgate/tollgate.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Fault {
  std::string kind;  // stop, kill, slow, drop
  int shard = 0;
  double start = 0;     // seconds from the start of the run
  double duration = 0;  // seconds
};

struct Options {
  std::vector<Fault> faults;
  int start_shards = 0;
  std::vector<std::string> shards;
  int instances = 8;
  int tenants = 20;
  int groups = 5;
  double rate = 5000;
  double seconds = 20;
  double demand = 2.0;
  double zipf = 0;  // 0: uniform
  bool json = false;
  int horizon_ms = 1000;           // leases.horizon
  int ttl_ms = 4000;               // leases.ttl
  double max_fraction = 0.25;      // leases.max_fraction
  std::uint64_t min_tokens = 400;  // leases.min_tokens
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "tollgate_sim: %s\n"
               "usage: tollgate_sim [--start-shards N | --shards URL,...] [--instances N]\n"
               "       [--tenants T] [--groups G] [--rate R] [--seconds S] [--demand X]\n"
               "       [--skew zipf:S] [--json] [--horizon-ms MS] [--max-fraction F] [--ttl-ms MS] "
               "[--min-tokens N]\n"
               "       [--fault stop|kill|slow|drop:SHARD@START+DURATION, e.g. stop:1@5s+10s]\n",
               why.c_str());
  std::exit(2);
}

// "5s", "500ms" or "5" (seconds).
double seconds_of(const std::string& v) {
  std::size_t used = 0;
  const double x = std::stod(v, &used);
  const std::string unit = v.substr(used);
  if (unit.empty() || unit == "s") return x;
  if (unit == "ms") return x / 1000;
  throw std::invalid_argument("unit");
}

Fault parse_fault(const std::string& v) {
  const auto colon = v.find(':'), at = v.find('@'), plus = v.find('+');
  if (colon == std::string::npos || at == std::string::npos || plus == std::string::npos ||
      !(colon < at && at < plus)) {
    usage("--fault takes KIND:SHARD@START+DURATION, e.g. stop:1@5s+10s");
  }
  Fault f;
  f.kind = v.substr(0, colon);
  if (f.kind != "stop" && f.kind != "kill" && f.kind != "slow" && f.kind != "drop") {
    usage("--fault kinds are stop, kill, slow and drop");
  }
  f.shard = std::stoi(v.substr(colon + 1, at - colon - 1));
  f.start = seconds_of(v.substr(at + 1, plus - at - 1));
  f.duration = seconds_of(v.substr(plus + 1));
  if (f.shard < 0 || f.start < 0 || !(f.duration > 0)) usage("--fault: bad shard or times");
  return f;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--start-shards") {
        o.start_shards = std::stoi(value());
      } else if (a == "--shards") {
        std::stringstream ss(value());
        for (std::string u; std::getline(ss, u, ',');) o.shards.push_back(u);
      } else if (a == "--instances") {
        o.instances = std::stoi(value());
      } else if (a == "--tenants") {
        o.tenants = std::stoi(value());
      } else if (a == "--groups") {
        o.groups = std::stoi(value());
      } else if (a == "--rate") {
        o.rate = std::stod(value());
      } else if (a == "--seconds") {
        o.seconds = std::stod(value());
      } else if (a == "--demand") {
        o.demand = std::stod(value());
      } else if (a == "--skew") {
        const std::string v = value();
        if (v.rfind("zipf:", 0) != 0) usage("--skew takes zipf:S");
        o.zipf = std::stod(v.substr(5));
      } else if (a == "--horizon-ms") {
        o.horizon_ms = std::stoi(value());
      } else if (a == "--ttl-ms") {
        o.ttl_ms = std::stoi(value());
      } else if (a == "--min-tokens") {
        o.min_tokens = std::stoull(value());
      } else if (a == "--max-fraction") {
        o.max_fraction = std::stod(value());
      } else if (a == "--fault") {
        o.faults.push_back(parse_fault(value()));
      } else if (a == "--json") {
        o.json = true;
      } else {
        usage("unknown argument " + a);
      }
    } catch (const std::invalid_argument&) {
      usage("bad value for " + a);
    }
  }
  if (o.start_shards > 0 && !o.shards.empty()) usage("--start-shards or --shards, not both");
  if (o.start_shards <= 0 && o.shards.empty()) o.start_shards = 3;
  if (o.instances < 1 || o.tenants < 1 || o.groups < 1 || o.groups > o.tenants) {
    usage("need instances >= 1 and 1 <= groups <= tenants");
  }
  if (!(o.rate > 0) || !(o.seconds > 0) || !(o.demand > 0) || o.zipf < 0) {
    usage("rate, seconds and demand must be > 0");
  }
  for (const Fault& f : o.faults) {
    if (f.shard >= o.start_shards) usage("--fault needs a shard the simulator started");
    if (f.start + f.duration >= o.seconds) usage("--fault must end before the run does");
  }
  return o;
}

// Zipf weights 1/k^s for k = 1..n, normalised to sum 1 (uniform for s = 0).
std::vector<double> zipf_weights(int n, double s) {
  std::vector<double> w(static_cast<std::size_t>(n));
  for (int k = 0; k < n; ++k) w[static_cast<std::size_t>(k)] = 1.0 / std::pow(k + 1, s);
  const double sum = std::accumulate(w.begin(), w.end(), 0.0);
  for (double& x : w) x /= sum;
  return w;
}

std::string tenant_key(int t, int groups) {
  return "g" + std::to_string(t % groups) + ":t" + std::to_string(t);
}

struct alignas(64) Counter {
  std::atomic<std::uint64_t> n{0};
};

struct alignas(64) Stamp {
  std::atomic<std::int64_t> ns{-1};  // since the start of the run
};

// Every instance's breaker changes, with the time they happened.
class BreakerLog final : public tollgate::Observer {
 public:
  explicit BreakerLog(Clock::time_point t0) : t0_(t0) {}
  struct Change {
    std::uint32_t shard;
    tollgate::BreakerState to;
    double at;  // seconds since the start of the run
  };
  void on_breaker(const tollgate::BreakerEvent& e) noexcept override {
    std::lock_guard lk(mu_);
    changes_.push_back({e.shard, e.to, std::chrono::duration<double>(Clock::now() - t0_).count()});
  }
  std::vector<Change> changes() const {
    std::lock_guard lk(mu_);
    return changes_;
  }

 private:
  Clock::time_point t0_;
  mutable std::mutex mu_;
  std::vector<Change> changes_;
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const auto T = static_cast<std::size_t>(o.tenants);
  const auto N = static_cast<std::size_t>(o.instances);
  constexpr int kThreads = 2;  // load threads per instance
  const double burst = o.rate;
  const auto ttl = std::chrono::milliseconds(o.ttl_ms);

  // Shards.
  std::vector<std::unique_ptr<tollgate::testing::RedisServer>> started;
  std::vector<std::string> shards = o.shards;
  for (int i = 0; i < o.start_shards; ++i) {
    started.push_back(std::make_unique<tollgate::testing::RedisServer>());
    shards.push_back(started.back()->url());
  }

  // One policy per group: its tenants share a shard.
  tollgate::Config config;
  for (int g = 0; g < o.groups; ++g) {
    tollgate::Policy p;
    p.match = "g" + std::to_string(g) + ":*";
    p.name = "group" + std::to_string(g);
    p.group = "g" + std::to_string(g);
    p.rate = o.rate;
    p.burst = burst;
    // While a shard is out, each instance admits its share of the quota locally.
    p.fallback.mode = tollgate::FallbackMode::kLocal;
    p.fallback.instances = static_cast<std::uint32_t>(o.instances);
    config.policies.push_back(p);
  }
  config.leases.ttl = ttl;
  config.leases.horizon = std::chrono::milliseconds(o.horizon_ms);
  config.leases.max_fraction = o.max_fraction;
  config.leases.min_tokens = o.min_tokens;
  config.store.type = "redis";
  config.store.shards = shards;
  // A call slower than 200 ms is slow; half of them slow opens the breaker.
  config.store.breaker.slow_call_duration_threshold = 200ms;
  config.store.breaker.slow_call_rate_threshold = 0.5;
  config.store.breaker.minimum_throughput = 3;  // few calls per shard: leases are batched
  const double break_s = std::chrono::duration<double>(config.store.breaker.break_duration).count();
  const auto t0 = Clock::now();
  auto breaker_log = std::make_shared<BreakerLog>(t0);

  std::vector<std::shared_ptr<tollgate::redis::RedisStore>> stores;
  std::vector<std::unique_ptr<tollgate::Limiter>> limiters;
  for (std::size_t i = 0; i < N; ++i) {
    config.instance_id = "sim-" + std::to_string(i);
    stores.push_back(std::make_shared<tollgate::redis::RedisStore>(config.store));
    tollgate::Limiter::Options opt;
    opt.store = stores.back();
    opt.observer = breaker_log;
    limiters.push_back(std::make_unique<tollgate::Limiter>(config, opt));
  }

  // Offered load. Each tenant gets demand x rate on average; with skew, hot tenants get
  // more, but every tenant at least its rate (so full use stays possible), and each
  // tenant's load is split over instances by Zipf weights rotated per tenant.
  const std::vector<double> tenant_w = zipf_weights(o.tenants, o.zipf);
  const std::vector<double> inst_w = zipf_weights(o.instances, o.zipf);
  std::vector<std::vector<double>> offered_rate(N, std::vector<double>(T));  // tokens/s
  for (std::size_t t = 0; t < T; ++t) {
    const double tenant_rate =
        o.zipf > 0 ? o.rate * (1 + (o.demand - 1) * static_cast<double>(T) * tenant_w[t])
                   : o.rate * o.demand;
    for (std::size_t i = 0; i < N; ++i) {
      offered_rate[i][t] = tenant_rate * inst_w[(i + t) % N];
    }
  }

  std::vector<Counter> admitted(T), offered(T), fallback_admitted(T);
  std::vector<Stamp> last_ok(T);  // the latest admission from a lease (reason ok)
  std::vector<std::vector<std::uint32_t>> latency(N * kThreads);
  std::atomic<bool> stop{false};
  const auto end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  std::vector<std::string> keys;
  for (std::size_t t = 0; t < T; ++t) keys.push_back(tenant_key(static_cast<int>(t), o.groups));

  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < N; ++i) {
    for (int th = 0; th < kThreads; ++th) {
      threads.emplace_back([&, i, th] {
        tollgate::Limiter& limiter = *limiters[i];
        auto& lat = latency[i * kThreads + static_cast<std::size_t>(th)];
        lat.reserve(1 << 20);
        std::vector<double> credit(T, 0.0);
        auto last = Clock::now();
        std::uint64_t calls = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          const auto now = Clock::now();
          if (now >= end) break;
          const double dt = std::chrono::duration<double>(now - last).count();
          last = now;
          for (std::size_t t = 0; t < T; ++t) {
            credit[t] += offered_rate[i][t] / kThreads * dt;
            while (credit[t] >= 1) {
              credit[t] -= 1;
              offered[t].n.fetch_add(1, std::memory_order_relaxed);
              tollgate::Decision d;
              if ((++calls & 15) == 0) {  // time one call in 16
                const auto a = Clock::now();
                d = limiter.try_acquire(keys[t]);
                const auto ns =
                    std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - a).count();
                lat.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(ns, UINT32_MAX)));
              } else {
                d = limiter.try_acquire(keys[t]);
              }
              if (!d.allowed) continue;
              admitted[t].n.fetch_add(1, std::memory_order_relaxed);
              if (d.reason == tollgate::Reason::kOk) {
                const std::int64_t at =
                    std::chrono::duration_cast<std::chrono::nanoseconds>(now - t0).count();
                if (at - last_ok[t].ns.load(std::memory_order_relaxed) > 1'000'000)
                  last_ok[t].ns.store(at, std::memory_order_relaxed);
              } else if (d.reason == tollgate::Reason::kFallbackLocal) {
                fallback_admitted[t].n.fetch_add(1, std::memory_order_relaxed);
              }
            }
          }
          std::this_thread::sleep_for(1ms);
        }
      });
    }
  }

  // Faults: one thread each, from start to end; a monitor notes when each shard's
  // tenants are admitted from leases again after the fault ended.
  std::vector<std::size_t> shard_of_tenant(T);
  for (std::size_t t = 0; t < T; ++t) {
    shard_of_tenant[t] = stores[0]->shard_of(config.policies[t % o.groups], keys[t]);
  }
  std::vector<std::optional<double>> recovered(o.faults.size());
  std::vector<std::thread> fault_threads;
  const auto at_time = [&](double secs) {
    return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  };
  for (const Fault& f : o.faults) {
    fault_threads.emplace_back([&, f] {
      tollgate::testing::RedisServer& server = *started[static_cast<std::size_t>(f.shard)];
      const auto until = at_time(f.start + f.duration);
      std::this_thread::sleep_until(at_time(f.start));
      if (f.kind == "stop") {
        server.pause();
        std::this_thread::sleep_until(until);
        server.resume();
      } else if (f.kind == "kill") {
        server.kill();
        std::this_thread::sleep_until(until);
        server.start();
        // The server dies with the thread that started it (PR_SET_PDEATHSIG): stay.
        while (!stop.load()) std::this_thread::sleep_for(10ms);
      } else {  // slow, drop: commands in a loop until the end
        while (Clock::now() < until && !stop.load()) {
          if (f.kind == "slow") {
            server.cli({"DEBUG", "SLEEP", "0.5"});
          } else {
            server.cli({"CLIENT", "KILL", "TYPE", "normal"});
            std::this_thread::sleep_for(100ms);
          }
        }
      }
    });
  }
  std::thread monitor;
  if (!o.faults.empty()) {
    monitor = std::thread([&] {
      while (!stop.load() && Clock::now() < end) {
        const double now_s = std::chrono::duration<double>(Clock::now() - t0).count();
        for (std::size_t i = 0; i < o.faults.size(); ++i) {
          const Fault& f = o.faults[i];
          const double fault_end = f.start + f.duration;
          if (recovered[i] || now_s < fault_end) continue;
          bool all = true;
          for (std::size_t t = 0; t < T; ++t) {
            if (shard_of_tenant[t] != static_cast<std::size_t>(f.shard)) continue;
            if (static_cast<double>(last_ok[t].ns.load()) / 1e9 <= fault_end) all = false;
          }
          if (all) recovered[i] = now_s - fault_end;
        }
        std::this_thread::sleep_for(10ms);
      }
    });
  }

  // Progress, once a second.
  const auto redis_calls = [&] {
    std::uint64_t c = 0;
    for (auto& s : stores) c += s->counters().calls;
    return c;
  };
  const auto total = [&](const std::vector<Counter>& v) {
    std::uint64_t s = 0;
    for (auto& c : v) s += c.n.load(std::memory_order_relaxed);
    return s;
  };
  std::uint64_t last_admitted = 0, last_calls = 0;
  for (auto tick = t0 + 1s; tick < end + 1s; tick += 1s) {
    std::this_thread::sleep_until(std::min(tick, end));
    const std::uint64_t a = total(admitted), c = redis_calls();
    if (!o.json) {
      const double el = std::chrono::duration<double>(Clock::now() - t0).count();
      std::fprintf(
          stderr, "[%5.1f / %.0f s] admitted %8llu/s of capacity %8.0f/s   redis calls %6llu/s\n",
          el, o.seconds, static_cast<unsigned long long>(a - last_admitted),
          o.rate * static_cast<double>(T), static_cast<unsigned long long>(c - last_calls));
    }
    last_admitted = a;
    last_calls = c;
    if (tick >= end) break;
  }
  stop = true;
  for (auto& t : threads) t.join();
  for (auto& t : fault_threads) t.join();
  if (monitor.joinable()) monitor.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::uint64_t calls = redis_calls();
  tollgate::Stats sdk;  // summed over instances, for the report (not for the checks)
  for (auto& l : limiters) {
    const tollgate::Stats st = l->stats();
    for (int r = 0; r < tollgate::kReasonCount; ++r) sdk.denied[r] += st.denied[r];
    sdk.leases_asked += st.leases_asked;
    sdk.leases_granted += st.leases_granted;
    sdk.tokens_leased += st.tokens_leased;
    sdk.tokens_given_back += st.tokens_given_back;
    sdk.tokens_expired += st.tokens_expired;
  }
  limiters.clear();  // gives unspent tokens back
  stores.clear();

  // Results.
  std::vector<std::uint32_t> all;
  for (auto& l : latency) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  const auto pct = [&](double q) -> std::uint64_t {
    if (all.empty()) return 0;
    return all[std::min(all.size() - 1,
                        static_cast<std::size_t>(q * static_cast<double>(all.size())))];
  };
  const double ttl_s = std::chrono::duration<double>(ttl).count();
  double capacity = 0, over = 0;
  std::uint64_t sum_admitted = 0;
  nlohmann::json tenants = nlohmann::json::array();
  if (!o.json) {
    std::printf("\n%-10s %-6s %10s %10s %10s %7s %10s  %s\n", "tenant", "group", "offered",
                "capacity", "admitted", "util", "bound", "bound check");
  }
  // The declared fallback allowance (docs/resilience.md): while its shard is out, each of
  // the N instances may admit burst/N at once and rate/N per second from its local bucket,
  // for at most the fault, the break duration and 2 s to recover; a shard restarted empty
  // starts a full bucket (one burst more).
  const auto allowance_of = [&](const Fault& f) {
    return burst + o.rate * (f.duration + break_s + 2.0) + (f.kind == "kill" ? burst : 0.0);
  };
  for (std::size_t t = 0; t < T; ++t) {
    const double cap = o.rate * secs + burst;
    double bound = o.rate * (secs + ttl_s) + burst;
    for (const Fault& f : o.faults) {
      if (shard_of_tenant[t] == static_cast<std::size_t>(f.shard)) bound += allowance_of(f);
    }
    const auto a = admitted[t].n.load();
    const double excess = std::max(0.0, static_cast<double>(a) - bound);
    capacity += cap;
    over += excess;
    sum_admitted += a;
    if (!o.json) {
      std::printf("%-10s %-6s %10llu %10.0f %10llu %6.1f%% %10.0f  %s\n", keys[t].c_str(),
                  ("g" + std::to_string(t % static_cast<std::size_t>(o.groups))).c_str(),
                  static_cast<unsigned long long>(offered[t].n.load()), cap,
                  static_cast<unsigned long long>(a), 100.0 * static_cast<double>(a) / cap, bound,
                  excess > 0 ? "OVER" : "ok");
    }
    tenants.push_back({{"tenant", keys[t]},
                       {"shard", shard_of_tenant[t]},
                       {"offered", offered[t].n.load()},
                       {"admitted", a},
                       {"admitted_by_fallback", fallback_admitted[t].n.load()},
                       {"capacity", cap},
                       {"bound", bound}});
  }
  const double utilization = static_cast<double>(sum_admitted) / capacity;
  const auto changes = breaker_log->changes();
  nlohmann::json faults = nlohmann::json::array();
  bool unrecovered = false;
  for (std::size_t i = 0; i < o.faults.size(); ++i) {
    const Fault& f = o.faults[i];
    std::optional<double> opened;
    for (const auto& c : changes) {
      if (c.shard == static_cast<std::uint32_t>(f.shard) && c.to == tollgate::BreakerState::kOpen &&
          c.at >= f.start && c.at <= f.start + f.duration + break_s && !opened) {
        opened = c.at - f.start;
      }
    }
    const auto ms = [](const std::optional<double>& s) -> nlohmann::json {
      if (!s) return nullptr;
      return static_cast<std::int64_t>(std::llround(*s * 1000));
    };
    unrecovered = unrecovered || !recovered[i];
    faults.push_back({{"shard", f.shard},
                      {"kind", f.kind},
                      {"start_ms", std::llround(f.start * 1000)},
                      {"duration_ms", std::llround(f.duration * 1000)},
                      {"breaker_opened_after_ms", ms(opened)},
                      {"recovered_after_ms", ms(recovered[i])},
                      {"break_duration_ms", std::llround(break_s * 1000)},
                      {"fallback_allowance_per_tenant", allowance_of(f)}});
  }
  const double per_call =
      calls == 0 ? 0.0 : static_cast<double>(sum_admitted) / static_cast<double>(calls);
  nlohmann::json out = {{"shards", shards.size()},
                        {"instances", o.instances},
                        {"tenants", o.tenants},
                        {"groups", o.groups},
                        {"rate", o.rate},
                        {"seconds", secs},
                        {"demand", o.demand},
                        {"skew", o.zipf > 0 ? "zipf:" + std::to_string(o.zipf) : "uniform"},
                        {"admitted", sum_admitted},
                        {"offered", total(offered)},
                        {"capacity", capacity},
                        {"utilization", utilization},
                        {"over_admitted", static_cast<std::uint64_t>(std::ceil(over))},
                        {"redis_calls", calls},
                        {"admitted_per_redis_call", per_call},
                        {"p50_ns", pct(0.50)},
                        {"p99_ns", pct(0.99)},
                        {"p999_ns", pct(0.999)},
                        {"latency_samples", all.size()},
                        {"faults", faults},
                        {"per_tenant", tenants}};
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf(
        "\n%zu shards, %d instances, %d tenants in %d groups, %.1f s, demand %.1fx (%s)\n"
        "admitted %llu of capacity %.0f: utilization %.3f, over the bound: %.0f\n"
        "redis calls %llu: %.0f admitted per call\n"
        "try_acquire latency (1 call in 16 timed): p50 %llu ns, p99 %llu ns, p99.9 %llu ns\n",
        shards.size(), o.instances, o.tenants, o.groups, secs, o.demand,
        o.zipf > 0 ? ("zipf:" + std::to_string(o.zipf)).c_str() : "uniform",
        static_cast<unsigned long long>(sum_admitted), capacity, utilization, over,
        static_cast<unsigned long long>(calls), per_call, static_cast<unsigned long long>(pct(0.5)),
        static_cast<unsigned long long>(pct(0.99)), static_cast<unsigned long long>(pct(0.999)));
    std::printf(
        "SDK: leases asked %llu, granted %llu, tokens leased %llu, given back %llu,"
        " expired %llu; denied:",
        static_cast<unsigned long long>(sdk.leases_asked),
        static_cast<unsigned long long>(sdk.leases_granted),
        static_cast<unsigned long long>(sdk.tokens_leased),
        static_cast<unsigned long long>(sdk.tokens_given_back),
        static_cast<unsigned long long>(sdk.tokens_expired));
    for (int r = 0; r < tollgate::kReasonCount; ++r) {
      if (sdk.denied[r] == 0) continue;
      std::printf(" %s %llu",
                  std::string(tollgate::to_string(static_cast<tollgate::Reason>(r))).c_str(),
                  static_cast<unsigned long long>(sdk.denied[r]));
    }
    std::printf("\n");
    for (const auto& f : faults) {
      std::printf(
          "fault %s on shard %d at %lld ms for %lld ms: breaker opened after %s ms, "
          "leases flowing again %s ms after the fault ended (break duration %lld ms)\n",
          f["kind"].get<std::string>().c_str(), f["shard"].get<int>(),
          f["start_ms"].get<long long>(), f["duration_ms"].get<long long>(),
          f["breaker_opened_after_ms"].dump().c_str(), f["recovered_after_ms"].dump().c_str(),
          f["break_duration_ms"].get<long long>());
    }
  }
  if (over > 0) return 1;
  return unrecovered ? 3 : 0;
}
