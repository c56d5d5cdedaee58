#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tollgate/clock.h"
#include "tollgate/config.h"
#include "tollgate/decision.h"
#include "tollgate/export.h"
#include "tollgate/observer.h"
#include "tollgate/quota_store.h"
#include "tollgate/stats_list.h"

namespace tollgate {

class Limiter;
class LimiterImpl;

// The upper bounds (seconds) of the lease duration histogram's buckets; a last bucket holds
// what is above them all. The same as histogram_buckets_seconds in the metric vocabulary
// (sdk/src/telemetry/metrics.json; the build checks it).
inline constexpr std::array<double, 13> kLeaseDurationBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

// Lease round trips by how long they took (LeaseEvent::duration).
struct DurationHistogram {
  std::array<std::uint64_t, kLeaseDurationBounds.size() + 1> buckets{};  // not cumulative
  std::uint64_t count = 0;
  double sum_seconds = 0;
};

// Decisions under one value of the tollgate.policy attribute (docs/observability.md,
// "Decisions per policy"): a policy's configured name, or "other" for the policies without
// one of their own (name unset or equal to match), the decisions no policy made (no_policy,
// a bad key) and the names past the first 15 a limiter has seen. Never a key.
struct PolicyStats {
  std::string name;
#define TOLLGATE_STATS_FIELD(name, since, help) std::uint64_t name = 0;
  TOLLGATE_STATS_DECISIONS(TOLLGATE_STATS_FIELD)
#undef TOLLGATE_STATS_FIELD
  std::array<std::uint64_t, kReasonCount> denied{};  // denials by Reason
};

// Counters since the limiter started (each one declared in tollgate/stats_list.h, where
// it says what it counts), denials by reason, lease durations, each shard's breaker now, and
// the decisions by policy.
struct Stats {
#define TOLLGATE_STATS_FIELD(name, since, help) std::uint64_t name = 0;
  TOLLGATE_STATS_COUNTERS(TOLLGATE_STATS_FIELD)
#undef TOLLGATE_STATS_FIELD
  std::array<std::uint64_t, kReasonCount> denied{};  // denials by Reason
  std::vector<BreakerState> breakers;  // each shard's breaker now (empty: in-process store)
  std::array<DurationHistogram, 2> lease_duration{};  // by LeaseOutcome (kOk, kFailed)
  // By policy label, "other" first; they sum to admitted, admitted_tokens and denied.
  std::vector<PolicyStats> policies;

  std::uint64_t denied_total() const noexcept {
    std::uint64_t n = 0;
    for (auto d : denied) n += d;
    return n;
  }
};

// Concurrency permits, released when destroyed. Move-only.
class TOLLGATE_API Permit {
 public:
  Permit() = default;
  Permit(Permit&& other) noexcept;
  Permit& operator=(Permit&& other) noexcept;
  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;
  ~Permit();

  explicit operator bool() const noexcept { return decision_.allowed; }
  const Decision& decision() const noexcept { return decision_; }
  std::uint32_t count() const noexcept { return count_; }
  // Returns the permits now; idempotent.
  void release() noexcept;

 private:
  friend class LimiterImpl;
  Permit(std::shared_ptr<LimiterImpl> owner, void* entry, std::uint32_t count, Decision d)
      : owner_(std::move(owner)), entry_(entry), count_(count), decision_(d) {}
  std::shared_ptr<LimiterImpl> owner_;
  void* entry_ = nullptr;
  std::uint32_t count_ = 0;
  Decision decision_{};
};

// What Reservation::settle did with the actual cost (docs/quotas.md, "Estimated costs").
struct Settlement {
  // kOk; kInvalidArgument: nothing to settle (empty, already settled) or an actual cost
  // above 2^53 — nothing changed.
  Reason reason = Reason::kInvalidArgument;
  std::uint64_t charged = 0;    // tokens charged in all: min(actual, estimate + max_overage)
  std::uint64_t refunded = 0;   // held - actual, back in the key's local balance
  std::uint64_t dropped = 0;    // of the refund, its lease had ended: to the store's bucket
  std::uint64_t debt = 0;       // charged beyond held and the local balance: the key's debt
  std::uint64_t uncharged = 0;  // actual - estimate - max_overage, reported but not charged
  explicit operator bool() const noexcept { return reason == Reason::kOk; }
};

// An estimate held for a request whose cost is known only when it ends (Limiter::reserve):
// settle() charges the actual cost instead. Destroyed unsettled, it is settled at the
// estimate. Move-only, like Permit; keeps the limiter's core alive. settle() may run on
// another thread than the reserve; one Reservation is not for two threads at once.
class TOLLGATE_API Reservation {
 public:
  Reservation() = default;
  Reservation(Reservation&& other) noexcept;
  Reservation& operator=(Reservation&& other) noexcept;
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  ~Reservation();

