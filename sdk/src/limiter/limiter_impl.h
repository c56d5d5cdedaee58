// The Limiter's facade over its parts (docs/architecture.md, "The parts of the Limiter"):
// the API and the hot path (lock-free spending from local leases on application threads),
// and on the scheduler's thread (the SDK's, or poll()) the order of a tick and what a key
// asks for and what an answer does to it. The parts: the key table and epochs, the policy
// slots, the wait queue, the refill scheduler's machinery, eviction, and the pure compiled
// policy, lease book, lease sizing, fallback bucket and round trips. Thread-safe: public
// methods may be called from any thread; the scheduler's state (Entry::s and everything
// marked "scheduler") is touched under tick_mu_ only; the wait queue has a lock of its own,
// taken under tick_mu_ or alone.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "limiter/admission.h"
#include "limiter/compiled_policy.h"
#include "limiter/entry.h"
#include "limiter/epoch.h"
#include "limiter/eviction.h"
#include "limiter/key_table.h"
#include "limiter/lease_durations.h"
#include "limiter/lease_sizing.h"
#include "limiter/policy_index.h"
#include "limiter/policy_labels.h"
#include "limiter/policy_slots.h"
#include "limiter/refill_scheduler.h"
#include "limiter/wait_queue.h"
#include "tollgate/limiter.h"

namespace tollgate {

class LimiterImpl : public std::enable_shared_from_this<LimiterImpl> {
 public:
  LimiterImpl(Config config, Limiter::Options options);
  ~LimiterImpl();

  void start();
  void shutdown();

  Decision try_acquire(std::string_view key, std::uint64_t cost) noexcept;
  KeyRef key_ref(std::string_view key);  // limiter/key_ref.cpp
  Decision try_acquire(const KeyRef& key, std::uint64_t cost) noexcept;
  void prefetch_policy(const KeyRef& key) const noexcept;  // KeyRef::prefetch_policy
  WaitId acquire_async(std::string_view key, std::uint64_t cost, Nanos timeout,
                       Limiter::Completion done);
  bool cancel(WaitId id);
  Permit acquire_permit(std::string_view key, std::uint32_t count) noexcept;
  void release_permit(void* entry, std::uint32_t count) noexcept;
  // Reservations (limiter/reservation.cpp). A reservation holds its key's entry (counted in
  // permits_out, so it is never evicted) from reserve, or hold(), until it is settled.
  Reservation reserve(std::string_view key, std::uint64_t estimate) noexcept;
  // hold() also says how many tokens the reservation takes (`tokens`, at most the estimate).
  void* hold(std::string_view key, std::uint64_t estimate, Decision& failure,
             std::uint32_t& lease_ends, std::uint64_t& tokens) noexcept;
  Reservation reservation(void* held, std::uint64_t estimate, std::uint64_t tokens,
                          std::uint32_t lease_ends, Decision d) noexcept;
  Settlement settle(void* entry, std::uint64_t estimate, std::uint64_t held,
                    std::uint32_t lease_ends, std::uint64_t actual) noexcept;
  std::uint64_t held_of(std::uint64_t estimate) const noexcept;  // what a reserve takes
  void learn_held(std::uint64_t estimate, std::uint64_t actual) noexcept;
  // A refund whose lease has ended goes to the store's bucket (GiveBack::late): queued by a
  // settle on any thread, handed to the give-backs by the scheduler's next tick.
  void give_back_late(const core::Entry* e, std::uint64_t tokens) noexcept;
  void take_late_refunds();
  Stats stats() const;
  void tick();

  // Validates `config`, refuses what a running limiter cannot change (store, max_keys,
  // instance_id), then swaps it in; throws ConfigError naming the field, keeping the
  // running config. Keys move to their new policies on the SDK's thread.
  void update(Config config);
  // The same from the JSON form: a config that does not parse is refused (and counted) too.
  void update_json(std::string_view json);
  void update_with(const std::function<Config()>& make);
  void swap_config(Config config);
  std::shared_ptr<const Config> config() const;
  const std::string& instance_id() const noexcept { return instance_id_; }

