// Tollgate groups: two tenants share a group's budget of 200 tokens/s; "tenant:big" weighs
// three times "tenant:small". Both ask for 400/s, so the group is contended and is shared
// 1:3 (docs/quotas.md). Denials because of the group say over_group_limit; a tenant's own
// quota would say over_limit. In-process store here; with Redis shards the same config
// decides both levels in one script call.
//
//   build/samples/cpp/groups
//
// Exits 1 if the two tenants together were admitted more than the group's bound, burst +
// rate x (elapsed + lease TTL) = 100 + 200 x (5 + 1) = 1300 over the 5 s (they are offered
// 4000, 3x that), or if the group never denied anything.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <tollgate/tollgate.hpp>

#ifdef TOLLGATE_SAMPLE_FAULT  // the tests' second build of this sample (samples/CMakeLists.txt)
#include "faults/faulty_store.h"
#endif

int main() {
  using namespace std::chrono_literals;
  using Clock = std::chrono::steady_clock;
  tollgate::Limiter::Options options;  // defaults: an in-process store of its own
#ifdef TOLLGATE_SAMPLE_FAULT
  options.store = tollgate::faults::with_fault(std::make_shared<tollgate::InProcessStore>(),
                                               tollgate::faults::Fault::TOLLGATE_SAMPLE_FAULT);
#endif
  tollgate::Limiter limiter(tollgate::Config::from_json(R"({
    "groups": [{"name": "gpu", "rate": 200, "burst": 100}],
    "policies": [
      {"match": "tenant:big", "group": "gpu", "type": "token_bucket", "rate": 400, "weight": 3},
      {"match": "tenant:*", "group": "gpu", "type": "token_bucket", "rate": 400}
    ],
    "leases": {"ttl_ms": 1000, "horizon_ms": 100}
  })"),
                            options);

  const char* tenants[] = {"tenant:small", "tenant:big"};
  constexpr double kOffered = 400;  // per tenant, per second: twice the whole group
  double due[2] = {0, 0};
  std::uint64_t admitted[2] = {0, 0}, group_denials[2] = {0, 0}, total = 0, offered = 0;
  const auto start = Clock::now();
  auto last = start;
  // Open loop, as real traffic: a paced rate per tenant, admitted or denied. Counted from
  // the second second on, once both tenants' demand is known.
  while (Clock::now() - start < 5s) {
    const auto now = Clock::now();
    const double dt = std::chrono::duration<double>(now - last).count();
    last = now;
    for (int t = 0; t < 2; ++t) {
      for (due[t] += kOffered * dt; due[t] >= 1; due[t] -= 1) {
        const tollgate::Decision d = limiter.try_acquire(tenants[t]);
        ++offered;
        if (d.allowed) ++total;
        if (d.allowed && now - start >= 1s) ++admitted[t];
        if (d.reason == tollgate::Reason::kOverGroupLimit) ++group_denials[t];
      }
    }
    std::this_thread::sleep_for(1ms);
  }
  std::printf("admitted per second over 4 s: small %.0f, big %.0f (their shares: 50 and 150)\n",
              static_cast<double>(admitted[0]) / 4, static_cast<double>(admitted[1]) / 4);
  std::printf("denied over_group_limit: small %llu, big %llu\n",
              static_cast<unsigned long long>(group_denials[0]),
              static_cast<unsigned long long>(group_denials[1]));
  // The group's bound over the whole run: every token admitted was leased from its bucket
  // at most one lease TTL before it was spent (docs/architecture.md).
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double bound = 100 + 200 * (elapsed + 1.0);
  std::printf("admitted %llu of %llu offered in %.1f s; the group's bound %.0f: %s\n",
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(offered),
              elapsed, bound, static_cast<double>(total) <= bound ? "held" : "EXCEEDED");
  if (static_cast<double>(total) > bound) return 1;
  if (group_denials[0] + group_denials[1] == 0) {
    std::printf("FAILED: the group never denied anything\n");
    return 1;
  }
  return 0;
}
