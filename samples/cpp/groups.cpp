// Tollgate groups: two tenants share a group's budget of 200 tokens/s; "tenant:big" weighs
// three times "tenant:small". Both ask for 400/s, so the group is contended and is shared
// 1:3 (docs/quotas.md). Denials because of the group say over_group_limit; a tenant's own
// quota would say over_limit. In-process store here; with Redis shards the same config
// decides both levels in one script call.
//
//   build/samples/cpp/groups
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <tollgate/tollgate.hpp>

int main() {
  using namespace std::chrono_literals;
  using Clock = std::chrono::steady_clock;
  tollgate::Limiter limiter(tollgate::Config::from_json(R"({
    "groups": [{"name": "gpu", "rate": 200, "burst": 100}],
    "policies": [
      {"match": "tenant:big", "group": "gpu", "type": "token_bucket", "rate": 400, "weight": 3},
      {"match": "tenant:*", "group": "gpu", "type": "token_bucket", "rate": 400}
    ],
    "leases": {"ttl_ms": 1000, "horizon_ms": 100}
  })"));

  const char* tenants[] = {"tenant:small", "tenant:big"};
  constexpr double kOffered = 400;  // per tenant, per second: twice the whole group
  double due[2] = {0, 0};
  std::uint64_t admitted[2] = {0, 0}, group_denials[2] = {0, 0};
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
}