 private:
  using Entry = core::Entry;
  using CompiledPolicy = core::CompiledPolicy;
  static std::uint64_t first_request();
#define TOLLGATE_STATS_ATOMIC(name, since, help) std::atomic<std::uint64_t> name{0};
  // Decisions under one tollgate.policy value. admitted and admitted_tokens share a cache
  // line at every label (the block is 144 bytes from a 64-aligned start: offsets 0, 16, 32, 48).
  struct PolicyCounts {
    TOLLGATE_STATS_DECISIONS(TOLLGATE_STATS_ATOMIC)
    std::atomic<std::uint64_t> denied[kReasonCount]{};
  };
  struct alignas(64) Stripe {
    PolicyCounts policy[core::PolicyLabels::kMax];  // by CompiledPolicy::label
    TOLLGATE_STATS_ADMISSIONS(TOLLGATE_STATS_ATOMIC)
  };
  struct SchedulerCounters {
    TOLLGATE_STATS_SCHEDULER(TOLLGATE_STATS_ATOMIC)
  };
#undef TOLLGATE_STATS_ATOMIC

  // --- application threads ---
  // A denial counted under the policy's label; without one, under "other" (no policy yet).
  Decision deny(const CompiledPolicy& p, Reason r, std::uint32_t stripe, std::int64_t remaining = 0,
                Nanos retry_after = Nanos{0}) noexcept {
    return deny_as(p.label, r, stripe, remaining, retry_after);
  }
  Decision deny(Reason r, std::uint32_t stripe, std::int64_t remaining = 0,
                Nanos retry_after = Nanos{0}) noexcept {
    return deny_as(core::PolicyLabels::kOther, r, stripe, remaining, retry_after);
  }
  Decision deny_as(std::uint8_t label, Reason r, std::uint32_t stripe, std::int64_t remaining,
                   Nanos retry_after) noexcept;
  void count_admitted(std::uint8_t label, std::uint32_t stripe, std::uint64_t cost) noexcept {
    count(
        stripe, [label](Stripe & s) -> auto& { return s.policy[label].admitted; }, 1);
    count(
        stripe, [label](Stripe & s) -> auto& { return s.policy[label].admitted_tokens; }, cost);
  }
  Decision spend(Entry* e, std::uint64_t cost, std::uint32_t stripe, bool permit) noexcept;
  Decision shadowed(const Entry* e, Decision d, std::uint32_t stripe) noexcept;
  Decision spend_fallback(Entry* e, std::uint8_t fallback, std::uint64_t cost, std::int64_t balance,
                          std::uint32_t stripe) noexcept;
  Entry* find_or_create(std::string_view key, std::uint64_t cost, bool permit, std::uint32_t stripe,
                        Decision& failure) noexcept;
  void request_refill(Entry* e) noexcept {
    refills_.request(e);
  }
  void wake() noexcept {
    refills_.wake();
  }
  // A key whose balance an over-settle took below zero: denied kInDebt (reservation.cpp).
  Decision deny_in_debt(const Entry* e, std::uint32_t stripe) noexcept;
  // What a lease request asks on top of the need: the key's debt (RefillState::debt and the
  // balance below zero), at most a lease's worth; the rest goes with the next asks.
  std::uint64_t debt_to_ask(const Entry* e, const CompiledPolicy& p,
                            std::int64_t balance) const noexcept;
  // What the key owes: RefillState::debt and the balance below zero.
  static std::uint64_t owed(const Entry* e, std::int64_t balance) noexcept {
    return e->s.debt + static_cast<std::uint64_t>(std::max<std::int64_t>(0, -balance));
  }
  // After a lease answer (scheduler): a debt the grant did not pay is asked for again at once,
  // or — when the store was short of it (`store_short`) — reported to the store as a
  // GiveBack::debt and cleared here; the key says in_debt until its next grant.
  void carry_debt(Entry* e, bool store_short, bool granted);
  // Sends `owed` tokens to the store as a GiveBack::debt (charged to the key's bucket) and
  // clears the key's RefillState::debt: after a short answer, and when a key in debt leaves
  // the Limiter (shutdown, its policy gone) with no lease call in flight to carry it.
  void report_debt(Entry* e, std::uint64_t owed);
  // Lease ends, counted per hash slot of the key: a reservation's refund goes back to the
  // balance only while the lease its tokens came from is held — no end since the reserve, or
  // one when they all came from the newer lease (Entry::newer_granted) — or it would spend
  // tokens the store counts as gone. The scheduler clears newer_granted and counts an end
  // before it takes the lease's tokens out of the balance.
  static constexpr std::size_t kLeaseEndSlots = 4096;
  std::atomic<std::uint32_t> lease_ends_[kLeaseEndSlots]{};
  std::atomic<std::uint32_t>& lease_ends_of(const Entry* e) noexcept {
    return lease_ends_[e->hash32 % kLeaseEndSlots];
  }
  void lease_ending(Entry* e) noexcept {
    e->newer_granted.store(0);
    lease_ends_of(e).fetch_add(1);
  }
  // A reservation's record of the lease-end count: its low 31 bits, and the top bit when
  // all its tokens came from the newer of two leases.
  static constexpr std::uint32_t kFromNewer = 0x8000'0000u;
  // The KeyRef's entry found again (after an eviction) or created; published to the KeyRef.
  Entry* resolve(const KeyRef& k, std::uint64_t cost, std::uint32_t stripe,
                 Decision& failure) noexcept;
  bool valid(std::string_view key, std::uint64_t cost) const noexcept {
    return !key.empty() && key.size() <= max_key_length_.load(std::memory_order_relaxed) &&
           cost > 0;
  }
  // The key's compiled policy. Caller holds an EpochGuard (or tick_mu_). The slot is read
  // first: a slot an update moved the key to is in every array published since.
  const CompiledPolicy& policy_of(const Entry* e) const noexcept {
    return policies_.at(e->policy.load(std::memory_order_acquire));
  }

