// Tollgate quickstart: one Limiter, a token-bucket quota per tenant, a concurrency limit
// for GPU work, and the three ways to ask (try, wait, permit).
//
//   build/samples/cpp/quickstart
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <tollgate/tollgate.hpp>

int main() {
  using namespace std::chrono_literals;
  tollgate::Config config = tollgate::Config::from_json(R"({
    "policies": [
      {"match": "tenant:*", "type": "token_bucket", "rate": 50, "burst": 20},
      {"match": "gpu:*", "type": "concurrency", "limit": 2}
    ]})");
  tollgate::Limiter limiter(config);

  // try_acquire never blocks. The first call on a key is `cold_key` (deny mode, the
  // default) while its first lease is fetched.
  for (int i = 0; i < 30; ++i) {
    tollgate::Decision d = limiter.try_acquire("tenant:acme", 1);
    std::printf("try_acquire #%02d: %-7s %-13s remaining %lld retry_after %lld us\n", i,
                d.allowed ? "allowed" : "denied", std::string(to_string(d.reason)).c_str(),
                static_cast<long long>(d.remaining),
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::microseconds>(d.retry_after).count()));
    std::this_thread::sleep_for(2ms);
  }

  // acquire waits (FIFO per key) up to the timeout.
  tollgate::Decision d = limiter.acquire("tenant:acme", 5, 500ms);
  std::printf("acquire(5, 500 ms): %s (%s)\n", d.allowed ? "allowed" : "denied",
              std::string(to_string(d.reason)).c_str());

  // Permits: held while the work runs, returned when the Permit goes out of scope.
  for (int attempt = 0; attempt < 50; ++attempt) {
    tollgate::Permit p = limiter.acquire_permit("gpu:tenant-7", 2);
    if (p) {
      std::printf("2 GPU permits held; a third: %s\n",
                  limiter.acquire_permit("gpu:tenant-7", 1) ? "granted" : "refused");
      break;
    }
    std::this_thread::sleep_for(2ms);  // the first reservation is on its way
  }

  tollgate::Stats s = limiter.stats();
  std::printf("admitted %llu, leases granted %llu, keys tracked %llu\n",
              static_cast<unsigned long long>(s.admitted),
              static_cast<unsigned long long>(s.leases_granted),
              static_cast<unsigned long long>(s.keys_tracked));
}
