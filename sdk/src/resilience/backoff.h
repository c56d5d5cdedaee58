// Exponential backoff with jitter, for reconnects and lease retries. Pure logic: the
// random source is injected (seeded in tests), no clock needed.
//
//   full jitter:   delay_n = random(0, min(cap, base * 2^n))
//   decorrelated:  delay_n = min(cap, random(base, 3 * delay_{n-1}))   (delay_0 from base)
//   none:          delay_n = min(cap, base * 2^n)
// (Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015.)
#pragma once

#include <cstdint>
#include <optional>
#include <random>

#include "tollgate/clock.h"

namespace tollgate::resilience {

enum class Jitter : std::uint8_t { kNone, kFull, kDecorrelated };

struct BackoffOptions {
  Nanos base = std::chrono::milliseconds(100);
  Nanos cap = std::chrono::seconds(10);
  int max_attempts = 0;  // 0: no limit
  Jitter jitter = Jitter::kFull;
};

class Backoff {
 public:
  explicit Backoff(BackoffOptions options, std::uint64_t seed = std::random_device{}());
  // The delay before the next attempt, or nothing when max_attempts are used up.
  std::optional<Nanos> next();
  // After a success: the next failure starts from base again.
  void reset() noexcept;
  int attempts() const noexcept { return attempts_; }

 private:
  Nanos uniform(Nanos lo, Nanos hi);
  BackoffOptions options_;
  std::mt19937_64 rng_;
  int attempts_ = 0;
  Nanos previous_{0};
};

}  // namespace tollgate::resilience