  // --- scheduler (under tick_mu_) ---
  void run();
  void drain_inbox(Nanos now);
  void apply(Entry* e, std::uint64_t min, std::uint64_t want, const LeaseGrant& g, Nanos sent_at,
             Nanos now);
  void maintain(Entry* e, Nanos now);
  void consider(Entry* e, Nanos now);
  void expire_leases(Entry* e, Nanos now);
  void fallback_refill(Entry* e, Nanos now);
  Nanos pacing_most() const noexcept;
  Nanos scarcity_turn(const CompiledPolicy& p, std::uint64_t want) const noexcept;
  void requeue(Entry* e) noexcept;
  std::uint64_t leave_fallback(Entry* e);
  void engage_fallback(Entry* e, Nanos now);
  void mark_overdue(Nanos now);
  void flush(Nanos now, bool force = false) {
    refills_.flush(now, config_->leases.refresh, config_->leases.ttl, force);
  }
  core::LeaseSizing lease_sizing(const CompiledPolicy& p) const noexcept {
    return core::lease_sizing(config_->leases, p.max_lease);
  }
  void hurry(Entry* e, Nanos now);
  void watch_dry(Entry* e, Nanos now);
  double sample_demand(Entry* e, core::Ms nms, std::int64_t balance, std::uint32_t denials,
                       std::uint64_t denied_cost) noexcept {
    return core::sample_demand(e->s, e->leased.load(std::memory_order_relaxed), nms,
                               std::chrono::duration<double>(config_->leases.horizon).count(),
                               balance, denials, denied_cost);
  }
  void add_timer(Entry* e, Nanos at) {
    refills_.add_timer(e, at);
  }
  void ensure_timers(Entry* e, Nanos now);
  void serve_waiters(Entry* e, core::Completions& out);
  void serve_waiters(Entry* e);  // and completes them
  void expire_deadlines(Nanos now);
  void idle_scan(Nanos now);
  bool evict(Entry* e, Nanos now);
  // Ends the key's leases, giving back `tokens` unspent; a negative count (the balance in
  // debt) and RefillState::debt are reported to the store instead (report_debt).
  void give_back(Entry* e, std::int64_t tokens);
  void reclaim();
  // --- live updates (scheduler, under tick_mu_) ---
  void publish(std::shared_ptr<const Config> config);
  bool rematch(Entry* e, Nanos now);
  void drop_key(Entry* e, Reason why);
  void rematch_keys(Nanos now);
  core::Ms to_ms(Nanos t) const noexcept {
    return static_cast<core::Ms>((t - start_).count() / 1'000'000);
  }
  Nanos from_ms(core::Ms m) const noexcept {
    return start_ + Nanos{static_cast<std::int64_t>(m) * 1'000'000};
  }
  Nanos next_wakeup(Nanos now);

