// Tollgate quickstart: one Limiter, a token-bucket quota per tenant, a concurrency limit
// for GPU work, and the three ways to ask (try, wait, permit).
//
//   build/samples/cpp/quickstart
//
// Exits 1 if the concurrency limit did not hold (more than 2 permits out at once).
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <tollgate/tollgate.hpp>
#include <vector>

#ifdef TOLLGATE_SAMPLE_FAULT  // the tests' second build of this sample (samples/CMakeLists.txt)
#include "faults/faulty_store.h"
#endif

int main() {
  using namespace std::chrono_literals;
  tollgate::Config config = tollgate::Config::from_json(R"({
    "policies": [
      {"match": "tenant:*", "type": "token_bucket", "rate": 50, "burst": 20},
      {"match": "gpu:*", "type": "concurrency", "limit": 2}
    ]})");
  tollgate::Limiter::Options options;  // defaults: an in-process store of its own
#ifdef TOLLGATE_SAMPLE_FAULT
  options.store = tollgate::faults::with_fault(std::make_shared<tollgate::InProcessStore>(),
                                               tollgate::faults::Fault::TOLLGATE_SAMPLE_FAULT);
#endif
  tollgate::Limiter limiter(config, options);

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

  // Permits: held while the work runs, returned when the Permit goes out of scope. With 2
  // held, four more are asked for one by one (6 wanted against a limit of 2): all refused.
  bool held = false;
  int over_limit = 0;
  for (int attempt = 0; attempt < 50 && !held; ++attempt) {
    tollgate::Permit p = limiter.acquire_permit("gpu:tenant-7", 2);
    if (p) {
      held = true;
      std::vector<tollgate::Permit> more;
      for (int i = 0; i < 4; ++i) {
        more.push_back(limiter.acquire_permit("gpu:tenant-7", 1));
        if (more.back()) ++over_limit;
      }
      std::printf("2 GPU permits held; 4 more asked for: %d granted, %d refused\n", over_limit,
                  4 - over_limit);
      break;
    }
    std::this_thread::sleep_for(2ms);  // the first reservation is on its way
  }

  tollgate::Stats s = limiter.stats();
  std::printf("admitted %llu, leases granted %llu, keys tracked %llu\n",
              static_cast<unsigned long long>(s.admitted),
              static_cast<unsigned long long>(s.leases_granted),
              static_cast<unsigned long long>(s.keys_tracked));
  if (!held || over_limit > 0) {
    std::printf("%s\n", held ? "FAILED: more permits out than the limit of 2"
                             : "FAILED: the permits never came");
    return 1;
  }
  return 0;
}
