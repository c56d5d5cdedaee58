// One service instance for the multi-process guarantee test: a Limiter on the given Redis
// shards, 2 threads offering the load of tests/common/guarantee_load.h (2x for 5 s, then
// two spikes of 200x after idle gaps; costs 1..4 over 4 keys), from an agreed start time
// (CLOCK_MONOTONIC, shared by all processes on the machine). Writes every request as
// "O key_index ns_since_start cost" and every admission as "A key_index ns_since_start
// cost" to --out. --inject-fault (test-only, tools/faults) breaks its store on purpose.
//
//   tollgate_guarantee_driver --shards URL,URL --instance N --out FILE --start-ns T
//       [--inject-fault none|double-grant|spend-expired]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/guarantee_load.h"
#include "faults/faulty_store.h"
#include "store/redis/redis_store.h"
#include "tollgate/tollgate.hpp"

namespace {

namespace g = tollgate::testing::guarantee;

std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shards, out;
  int instance = 0;
  std::int64_t start_ns = 0;
  tollgate::faults::Fault fault = tollgate::faults::Fault::kNone;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--shards") {
      shards = v;
    } else if (a == "--out") {
      out = v;
    } else if (a == "--instance") {
      instance = std::stoi(v);
    } else if (a == "--start-ns") {
      start_ns = std::stoll(v);
    } else if (a == "--inject-fault" && tollgate::faults::parse_fault(v)) {
      fault = *tollgate::faults::parse_fault(v);
    } else {
      std::fprintf(stderr, "bad argument %s %s\n", a.c_str(), v.c_str());
      return 2;
    }
  }
  tollgate::Config c;
  tollgate::Policy p;
  p.name = p.match = "tenant:*";
  p.rate = g::kRate;
  p.burst = g::kBurst;
  c.policies.push_back(p);
  c.leases.ttl = std::chrono::milliseconds(static_cast<int>(g::kTtlMs));
  c.leases.horizon = std::chrono::milliseconds(static_cast<int>(g::kHorizonMs));
  c.leases.max_fraction = g::kMaxFraction;
  // Every refill with its tick, as when its utilisation floor was set: at a 250 ms TTL the
  // default hold (a quarter of it, 62 ms) measured 95.8-96.3 % against the 97 % floor.
  c.leases.refresh = std::chrono::milliseconds(0);
  c.store.type = "redis";
  std::stringstream ss(shards);
  for (std::string url; std::getline(ss, url, ',');) c.store.shards.push_back(url);
  c.instance_id = "driver-" + std::to_string(instance);
  tollgate::Limiter::Options options;
  options.store =
      tollgate::faults::with_fault(std::make_shared<tollgate::redis::RedisStore>(c.store), fault);
  tollgate::Limiter limiter(c, options);

  std::vector<std::vector<std::vector<g::Event>>> offered(g::kThreadsPerInstance),
      admitted(g::kThreadsPerInstance);
  std::vector<std::thread> workers;
  for (int t = 0; t < g::kThreadsPerInstance; ++t) {
    workers.emplace_back([&, t] {
      while (mono_ns() < start_ns) std::this_thread::sleep_for(std::chrono::microseconds(200));
      g::offer_load(
          static_cast<unsigned>(instance * 64 + t), [&] { return mono_ns() - start_ns; },
          [&](int k, std::uint32_t cost) {
            return limiter.try_acquire("tenant:" + std::to_string(k), cost).allowed;
          },
          offered[static_cast<std::size_t>(t)], admitted[static_cast<std::size_t>(t)]);
    });
  }
  for (auto& w : workers) w.join();
  std::ofstream f(out);
  const auto write = [&](char tag, const std::vector<std::vector<std::vector<g::Event>>>& all) {
    for (const auto& per_thread : all) {
      for (std::size_t k = 0; k < per_thread.size(); ++k) {
        for (const g::Event& e : per_thread[k]) {
          f << tag << ' ' << k << ' ' << e.at_ns << ' ' << e.cost << '\n';
        }
      }
    }
  };
  write('O', offered);
  write('A', admitted);
  return f ? 0 : 1;
}