  // Stands between the store and the user's observer: counts breaker changes and lease
  // durations for stats().
  struct Relay final : Observer {
    std::shared_ptr<Observer> user;
    std::atomic<std::uint64_t> transitions{0}, opened{0};
    core::LeaseDurations durations;
    void on_lease_start(const LeaseStartEvent& e) noexcept override {
      if (user) user->on_lease_start(e);
    }
    void on_lease(const LeaseEvent& e) noexcept override {
      durations.record(e.outcome, e.duration);
      if (user) user->on_lease(e);
    }
    void on_breaker(const BreakerEvent& e) noexcept override {
      transitions.fetch_add(1, std::memory_order_relaxed);
      if (e.to == BreakerState::kOpen) opened.fetch_add(1, std::memory_order_relaxed);
      if (user) user->on_breaker(e);
    }
    void on_log(LogLevel level, std::string_view message) noexcept override {
      if (user) user->on_log(level, message);
    }
  };

  std::shared_ptr<const Config> config_;  // the running config (scheduler: under tick_mu_)
  std::shared_ptr<Relay> relay_ = std::make_shared<Relay>();
  std::shared_ptr<QuotaStore> store_;
  std::shared_ptr<const Clock> clock_;
  const bool background_;
  const Nanos start_;
  std::string instance_id_;
  std::atomic<std::size_t> max_key_length_;
  // The compiled policies by slot and the running config's set: read by application threads
  // without a lock (epoch-protected); update() publishes new ones (scheduler, tick_mu_).
  core::PolicySlots policies_;
  bool rematch_due_ = false;         // an update came: every key is to be matched again
  std::uint64_t rematch_epoch_ = 0;  // once no reader is older (none holds the old set)
  std::size_t moves_pending_ = 0;    // keys with RefillState::rematch set
  core::KeyTable table_;
  core::AdmissionSketch admission_;  // who takes the table's last places
  core::PolicyLabels labels_;        // tollgate.policy values; compile() takes them
  core::Eviction eviction_;          // the idle sweep and the graveyard (scheduler)
  // Counters striped by thread: the first kOwnedStripes threads (by epoch record index)
  // each own one and add without a locked instruction (~8 ns saved per admission, twice);
  // later threads and the scheduler share the last stripe with fetch_add.
  static constexpr std::uint32_t kOwnedStripes = 16;
  Stripe stripes_[kOwnedStripes + 1];
  template <typename Field>
  void count(std::uint32_t thread_index, Field field, std::uint64_t n) noexcept {
    if (thread_index < kOwnedStripes) {
      auto& c = field(stripes_[thread_index]);
      c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    } else {
      field(stripes_[kOwnedStripes]).fetch_add(n, std::memory_order_relaxed);
    }
  }

  // Scheduler state.
  std::mutex tick_mu_;
  // Request ids are <instance id>:<n>, n counting up from a random start (first_request()):
  // an instance restarted under the same configured id does not send its predecessor's
  // ids again, which a store would answer from the predecessor's records.
  std::uint64_t next_request_ = first_request();
  Nanos busy_until_{0};
  Nanos store_offset_{0};  // store clock minus local clock, erring early

  // Waiters (acquire / acquire_async): their own lock, taken under tick_mu_ or alone.
  core::WaitQueue waits_;

  // Counters the scheduler keeps (and give_back on any thread, fallback on the hot path).
  SchedulerCounters counted_;
  // Reservations hold this share of an estimate (limiter/reservation.cpp): an EWMA of
  // min(actual, estimate) / estimate over this limiter's settles, in 1/65536ths (1: the whole
  // estimate until settles show less). One for the limiter, not per key or policy: a key sees
  // too few settles on one instance to learn from (the reference fleet: about one per 10 s).
  // Written by settles on any thread, relaxed: a lost sample only slows the average.
  static constexpr std::uint32_t kHeldOne = 1u << 16;
  alignas(64) std::atomic<std::uint32_t> held_ratio_{kHeldOne};
  std::mutex late_mu_;
  std::vector<GiveBack> late_refunds_;  // give_back_late, under late_mu_
  // The refill stack, timers, batches per partition, calls in flight and their inbox,
  // give-backs (limiter/refill_scheduler.h): scheduler, but for request() and wake().
  core::RefillScheduler refills_;

  // The SDK's thread.
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> shut_{false};
};

}  // namespace tollgate
