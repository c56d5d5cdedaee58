// The settings of a circuit breaker: one type for the config (StoreConfig::breaker) and
// for the breaker itself (resilience::CircuitBreaker takes it as BreakerOptions).
#pragma once

#include <chrono>
#include <cstddef>

#include "tollgate/clock.h"

namespace tollgate {

// A circuit breaker per Redis shard (docs/redis.md). Names as in Polly and resilience4j.
struct BreakerConfig {
  double failure_ratio = 0.5;             // Polly FailureRatio
  double slow_call_rate_threshold = 1.0;  // resilience4j slowCallRateThreshold, as a ratio
  Nanos slow_call_duration_threshold = std::chrono::milliseconds{500};
  // Short, because a shard sees few calls (leases are batched): a long window would take
  // many seconds to notice an outage (docs/resilience.md).
  Nanos sampling_duration = std::chrono::seconds{2};  // Polly SamplingDuration
  std::size_t sliding_window_size = 0;                // > 0: count-based window of the last N calls
  std::size_t minimum_throughput = 5;                 // Polly MinimumThroughput
  Nanos break_duration = std::chrono::seconds{5};     // Polly BreakDuration
  std::size_t permitted_calls_in_half_open = 1;       // resilience4j
  friend bool operator==(const BreakerConfig&, const BreakerConfig&) = default;
};

}  // namespace tollgate