  explicit operator bool() const noexcept { return decision_.allowed; }
  const Decision& decision() const noexcept { return decision_; }
  std::uint64_t estimate() const noexcept { return estimate_; }
  // Tokens taken at reserve: the estimate times what the policy's settles have shown of
  // their estimates (actual / estimate, at most 1, at least 1/16), the whole estimate until
  // they have shown it (docs/quotas.md, "Estimated costs").
  std::uint64_t held() const noexcept { return held_; }
  // False once settled (or when it holds nothing: denied, shadow-admitted, moved from).
  bool pending() const noexcept { return entry_ != nullptr; }
  // Under what it holds: the difference goes back to the key's local balance. Over it: the
  // extra (the actual cost at most the estimate plus the policy's max_overage) is charged
  // from the local balance, and what the balance lacks is the key's debt, paid first out of
  // its next leases; until then its decisions are denied with Reason::kInDebt. Once; later
  // calls change nothing.
  Settlement settle(std::uint64_t actual) noexcept;

 private:
  friend class LimiterImpl;
  friend class Limiter;
  Reservation(std::shared_ptr<LimiterImpl> owner, void* entry, std::uint64_t estimate,
              std::uint64_t held, std::uint32_t lease_ends, Decision d)
      : owner_(std::move(owner)),
        entry_(entry),
        estimate_(estimate),
        held_(held),
        lease_ends_(lease_ends),
        decision_(d) {}
  std::shared_ptr<LimiterImpl> owner_;
  void* entry_ = nullptr;
  std::uint64_t estimate_ = 0;
  std::uint64_t held_ = 0;        // tokens taken at reserve (at most the estimate)
  std::uint32_t lease_ends_ = 0;  // the key's lease-end count at reserve (refunds check it)
  Decision decision_{};
};

// A key resolved once, for a caller that decides on it again and again (an ASP.NET Core
// partition, a Python object): try_acquire(const KeyRef&) reaches the key's entry through the
// handle, with no hashing and no table probe, as long as no key has been evicted since it was
// resolved (the key table's eviction count, checked on every call); after an eviction it
// resolves the key again. Keeps the limiter's core alive, like a Permit (decisions after the
// Limiter is destroyed spend only what is held locally). Thread-safe: many threads may decide
// through one KeyRef at once; moving it is not.
class TOLLGATE_API KeyRef {
 public:
  KeyRef() = default;
  KeyRef(KeyRef&& other) noexcept;
  KeyRef& operator=(KeyRef&& other) noexcept;
  KeyRef(const KeyRef&) = delete;
  KeyRef& operator=(const KeyRef&) = delete;
  ~KeyRef();

  explicit operator bool() const noexcept { return owner_ != nullptr; }
  std::string_view key() const noexcept { return key_; }
  // Limiter::try_acquire(*this, cost) on the limiter it came from, also after that Limiter
  // is destroyed; an empty KeyRef decides invalid_argument.
  Decision try_acquire(std::uint64_t cost = 1) const noexcept;
  // Hints, for a caller that decides on many keys in turn and knows the next few; neither
  // changes what is decided. prefetch(): starts loading the resolved entry into the cache
  // (never read; nothing when unresolved). prefetch_policy(): reads the entry's policy
  // slot and starts loading its compiled policy (after a prefetch() some decisions
  // earlier, or it waits for the entry; nothing when the entry may have been evicted).
  // bench/fleet calls them 16 and 8 decisions ahead.
  void prefetch() const noexcept;
  void prefetch_policy() const noexcept;

