// A long run over real Redis (scripts/soak; docs/resilience.md, "Soak"): 8 instances (each a
// Limiter with its own connections) over 3 shards that the soak starts, tenants at twice
// their rate, keys churning (new keys every second, each used for 10 s and then left to
// the idle eviction), and a fault every minute in turn: stop (SIGSTOP), kill (restarted
// empty), slow (DEBUG SLEEP), drop (CLIENT KILL), 10 s each, on the shards in turn.
// Every 10 s it samples the process's RSS and open file descriptors and the shards'
// client connections and memory; at the end it reports each one's slope after warm-up,
// each minute's decision p99 and over-admission (counted here, not from the SDK's stats,
// against rate × (T + lease TTL) + burst plus the fallback allowance of the faults on the
// tenant's shard in that window), and whether fds or connections grew.
//
//   tollgate_soak [--minutes 10] [--warmup-minutes 2] [--json]
//
// Exit status: 0; 1 when any tenant was admitted beyond its bound; 2 on bad arguments;
// 5 when file descriptors or Redis connections grew after warm-up.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/redis/keys.h"
#include "redis_server.h"
#include "tollgate/tollgate.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kInstances = 8;
constexpr int kShards = 3;
constexpr int kTenants = 24;
constexpr int kGroups = 6;
constexpr double kRate = 500;  // per tenant, tokens per second
constexpr double kBurst = 500;
constexpr double kDemand = 2.0;
constexpr int kChurnPerSecond = 40;  // new keys a second
constexpr int kChurnLife = 10;       // seconds each is used
constexpr double kChurnRate = 5;     // its requests a second
constexpr int kLoadThreads = 4;
constexpr double kFaultSeconds = 10;
const char* const kFaultKinds[] = {"stop", "kill", "slow", "drop"};

struct Fault {
  std::string kind;
  int shard;
  double start, end;  // seconds from the start
};

struct Sample {
  double t;  // seconds
  double rss_kb, fds;
  std::optional<double> redis_clients, redis_memory_kb;  // empty: a shard did not answer
};

double rss_kb() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / 1024.0;
}

double open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.' ? 1 : 0;
    ::closedir(d);
  }
  return n - 1;  // the directory's own
}

// "name:value" from INFO output.
std::optional<double> info_field(const std::string& info, const std::string& name) {
  const auto at = info.find(name + ":");
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(info.c_str() + at + name.size() + 1, nullptr);
}

// Least squares: units per minute.
double slope_per_minute(const std::vector<std::pair<double, double>>& xy) {
  if (xy.size() < 2) return 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (auto [x, y] : xy) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double n = static_cast<double>(xy.size());
  const double den = n * sxx - sx * sx;
  return den == 0 ? 0 : (n * sxy - sx * sy) / den * 60.0;
}

struct alignas(64) Counter {
  std::atomic<std::uint64_t> n{0};
};

// Decision times, log-linear (16 steps per power of two, within 6 %), allocated up front so
// that measuring them adds nothing to the RSS the soak watches.
struct Histogram {
  static constexpr int kBuckets = 33 * 16;
  std::vector<std::uint64_t> n = std::vector<std::uint64_t>(kBuckets, 0);
  static int bucket(std::uint64_t ns) {
    if (ns < 16) return static_cast<int>(ns);
    const int msb = 63 - __builtin_clzll(ns);
    return std::min(kBuckets - 1, (msb - 3) * 16 + static_cast<int>((ns >> (msb - 4)) & 15));
  }
  static double upper(int b) {  // the bucket's upper edge, ns
    if (b < 16) return b + 1;
    const int msb = b / 16 + 3;
    return std::ldexp(16.0 + (b % 16) + 1, msb - 4);
  }
  void add(std::uint64_t ns) { ++n[static_cast<std::size_t>(bucket(ns))]; }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < n.size(); ++i) n[i] += o.n[i];
  }
  std::uint64_t count() const {
    std::uint64_t c = 0;
    for (auto x : n) c += x;
    return c;
  }
  double quantile(double q) const {
    const auto total = count();
    if (total == 0) return 0;
    const auto want = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
    std::uint64_t seen = 0;
    for (int b = 0; b < kBuckets; ++b) {
      seen += n[static_cast<std::size_t>(b)];
      if (seen >= want) return upper(b);
    }
    return upper(kBuckets - 1);
  }
};

}  // namespace

