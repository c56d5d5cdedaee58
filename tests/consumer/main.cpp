// Builds a Limiter from JSON with the installed headers and library, and spends a few
// tokens: exits 0 when the first call was admitted from the optimistic cold allowance.
#include <cstdio>
#include <string>
#include <tollgate/tollgate.hpp>

int main() {
  tollgate::Config config = tollgate::Config::from_json(R"({
    "cold_keys": {"mode": "optimistic", "allowance": 5},
    "policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 100}]
  })");
  tollgate::Limiter limiter(config);
  bool first = false;
  for (int i = 0; i < 3; ++i) {
    tollgate::Decision d = limiter.try_acquire("tenant:consumer");
    if (i == 0) first = d.allowed;
    std::printf("try_acquire -> %s (%s), remaining %lld\n", d.allowed ? "allowed" : "denied",
                std::string(tollgate::to_string(d.reason)).c_str(),
                static_cast<long long>(d.remaining));
  }
  std::printf("tollgate %s\n", std::string(tollgate::version()).c_str());
  return first ? 0 : 1;
}
