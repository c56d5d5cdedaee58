#include "resilience/backoff.h"

#include <algorithm>

namespace tollgate::resilience {

Backoff::Backoff(BackoffOptions options, std::uint64_t seed) : options_(options), rng_(seed) {}

void Backoff::reset() noexcept {
  attempts_ = 0;
  previous_ = Nanos{0};
}

Nanos Backoff::uniform(Nanos lo, Nanos hi) {
  if (hi <= lo) return lo;
  std::uniform_int_distribution<std::int64_t> d(lo.count(), hi.count());
  return Nanos{d(rng_)};
}

std::optional<Nanos> Backoff::next() {
  if (options_.max_attempts > 0 && attempts_ >= options_.max_attempts) return std::nullopt;
  const int n = attempts_++;
  // base * 2^n without overflow: stop doubling once past the cap.
  Nanos exp = options_.base;
  for (int i = 0; i < n && exp < options_.cap; ++i) exp *= 2;
  exp = std::min(exp, options_.cap);
  Nanos delay{0};
  switch (options_.jitter) {
    case Jitter::kNone:
      delay = exp;
      break;
    case Jitter::kFull:
      delay = uniform(Nanos{0}, exp);
      break;
    case Jitter::kDecorrelated: {
      const Nanos prev = previous_.count() == 0 ? options_.base : previous_;
      delay = std::min(options_.cap, uniform(options_.base, std::max(options_.base, prev * 3)));
      break;
    }
  }
  previous_ = delay;
  return delay;
}

}  // namespace tollgate::resilience
