#pragma once

#include <cstdint>
#include <string_view>

#include "tollgate/clock.h"
#include "tollgate/export.h"

namespace tollgate {

// A shard's circuit breaker (docs/resilience.md). Stable numeric values.
enum class BreakerState : std::uint8_t { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
TOLLGATE_API std::string_view to_string(BreakerState state) noexcept;

enum class LogLevel : std::uint8_t { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
TOLLGATE_API std::string_view to_string(LogLevel level) noexcept;

// How one lease round trip (a batch of keys sent to the store together) ended.
enum class LeaseOutcome : std::uint8_t {
  kOk = 0,      // every key answered
  kFailed = 1,  // some keys failed: transport error, timeout, open breaker, full bulkhead
};

// A lease round trip begins (reported before the request goes to the store).
struct LeaseStartEvent {
  std::uint64_t id = 0;            // the same in the LeaseEvent that ends it
  std::uint32_t keys = 0;          // keys in the batch
  std::uint64_t tokens_asked = 0;  // summed wants
};

struct LeaseEvent {
  std::uint64_t id = 0;              // as in its LeaseStartEvent
  std::uint32_t keys = 0;            // keys in the batch
  std::uint64_t tokens_asked = 0;    // summed wants
  std::uint64_t tokens_granted = 0;  // summed grants
  std::uint32_t failed_keys = 0;     // keys answered with an error
  Nanos duration{0};                 // from sending to the answer being applied
  LeaseOutcome outcome = LeaseOutcome::kOk;
};

struct BreakerEvent {
  std::uint32_t shard = 0;  // index into store.shards
  BreakerState from = BreakerState::kClosed;
  BreakerState to = BreakerState::kClosed;
};

// Telemetry hook (Limiter::Options::observer). Called from the SDK's threads (the refill
// scheduler, the Redis I/O thread), never from try_acquire. Implementations must be
// thread-safe, quick and must not call back into the Limiter that reports to them.
// Log lines never carry passwords (URLs are redacted) or tenant keys.
class TOLLGATE_API Observer {
 public:
  virtual ~Observer();
  virtual void on_lease_start(const LeaseStartEvent& /*event*/) noexcept {}
  virtual void on_lease(const LeaseEvent& /*event*/) noexcept {}
  virtual void on_breaker(const BreakerEvent& /*event*/) noexcept {}
  virtual void on_log(LogLevel /*level*/, std::string_view /*message*/) noexcept {}
};

}  // namespace tollgate
