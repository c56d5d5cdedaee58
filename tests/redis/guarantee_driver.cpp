// One service instance for the multi-process guarantee test: a Limiter on the given Redis
// shards, `threads` threads offering paced load with costs 1..4 over `keys` keys, from an
// agreed start time (CLOCK_MONOTONIC, shared by all processes on the machine) for
// `seconds`. Writes every admission as "key_index ns_since_start cost" to --out.
//
//   tollgate_guarantee_driver --shards URL,URL --instance N --out FILE --start-ns T
//       [--threads 2] [--keys 4] [--rate 2000] [--burst 1000] [--seconds 5] [--demand 2]
//       [--instances 8]
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tollgate/tollgate.hpp"

namespace {

std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct Admission {
  int key;
  std::int64_t at;
  int cost;
};

}  // namespace

int main(int argc, char** argv) {
  std::string shards, out;
  int instance = 0, threads = 2, keys = 4, instances = 8;
  double rate = 2000, burst = 1000, seconds = 5, demand = 2;
  std::int64_t start_ns = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--shards")
      shards = v;
    else if (a == "--out")
      out = v;
    else if (a == "--instance")
      instance = std::stoi(v);
    else if (a == "--instances")
      instances = std::stoi(v);
    else if (a == "--threads")
      threads = std::stoi(v);
    else if (a == "--keys")
      keys = std::stoi(v);
    else if (a == "--rate")
      rate = std::stod(v);
    else if (a == "--burst")
      burst = std::stod(v);
    else if (a == "--seconds")
      seconds = std::stod(v);
    else if (a == "--demand")
      demand = std::stod(v);
    else if (a == "--start-ns")
      start_ns = std::stoll(v);
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  tollgate::Config c;
  tollgate::Policy p;
  p.name = p.match = "tenant:*";
  p.rate = rate;
  p.burst = burst;
  c.policies.push_back(p);
  c.leases.ttl = std::chrono::seconds(1);
  c.leases.horizon = std::chrono::milliseconds(100);
  c.leases.max_fraction = 0.05;
  c.store.type = "redis";
  std::stringstream ss(shards);
  for (std::string url; std::getline(ss, url, ',');) c.store.shards.push_back(url);
  c.instance_id = "driver-" + std::to_string(instance);
  tollgate::Limiter limiter(c);

  // Offered tokens per second per thread; mean cost 2.5.
  const double tokens_per_thread = demand * rate * keys / (instances * threads);
  const auto gap = std::chrono::nanoseconds(static_cast<std::int64_t>(2.5e9 / tokens_per_thread));
  const std::int64_t end_ns = start_ns + static_cast<std::int64_t>(seconds * 1e9);
  std::vector<std::vector<Admission>> admitted(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(instance * 64 + t));
      std::uniform_int_distribution<int> pick_key(0, keys - 1), pick_cost(1, 4);
      while (mono_ns() < start_ns) std::this_thread::sleep_for(std::chrono::microseconds(200));
      std::int64_t next = start_ns;
      while (next < end_ns) {
        const int k = pick_key(rng), cost = pick_cost(rng);
        if (limiter.try_acquire("tenant:" + std::to_string(k), static_cast<std::uint64_t>(cost))) {
          admitted[static_cast<std::size_t>(t)].push_back({k, mono_ns() - start_ns, cost});
        }
        next += gap.count();
        const std::int64_t wait = next - mono_ns();
        if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
      }
    });
  }
  for (auto& w : workers) w.join();
  std::ofstream f(out);
  for (auto& v : admitted) {
    for (auto& a : v) f << a.key << ' ' << a.at << ' ' << a.cost << '\n';
  }
  return f ? 0 : 1;
}