int main(int argc, char** argv) {
  double minutes = 10, warmup = 2;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--minutes" && i + 1 < argc) {
      minutes = std::atof(argv[++i]);
    } else if (a == "--warmup-minutes" && i + 1 < argc) {
      warmup = std::atof(argv[++i]);
    } else if (a == "--json") {
      json = true;
    } else {
      std::fprintf(stderr, "usage: tollgate_soak [--minutes 10] [--warmup-minutes 2] [--json]\n");
      return 2;
    }
  }
  if (!(minutes > 0) || !(warmup >= 0) || warmup >= minutes) {
    std::fprintf(stderr, "tollgate_soak: --minutes must be > 0 and above --warmup-minutes\n");
    return 2;
  }
  const double seconds = minutes * 60;
  const int whole_minutes = static_cast<int>(std::ceil(minutes));

  std::vector<std::unique_ptr<tollgate::testing::RedisServer>> servers;
  std::vector<std::string> urls;
  for (int s = 0; s < kShards; ++s) {
    servers.push_back(std::make_unique<tollgate::testing::RedisServer>());
    urls.push_back(servers.back()->url());
  }

  tollgate::Config config;
  for (int g = 0; g < kGroups; ++g) {
    tollgate::Policy p;
    p.name = "group" + std::to_string(g);
    p.match = "g" + std::to_string(g) + ":*";
    p.group = "g" + std::to_string(g);
    p.rate = kRate;
    p.burst = kBurst;
    p.fallback.mode = tollgate::FallbackMode::kLocal;
    p.fallback.instances = kInstances;
    config.policies.push_back(p);
  }
  tollgate::Policy churn;
  churn.name = "churn";
  churn.match = "c:*";  // each key its own group: spread over the shards
  churn.rate = 20;
  churn.burst = 20;
  churn.fallback.mode = tollgate::FallbackMode::kLocal;
  churn.fallback.instances = kInstances;
  config.policies.push_back(churn);
  config.idle_timeout = 5s;
  config.max_keys = 20'000;
  config.leases.ttl = 4s;
  config.leases.horizon = 1s;
  config.leases.max_fraction = 0.25;
  config.store.type = "redis";
  config.store.shards = urls;
  config.store.breaker.slow_call_duration_threshold = 200ms;
  config.store.breaker.slow_call_rate_threshold = 0.5;
  config.store.breaker.minimum_throughput = 3;
  const double ttl_s = 4, break_s = 5;

  std::vector<std::unique_ptr<tollgate::Limiter>> limiters;
  for (int i = 0; i < kInstances; ++i) {
    config.instance_id = "soak-" + std::to_string(i);
    limiters.push_back(std::make_unique<tollgate::Limiter>(config));
  }
  std::vector<std::string> keys;
  std::vector<int> shard_of;
  for (int t = 0; t < kTenants; ++t) {
    const std::string group = "g" + std::to_string(t % kGroups);
    keys.push_back(group + ":t" + std::to_string(t));
    shard_of.push_back(tollgate::redis::shard_of(group, kShards));
  }

  // The faults, one a minute from 0:30, kinds and shards in turn.
  std::vector<Fault> faults;
  for (int m = 0; 30.0 + 60.0 * m + kFaultSeconds < seconds - 5; ++m) {
    faults.push_back(
        {kFaultKinds[m % 4], m % kShards, 30.0 + 60.0 * m, 30.0 + 60.0 * m + kFaultSeconds});
  }

  // Admissions per tenant per second (the windows are built from these), and per minute
  // each load thread's timed decisions.
  const auto total_seconds = static_cast<std::size_t>(std::ceil(seconds)) + 1;
  std::vector<std::vector<Counter>> admitted(kTenants);
  for (auto& a : admitted) a = std::vector<Counter>(total_seconds);
  std::vector<std::vector<Histogram>> latency(
      kLoadThreads, std::vector<Histogram>(static_cast<std::size_t>(whole_minutes)));
  Counter churn_admitted, decisions;
  std::atomic<bool> stop{false};
  const auto t0 = Clock::now();
  const auto since = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };

  std::vector<std::thread> load;
  for (int th = 0; th < kLoadThreads; ++th) {
    load.emplace_back([&, th] {
      std::vector<double> credit(kInstances * kTenants, 0.0);
      std::vector<double> churn_credit(static_cast<std::size_t>(kChurnLife * kChurnPerSecond), 0.0);
      auto last = Clock::now();
      std::uint64_t calls = 0;
      char key[48];
      while (!stop.load(std::memory_order_relaxed)) {
        const auto now = Clock::now();
        const double el = std::chrono::duration<double>(now - t0).count();
        if (el >= seconds) break;
        const double dt = std::chrono::duration<double>(now - last).count();
        last = now;
        const auto sec = static_cast<std::size_t>(el);
        const auto minute = std::min<std::size_t>(static_cast<std::size_t>(el / 60),
                                                  static_cast<std::size_t>(whole_minutes - 1));
        auto decide = [&](tollgate::Limiter& l, std::string_view k) {
          decisions.n.fetch_add(1, std::memory_order_relaxed);
          if ((++calls & 15) != 0) return l.try_acquire(k);
          const auto a = Clock::now();
          const tollgate::Decision d = l.try_acquire(k);
          const auto ns =
              std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - a).count();
          latency[static_cast<std::size_t>(th)][minute].add(static_cast<std::uint64_t>(ns));
          return d;
        };
        for (int i = th; i < kInstances; i += kLoadThreads) {
          for (int t = 0; t < kTenants; ++t) {
            double& c = credit[static_cast<std::size_t>(i * kTenants + t)];
            c += kRate * kDemand / kInstances * dt;
            for (; c >= 1; c -= 1) {
              if (decide(*limiters[static_cast<std::size_t>(i)], keys[static_cast<std::size_t>(t)]))
                admitted[static_cast<std::size_t>(t)][sec].n.fetch_add(1,
                                                                       std::memory_order_relaxed);
            }
          }
        }
        // Churn: the keys born in the last kChurnLife seconds, those of this thread's
        // instances, each at kChurnRate.
        const int born_now = static_cast<int>(el);
        for (int age = 0; age < kChurnLife && age <= born_now; ++age) {
          const int born = born_now - age;
          for (int j = th; j < kChurnPerSecond; j += kLoadThreads) {
            double& c =
                churn_credit[static_cast<std::size_t>((born % kChurnLife) * kChurnPerSecond + j)];
            c += kChurnRate * dt;
            for (; c >= 1; c -= 1) {
              const int n = std::snprintf(key, sizeof key, "c:%d:%d", born, j);
              if (decide(*limiters[static_cast<std::size_t>(j % kInstances)],
                         std::string_view(key, static_cast<std::size_t>(n)))) {
                churn_admitted.n.fetch_add(1, std::memory_order_relaxed);
              }
            }
          }
        }
        std::this_thread::sleep_for(1ms);
      }
    });
  }

  // The faults, one thread; it also starts killed servers again (a restarted server dies
  // with the thread that started it, so this thread stays until the end).
  std::atomic<int> out_of_reach{-1};  // a shard that would not answer the sampler now
  std::thread faulter([&] {
    for (const Fault& f : faults) {
      std::this_thread::sleep_until(
          t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.start)));
      if (stop.load()) break;
      auto& server = *servers[static_cast<std::size_t>(f.shard)];
      const auto until =
          t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.end));
      if (f.kind == "stop") {
        out_of_reach = f.shard;
        server.pause();
        std::this_thread::sleep_until(until);
        server.resume();
        out_of_reach = -1;
      } else if (f.kind == "kill") {
        out_of_reach = f.shard;
        server.kill();
        std::this_thread::sleep_until(until);
        server.start();
        out_of_reach = -1;
      } else {
        if (f.kind == "slow") out_of_reach = f.shard;
        while (Clock::now() < until && !stop.load()) {
          if (f.kind == "slow") {
            server.cli({"DEBUG", "SLEEP", "0.5"});
          } else {
            server.cli({"CLIENT", "KILL", "TYPE", "normal"});
            std::this_thread::sleep_for(100ms);
          }
        }
        out_of_reach = -1;
      }
    }
    while (!stop.load()) std::this_thread::sleep_for(10ms);
  });

  // Samples every 10 s.
  std::vector<Sample> samples;
  for (double next = 0; next < seconds; next += 10) {
    std::this_thread::sleep_until(
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(next)));
    Sample s{since(), rss_kb(), open_fds(), std::nullopt, std::nullopt};
    if (out_of_reach.load() < 0) {
      double clients = 0, memory = 0;
      bool all = true;
      for (auto& server : servers) {
        const auto c = info_field(server->cli({"INFO", "clients"}), "connected_clients");
        const auto m = info_field(server->cli({"INFO", "memory"}), "used_memory");
        if (!c || !m) {
          all = false;
          break;
        }
        clients += *c - 1;  // not the sampler's own
        memory += *m / 1024.0;
      }
      if (all) {
        s.redis_clients = clients;
        s.redis_memory_kb = memory;
      }
    }
    samples.push_back(s);
    if (!json) {
      std::fprintf(
          stderr, "%6.0f s  rss %8.0f KiB  fds %4.0f  redis clients %s  redis memory %s KiB\n", s.t,
          s.rss_kb, s.fds,
          s.redis_clients ? std::to_string(static_cast<int>(*s.redis_clients)).c_str() : "-",
          s.redis_memory_kb ? std::to_string(static_cast<int>(*s.redis_memory_kb)).c_str() : "-");
    }
  }
  std::this_thread::sleep_until(
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
  stop = true;
  for (auto& th : load) th.join();
  faulter.join();
  std::vector<tollgate::Stats> stats;
  for (auto& l : limiters) stats.push_back(l->stats());
  limiters.clear();

  // Over-admission per tenant, over each minute and over the whole run.
  const auto allowance = [&](const Fault& f) {
    return kBurst + kRate * (kFaultSeconds + break_s + 2.0) + (f.kind == "kill" ? kBurst : 0.0);
  };
  auto over_in = [&](double from, double to) {  // summed over tenants, tokens
    double over = 0;
    for (int t = 0; t < kTenants; ++t) {
      std::uint64_t a = 0;
      for (auto s = static_cast<std::size_t>(from);
           s < static_cast<std::size_t>(to) && s < total_seconds; ++s)
        a += admitted[static_cast<std::size_t>(t)][s].n.load();
      double bound = kRate * (to - from + ttl_s) + kBurst;
      for (const Fault& f : faults) {
        // Faults on its shard in the window, and those whose recovery reaches into it.
        if (f.shard == shard_of[static_cast<std::size_t>(t)] && f.start < to &&
            f.end + break_s + 2.0 + ttl_s > from) {
          bound += allowance(f);
        }
      }
      over += std::max(0.0, static_cast<double>(a) - bound);
    }
    return over;
  };

  nlohmann::json per_minute = nlohmann::json::array();
  double over_total = over_in(0, seconds);
  double over_minutes = 0;
  for (int m = 0; m < whole_minutes; ++m) {
    Histogram all;
    for (auto& per_thread : latency) all.merge(per_thread[static_cast<std::size_t>(m)]);
    const double p99 = all.quantile(0.99);
    const double from = 60.0 * m, to = std::min(seconds, 60.0 * (m + 1));
    const double over = over_in(from, to);
    over_minutes += over;
    std::uint64_t adm = 0;
    for (int t = 0; t < kTenants; ++t) {
      for (auto s = static_cast<std::size_t>(from); s < static_cast<std::size_t>(to); ++s)
        adm += admitted[static_cast<std::size_t>(t)][s].n.load();
    }
    std::string fault = "-";
    for (const Fault& f : faults) {
      if (f.start >= from && f.start < to) fault = f.kind + ":" + std::to_string(f.shard);
    }
    per_minute.push_back({{"minute", m + 1},
                          {"fault", fault},
                          {"tenants_admitted", adm},
                          {"over_admitted", static_cast<std::uint64_t>(std::ceil(over))},
                          {"decision_p99_ns", p99},
                          {"timed_decisions", all.count()}});
  }

  // Slopes after warm-up.
  auto series = [&](auto pick) {
    std::vector<std::pair<double, double>> xy;
    for (const Sample& s : samples) {
      if (s.t < warmup * 60) continue;
      if (auto v = pick(s)) xy.emplace_back(s.t, *v);
    }
    return xy;
  };
  struct Slope {
    const char* name;
    const char* unit;
    std::vector<std::pair<double, double>> xy;
  };
  std::vector<Slope> slopes = {
      {"rss", "KiB", series([](const Sample& s) { return std::optional<double>(s.rss_kb); })},
      {"open_fds", "fds", series([](const Sample& s) { return std::optional<double>(s.fds); })},
      {"redis_connections", "connections", series([](const Sample& s) { return s.redis_clients; })},
      {"redis_memory", "KiB", series([](const Sample& s) { return s.redis_memory_kb; })},
  };
  nlohmann::json slope_json = nlohmann::json::object();
  bool grew = false;
  for (const Slope& sl : slopes) {
    double mean = 0, lo = 1e300, hi = -1e300;
    for (auto [x, y] : sl.xy) {
      mean += y;
      lo = std::min(lo, y);
      hi = std::max(hi, y);
    }
    mean = sl.xy.empty() ? 0 : mean / static_cast<double>(sl.xy.size());
    const double slope = slope_per_minute(sl.xy);
    slope_json[sl.name] = {{"per_minute", slope},
                           {"unit", sl.unit},
                           {"mean", mean},
                           {"min", sl.xy.empty() ? 0 : lo},
                           {"max", sl.xy.empty() ? 0 : hi},
                           {"samples", sl.xy.size()}};
    // Growth of fds or connections: the last sample above the highest of the first
    // minute after warm-up (a level, not a trend line, so one fault's reconnects in
    // flight at a sample do not count).
    if ((std::string(sl.name) == "open_fds" || std::string(sl.name) == "redis_connections") &&
        sl.xy.size() >= 7) {
      double first_max = 0;
      for (std::size_t k = 0; k < 6; ++k) first_max = std::max(first_max, sl.xy[k].second);
      if (sl.xy.back().second > first_max) grew = true;
    }
  }

  std::uint64_t evicted = 0, tracked = 0;
  for (const auto& st : stats) {
    evicted += st.keys_evicted;
    tracked += st.keys_tracked;
  }
  nlohmann::json out = {
      {"minutes", minutes},
      {"warmup_minutes", warmup},
      {"instances", kInstances},
      {"shards", kShards},
      {"tenants", kTenants},
      {"faults", faults.size()},
      {"decisions", decisions.n.load()},
      {"churn_admitted", churn_admitted.n.load()},
      {"keys_evicted", evicted},
      {"keys_tracked_at_end", tracked},
      {"over_admitted", static_cast<std::uint64_t>(std::ceil(over_total))},
      {"over_admitted_minutes", static_cast<std::uint64_t>(std::ceil(over_minutes))},
      {"slopes", slope_json},
      {"growth", grew},
      {"per_minute", per_minute}};
  if (json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("soak: %.0f min, %d instances, %d shards, %zu faults, %llu decisions\n", minutes,
                kInstances, kShards, faults.size(),
                static_cast<unsigned long long>(decisions.n.load()));
    std::printf("%-8s %-8s %12s %10s %12s\n", "minute", "fault", "admitted", "over", "p99 (ns)");
    for (const auto& m : per_minute) {
      std::printf("%-8d %-8s %12llu %10llu %12.0f\n", m["minute"].get<int>(),
                  m["fault"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(m["tenants_admitted"].get<std::uint64_t>()),
                  static_cast<unsigned long long>(m["over_admitted"].get<std::uint64_t>()),
                  m["decision_p99_ns"].get<double>());
    }
    std::printf("slopes after %.0f min of warm-up (per minute):\n", warmup);
    for (const Slope& sl : slopes) {
      const auto& j = slope_json[sl.name];
      std::printf("  %-18s %+10.2f %s/min  (mean %.0f, min %.0f, max %.0f, %zu samples)\n", sl.name,
                  j["per_minute"].get<double>(), sl.unit, j["mean"].get<double>(),
                  j["min"].get<double>(), j["max"].get<double>(), sl.xy.size());
    }
    std::printf(
        "over-admitted: %.0f tokens over the run, %.0f summed over minutes; keys evicted %llu; "
        "fd/connection growth: %s\n",
        std::ceil(over_total), std::ceil(over_minutes), static_cast<unsigned long long>(evicted),
        grew ? "YES" : "none");
  }
  if (over_total > 0 || over_minutes > 0) return 1;
  return grew ? 5 : 0;
}
