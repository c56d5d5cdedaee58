#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tollgate/clock.h"
#include "tollgate/config.h"
#include "tollgate/export.h"
#include "tollgate/observer.h"
#include "tollgate/stats_list.h"

namespace tollgate {

// One key's wish for tokens. For a concurrency policy `want` is the holder's whole
// reservation (absolute, not a delta), so repeating it is harmless.
struct LeaseRequest {
  std::string key;
  std::shared_ptr<const ResolvedPolicy> policy;
  std::uint64_t want = 0;  // tokens wished for
  std::uint64_t min = 1;   // smaller grants are useless: grant 0 instead
  std::string request_id;  // a retry with the same id gets the first answer
  std::string holder;      // the asking instance
  Nanos ttl{0};            // lease lifetime the client asks for (LeaseOptions::ttl)
  // What the instance reports, as Doorman clients do: its demand for the key (tokens per
  // second, denied ones included; 0: unknown) and the tokens it holds unspent. Fair
  // shares are computed from the demand (docs/quotas.md).
  double demand = 0;
  std::uint64_t held = 0;
};

// Which bound held a grant below what was wanted.
enum class LimitLevel : std::uint8_t {
  kNone = 0,
  kKey = 1,    // the key's own bucket, or this instance's part of it
  kGroup = 2,  // the group's budget, or the key's fair share of it
};

// The store's answer for one key. All times are on the store's clock.
struct LeaseGrant {
  bool ok = true;  // false: the store failed for this key; `error` says why
  std::string error;
  std::uint64_t granted = 0;
  Nanos now{0};                 // store time when it decided
  Nanos expires_at{0};          // granted tokens must be spent before this
  // Left for this asker after the grant: the bucket's level (given-back tokens included),
  // at most what its instance part, or the bucket's lending beyond it, allowed before the
  // grant (fair instances); the tightest of the key's, group's and share's levels in a group.
  std::uint64_t remaining = 0;
  Nanos wait_until{0};          // when granted < min: when `min` tokens should be there
  LimitLevel limited_by = LimitLevel::kNone;  // when granted < want: which bound held it
};

// Unused tokens of a lease going back. `expires_at` is the lease's (store clock):
// the store credits them only while that lease is still valid, and they keep
// that expiry, so returning tokens can never stretch the admission bound.
//
// A debt (`debt` true) goes the other way, with the same call: `tokens` admitted beyond
// what any lease granted (an over-settled reservation's shortfall, a cold key's allowance)
// that the instance's leases could not pay; the store charges them to the key's bucket — a
// token bucket's level goes below zero, a window's count above its limit — so that every
// instance's next grants pay them back (docs/architecture.md, "The bound"). `expires_at`
// is unused. A policy with a group budget charges the group's budget as well.
struct GiveBack {
  std::string key;
  std::shared_ptr<const ResolvedPolicy> policy;
  std::uint64_t tokens = 0;
  Nanos expires_at{0};
  std::string holder;
  bool debt = false;
  // A reservation's refund whose lease had ended (Settlement::dropped): credited to a token
  // bucket's level, up to its burst, instead of the pool (expires_at is not looked at); a
  // window or a concurrency limit credits nothing (docs/architecture.md, "The bound").
  bool late = false;
};

// A store's own counters since it started (tollgate/stats_list.h, TOLLGATE_STATS_STORE);
// Limiter::stats() reports them.
struct StoreStats {
#define TOLLGATE_STATS_FIELD(name, since, help) std::uint64_t name = 0;
  TOLLGATE_STATS_STORE(TOLLGATE_STATS_FIELD)
#undef TOLLGATE_STATS_FIELD
};

// The seam between the local leases and wherever the global buckets live.
// Thread-safe. Callbacks may run on any thread, inline within the call or later,
// and must not block.
class TOLLGATE_API QuotaStore {
 public:
  using LeaseCallback = std::function<void(std::vector<LeaseGrant> grants)>;
  virtual ~QuotaStore();

  // Answers every request of the batch, in order, through one call of `done`.
  virtual void lease(std::vector<LeaseRequest> batch, LeaseCallback done) = 0;
  // Best effort; tokens that cannot be given back simply expire.
  virtual void give_back(std::vector<GiveBack> batch) = 0;

  // Requests of one partition (a Redis shard) are answered together: the Limiter sends
  // one call per partition, so that a slow partition delays only its own keys.
  virtual std::size_t partition_of(const LeaseRequest& /*request*/) const { return 0; }
  // Where breaker changes and log lines go (the Limiter passes its Options::observer).
  virtual void set_observer(std::shared_ptr<Observer> /*observer*/) {}
  // One state per shard; empty for a store without shards.
  virtual std::vector<BreakerState> breaker_states() const { return {}; }
  // The store's own counters; zero for a store that counts none.
  virtual StoreStats stats() const { return {}; }
};

// Global buckets in this process: the embedded default, and the reference for the
// math the Redis scripts use (sdk/src/quota/bucket_math.h). Thread-safe; answers inline.
class TOLLGATE_API InProcessStore final : public QuotaStore {
 public:
  explicit InProcessStore(std::shared_ptr<const Clock> clock = nullptr);
  ~InProcessStore() override;
  void lease(std::vector<LeaseRequest> batch, LeaseCallback done) override;
  void give_back(std::vector<GiveBack> batch) override;

  // For tests and the demo: totals since construction.
  struct Totals {
    std::uint64_t leases = 0;
    std::uint64_t granted = 0;
    std::uint64_t given_back = 0;    // credited back
    std::uint64_t dropped = 0;       // give-backs of already expired leases
    std::uint64_t debt_charged = 0;  // debts charged to the buckets (GiveBack::debt)
    std::size_t keys = 0;
    std::size_t answers = 0;  // remembered for retries: one per key and instance that asked
  };
  Totals totals() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace tollgate