 private:
  friend class LimiterImpl;
  std::shared_ptr<LimiterImpl> owner_;
  std::string key_;
  std::uint64_t hash_ = 0;
  // The resolved entry and the table's eviction count when it was resolved, published
  // together under a sequence lock (odd while a thread writes them).
  mutable std::atomic<std::uint64_t> seq_{0};
  mutable std::atomic<void*> entry_{nullptr};
  mutable std::atomic<std::uint64_t> evictions_{0};
};

// Identifies a queued acquire, for cancel(). 0 never names a wait.
using WaitId = std::uint64_t;

// Admits or denies requests against global quotas from locally held leases.
// Thread-safe: every method may be called from any thread at once.
class TOLLGATE_API Limiter {
 public:
  struct Options {
    std::shared_ptr<QuotaStore> store;   // nullptr: an InProcessStore of its own
    std::shared_ptr<const Clock> clock;  // nullptr: SteadyClock
    // false: no SDK thread; the owner calls poll() (tests with a ManualClock).
    bool background_thread = true;
    // Telemetry: lease round trips, breaker changes, log lines (tollgate/observer.h).
    std::shared_ptr<Observer> observer;
  };
  using Completion = std::function<void(const Decision&)>;

  // Throws ConfigError when the config is invalid.
  explicit Limiter(Config config);
  Limiter(Config config, Options options);
  ~Limiter();
  Limiter(const Limiter&) = delete;
  Limiter& operator=(const Limiter&) = delete;

  // Never blocks. Once the key holds a lease: no allocation, no lock, no syscall.
  Decision try_acquire(std::string_view key, std::uint64_t cost = 1) noexcept;

  // The key resolved once, for try_acquire(const KeyRef&). An invalid key (empty, longer
  // than max_key_length) gives a KeyRef whose decisions are invalid_argument. Copies the key.
  KeyRef key_ref(std::string_view key) const;
  // try_acquire(key, cost) through a KeyRef of this limiter (another's: invalid_argument).
  // While the key's entry stays in the table: a pointer, an eviction-count check and a CAS.
  Decision try_acquire(const KeyRef& key, std::uint64_t cost = 1) noexcept;

  // Waits up to `timeout` for tokens; waiters of one key are served first in, first out.
  Decision acquire(std::string_view key, std::uint64_t cost, Nanos timeout);

  // Completes exactly once through `done`: inline on the calling thread when decided
  // at once, otherwise on the SDK's thread (which `done` must not block for long).
  // Returns the id to cancel() with, or 0 when already completed.
  WaitId acquire_async(std::string_view key, std::uint64_t cost, Nanos timeout, Completion done);
  // Completes the wait with reason cancelled; false when it already completed.
  bool cancel(WaitId id);

  // Costs known only afterwards (docs/quotas.md, "Estimated costs"): holds part of
  // `estimate` (Reservation::held()) of a token-bucket or window policy until the
  // Reservation is settled with the actual cost. Never blocks; decided like
  // try_acquire(key, held) (denied: an empty Reservation whose decision() says why).
  Reservation reserve(std::string_view key, std::uint64_t estimate) noexcept;
  // The same, waiting up to `timeout` for what it holds like acquire().
  Reservation reserve(std::string_view key, std::uint64_t estimate, Nanos timeout);
  // The waiting form without blocking: `done` gets the Reservation (empty when denied) exactly
  // once, as acquire_async's completion does (inline or on the SDK's thread). Returns the id
  // to cancel() with, or 0 when already completed.
  using ReservationDone = std::function<void(Reservation)>;
  WaitId reserve_async(std::string_view key, std::uint64_t estimate, Nanos timeout,
                       ReservationDone done);

  // Concurrency policies: takes `count` permits without waiting.
  Permit acquire_permit(std::string_view key, std::uint32_t count = 1) noexcept;

  Stats stats() const;
  // The running config (the one given last to the constructor or update()).
  std::shared_ptr<const Config> config() const;

  // Swaps in another config while the limiter runs (docs/configuration.md, "Live updates"):
  // policies, groups, cold keys, leases and fallbacks may change. Throws ConfigError naming
  // the field when `config` is invalid or changes what needs a new Limiter (store, max_keys,
  // instance_id); the running config then stays. A key whose policy changed gives its unspent
  // tokens back and leases under the new policy, moved by the SDK's thread (poll() without
  // one); waiters keep their place. Counted in Stats::config_updates / config_rejected.
  void update(Config config);
  // The same from the JSON form (docs/configuration.md): text that does not parse is refused
  // and counted in config_rejected like any other bad config.
  void update(std::string_view json);
  const std::string& instance_id() const noexcept;

  // Runs the refill scheduler once: sends due refills, credits answers, expires and
  // evicts. The SDK thread does this on its own; call it when background_thread = false.
  void poll();

 private:
  std::shared_ptr<LimiterImpl> impl_;
};

}  // namespace tollgate
