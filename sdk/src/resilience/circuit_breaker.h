// A circuit breaker per shard: closed -> open -> half-open -> closed. Pure logic over an
// injected clock. Settings carry the names .NET (Polly) and JVM (resilience4j) users
// know:
//
//   failure_ratio                         Polly FailureRatio / r4j failureRateThreshold
//   slow_call_rate_threshold              r4j slowCallRateThreshold (as a ratio; > 1: off)
//   slow_call_duration_threshold          r4j slowCallDurationThreshold
//   sampling_duration                     Polly SamplingDuration (time-based window)
//   sliding_window_size                   r4j slidingWindowSize (count-based when > 0)
//   minimum_throughput                    Polly MinimumThroughput / r4j minimumNumberOfCalls
//   break_duration                        Polly BreakDuration / r4j waitDurationInOpenState
//   permitted_calls_in_half_open          r4j permittedNumberOfCallsInHalfOpenState
//
// Closed: calls flow; once the window holds at least minimum_throughput calls and the
// failure ratio or the slow-call ratio reaches its threshold, the breaker opens. Open:
// calls are refused until break_duration has passed, then it is half-open. Half-open:
// up to permitted_calls_in_half_open probes go through; all of them succeeding (and not
// slow) closes it, any failure or slow probe opens it again.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "tollgate/breaker_config.h"
#include "tollgate/clock.h"
#include "tollgate/observer.h"

namespace tollgate::resilience {

using tollgate::BreakerState;  // the public enum (tollgate/observer.h)

// The settings, as the config holds them (tollgate/breaker_config.h).
using BreakerOptions = tollgate::BreakerConfig;

class CircuitBreaker {
 public:
  using Observer = std::function<void(BreakerState from, BreakerState to)>;

  CircuitBreaker(BreakerOptions options, std::shared_ptr<const Clock> clock);

  // May a call go now? Open: no. Half-open: while probes are left. Thread-safe.
  bool allow();
  // The outcome of a call that allow() let through, and how long it took.
  void on_success(Nanos duration);
  void on_failure(Nanos duration);

  BreakerState state();  // (moves open -> half-open once break_duration has passed)
  void set_observer(Observer observer);

  struct Counts {
    std::uint64_t opened = 0;    // closed/half-open -> open
    std::uint64_t closed = 0;    // half-open -> closed
    std::uint64_t rejected = 0;  // calls refused while open or out of probes
  };
  Counts counts() const;

 private:
  struct Bucket {
    std::int64_t start = 0;  // ns; time-based window only
    std::uint32_t calls = 0, failures = 0, slow = 0;
  };
  void record(bool failed, Nanos duration);
  void roll(std::int64_t now);
  void transition(BreakerState to, std::vector<std::pair<BreakerState, BreakerState>>& events);
  void refresh(std::int64_t now, std::vector<std::pair<BreakerState, BreakerState>>& events);
  void notify(const std::vector<std::pair<BreakerState, BreakerState>>& events);

  BreakerOptions options_;
  std::shared_ptr<const Clock> clock_;
  mutable std::mutex mu_;
  BreakerState state_ = BreakerState::kClosed;
  std::int64_t opened_at_ = 0;
  std::size_t probes_started_ = 0, probes_succeeded_ = 0;
  std::deque<Bucket> window_;  // time-based: 10 buckets; count-based: one entry per call
  Counts counts_;
  Observer observer_;
};

}  // namespace tollgate::resilience
