// The resilience stack of every sharded store, over any transport to its shards: a
// bulkhead, a circuit breaker and retries per shard, timed by an injected Clock and
// injected Timers. The Redis store is a Redis ShardTransport under a GuardedStore; the
// virtual-time fleet simulator puts its modelled shards under the same GuardedStore, so
// it runs the resilience code users run, not a copy of it.
//
// One lease() call is split by shard (ShardTransport::shard_of). Per shard, in order:
//   bulkhead    keys count as slots: at most max_in_flight keys sent and not answered,
//               at most max_queue keys waiting behind them (first come, first sent,
//               split to fit); keys beyond that fail at once: "<shard>: bulkhead full"
//   breaker     a part the breaker refuses fails at once: "<shard>: circuit open"; every
//               transport outcome (failed or not, and how long it took on the clock) is
//               recorded, a retry included
//   retry       a call that failed after it was written (ShardOutcome::error, not
//               unsent) may have run: it is sent again, same request ids, up to
//               max_retries times, so an answer lost in transit is neither granted
//               twice nor lost. A call refused before it was written (unsent) did not
//               run and is not sent again. Its keys keep their bulkhead slots meanwhile.
// Give-backs pass straight through (best effort; no bulkhead, breaker or retry).
//
// Refinements of the interface first agreed: RetryOptions has `jitter` and `seed`;
// the breaker takes the config's BreakerConfig as it is; breaker_state(shard) and
// breaker_counts(shard) for tests and reports. Error texts are "<shard_name>: <what>".
//
// Lifetime: callbacks and timers hold the store's state weakly. A transport's callback or
// a timer that fires after the GuardedStore is gone does nothing (the lease callbacks
// still pending are then dropped uncalled), so stop or drain the transport's and the
// timers' threads before destroying the store if every callback must run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "resilience/circuit_breaker.h"
#include "tollgate/clock.h"
#include "tollgate/config.h"
#include "tollgate/quota_store.h"

namespace tollgate::resilience {

// One call to one shard and its outcome.
struct ShardOutcome {
  std::vector<LeaseGrant> grants;  // one per request when error is empty
  std::string error;    // non-empty: the whole call failed (timeout, connection lost, ...)
  bool unsent = false;  // the call was refused before it was written: it did not run
};

// A store made of shards that fail independently (Redis shards; the simulator's modelled
// shards). Thread-safe; callbacks may run on any thread, inline or later, exactly once.
class ShardTransport {
 public:
  virtual ~ShardTransport() = default;
  virtual std::size_t shard_count() const = 0;
  virtual std::size_t shard_of(const Policy& policy, std::string_view key) const = 0;
  // For errors and logs ("redis://10.0.0.5:6379"); never a password.
  virtual std::string shard_name(std::size_t shard) const = 0;
  // One call carrying these requests (pointers valid until done is called).
  virtual void send_leases(std::size_t shard, std::vector<const LeaseRequest*> requests,
                           std::function<void(ShardOutcome)> done) = 0;
  virtual void send_give_backs(std::size_t shard, std::vector<GiveBack> batch) = 0;  // best effort
};

// Runs fn after delay (on any thread). Asio steady_timer for Redis; the simulator's event
// loop. Thread-safe.
class Timers {
 public:
  virtual ~Timers() = default;
  virtual void after(Nanos delay, std::function<void()> fn) = 0;
};

struct RetryOptions {
  // Retry n (from 0) waits delay · 2^n · (1 + u), u uniform in [0, jitter]: never less than
  // `delay` (150 ms is past a Redis connection's first reconnect back-off of 100 ms), and
  // a fleet that lost one shard does not retry in lockstep.
  Nanos delay = std::chrono::milliseconds(150);
  int max_retries = 1;
  double jitter = 0.2;
  std::uint64_t seed = 0;  // the jitter's random source; 0: from std::random_device
};


// QuotaStore = transport + per-shard bulkhead + per-shard circuit breaker + retry of a
// failed (possibly applied) call with the same request ids. Clock and timers injected.
// Thread-safe; lease callbacks run on the transport's or the timers' threads, or inline.
class GuardedStore final : public QuotaStore {
 public:
  GuardedStore(std::shared_ptr<ShardTransport> transport, const BreakerConfig& breaker,
               const BulkheadConfig& bulkhead, RetryOptions retry,
               std::shared_ptr<const Clock> clock, std::shared_ptr<Timers> timers);
  ~GuardedStore() override;

  void lease(std::vector<LeaseRequest> batch, LeaseCallback done) override;
  void give_back(std::vector<GiveBack> batch) override;
  std::size_t partition_of(const LeaseRequest& request) const override;  // = shard_of
  void set_observer(std::shared_ptr<Observer> observer) override;
  std::vector<BreakerState> breaker_states() const override;

  BreakerState breaker_state(std::size_t shard) const;
  CircuitBreaker::Counts breaker_counts(std::size_t shard) const;

  struct Counters {
    std::uint64_t calls = 0;            // requests handed to the transport (lease keys, give-backs)
    std::uint64_t batches = 0;          // transport calls (send_leases, send_give_backs)
    std::uint64_t failures = 0;         // keys answered with ok = false by the transport, or
                                        // failed with their call (after its retries)
    std::uint64_t retries = 0;          // calls sent again (same ids) after a failure
    std::uint64_t short_circuited = 0;  // keys failed at once: their shard's breaker is open
    std::uint64_t bulkhead_rejected = 0;  // keys refused at once: their shard's bulkhead full
    std::uint64_t most_in_flight = 0;     // the most keys in flight to one shard at once
  };
  Counters counters() const noexcept;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace tollgate::resilience
