#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "limiter/eviction.h"
#include "limiter/fallback_bucket.h"
#include "limiter/lease_book.h"
#include "limiter/lease_sizing.h"
#include "limiter/limiter_impl.h"

namespace tollgate {

using core::Completions;
using core::Entry;
using core::EpochGuard;
using core::Ms;

namespace {

using Scheduler = core::RefillScheduler;
constexpr Nanos kTick = Scheduler::kTick;
// A grant that leaves granted + remaining at this fraction of the capacity or more found
// the store's bucket filling up unasked (RefillState::overflowed), and so do this many
// grants after it. Half: a lease is at most half a bucket by default (max_fraction); at
// 0.9 two instances over a plain bucket of 100/s used 0.88 of it, at 0.5 0.95.
constexpr double kFillingLevel = 0.5;
constexpr std::uint8_t kOverflowedGrants = 3;  // RefillState::overflowed has 2 bits

// `secs` as a duration of at least a tick and at most an hour (no overflow).
Nanos at_least_a_tick(double secs) noexcept {
  return std::max(kTick, Nanos{static_cast<std::int64_t>(std::min(secs, 3600.0) * 1e9)});
}

std::uint8_t exhausted_level(const LeaseGrant& g) noexcept {
  return g.limited_by == LimitLevel::kGroup ? core::kExhaustedGroup : core::kExhaustedKey;
}
constexpr Nanos kStoreErrorBackoff = std::chrono::milliseconds(50);
using core::kMaxLeaseTokens;

std::string default_instance_id() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%08x", rd());
  return std::string(host) + "-" + std::to_string(getpid()) + "-" + buf;
}

std::int64_t clamp_nonneg(std::int64_t v) {
  return v < 0 ? 0 : v;
}

}  // namespace

// A random start of 52 bits: that it falls among the N ids an earlier process of the same
// instance id sent is a chance of N in 2^52.
std::uint64_t LimiterImpl::first_request() {
  std::random_device rd;
  const std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) | rd();
  return (r >> 12) + 1;
}

// ---------------------------------------------------------------------------------------
// Construction

LimiterImpl::LimiterImpl(Config config, Limiter::Options options)
    : config_(std::make_shared<const Config>((config.validate(), std::move(config)))),
      store_(std::move(options.store)),
      clock_(options.clock ? options.clock : SteadyClock::shared()),
      background_(options.background_thread),
      start_(clock_->now()),
      instance_id_(config_->instance_id.empty() ? default_instance_id() : config_->instance_id),
      max_key_length_(0),
      table_(config_->max_keys),
      admission_(config_->max_keys),
      refills_(store_, relay_, options.observer != nullptr, start_,
               {&counted_.leases_asked, &counted_.lease_failures, &counted_.refills_overdue,
                &counted_.tokens_given_back, &counted_.tokens_expired},
               core::RefillScheduler::phase_of(instance_id_)) {
  relay_->user = std::move(options.observer);
  store_->set_observer(relay_);
  refills_.set_own_thread(background_);
  publish(config_);
}

// ---------------------------------------------------------------------------------------
// Live updates

void LimiterImpl::update(Config config) {
  update_with([&] { return std::move(config); });
}

void LimiterImpl::update_json(std::string_view json) {
  update_with([&] { return Config::from_json(json); });
}

void LimiterImpl::update_with(const std::function<Config()>& make) {
  try {
    swap_config(make());
  } catch (const ConfigError& ex) {
    counted_.config_rejected.fetch_add(1, std::memory_order_relaxed);
    relay_->on_log(LogLevel::kWarn,
                   std::string("config update rejected, the running config stays: ") + ex.what());
    throw;
  }
  counted_.config_updates.fetch_add(1, std::memory_order_relaxed);
  relay_->on_log(LogLevel::kInfo, "config updated: keys move to their new policies");
}

void LimiterImpl::swap_config(Config config) {
  config.validate();
  std::lock_guard lk(tick_mu_);
  if (shut_.load(std::memory_order_acquire)) {
    throw ConfigError("limiter", "shut down: it takes no more updates");
  }
  // Those make a different limiter: another store, another table, other leases' holder.
  if (!(config.store == config_->store)) {
    throw ConfigError("store", "cannot change in a running limiter (create a new Limiter)");
  }
  if (config.max_keys != config_->max_keys) {
    throw ConfigError("max_keys", "cannot change in a running limiter (create a new Limiter)");
  }
  if (!config.instance_id.empty() && config.instance_id != instance_id_) {
    throw ConfigError("instance_id", "cannot change in a running limiter (create a new Limiter)");
  }
  publish(std::make_shared<const Config>(std::move(config)));
}

// Makes `config` the running one (limiter/policy_slots.h: a policy equal to one that keys
// hold keeps its slot, and the keys their leases) and has every key matched again. Throws
// before changing anything.
void LimiterImpl::publish(std::shared_ptr<const Config> config) {
  policies_.publish(config, labels_);
  max_key_length_.store(policies_.published().max_key_length, std::memory_order_relaxed);
  config_ = std::move(config);
  // Every key is matched again (a new pattern may take keys from a policy that stays).
  rematch_due_ = true;
  rematch_epoch_ = core::Epoch::advance();
  wake();
}

std::shared_ptr<const Config> LimiterImpl::config() const {
  EpochGuard guard;
  return policies_.published().config;
}

// Matches a key against the running config again. When it now matches another policy of
// its kind, it moves: the unspent tokens of its leases go back to the old policy's bucket,
// and the next lease comes from the new one. Waiters stay queued in their order; permits out
// stay counted (a negative balance) until the new reservation covers them. A key that
// matches no policy of its kind any more leaves the table. A key with a lease in flight
// moves when the answer is in (RefillState::rematch). True when the key moved or left.
bool LimiterImpl::rematch(Entry* e, Nanos now) {
  const core::PolicySet& set = policies_.current();
  const auto idx = set.index.match(e->key());
  const std::uint16_t current = e->policy.load(std::memory_order_relaxed);
  if (idx && set.slot_of[*idx] == current) return false;
  auto& s = e->s;
  if (s.in_flight) {
    if (!s.rematch) ++moves_pending_;
    s.rematch = true;
    return false;
  }
  const CompiledPolicy& from = policy_of(e);
  if (!idx) {
    drop_key(e, Reason::kNoPolicy);
    return true;
  }
  const std::uint16_t slot = set.slot_of[*idx];
  const CompiledPolicy& to = policies_.compiled(slot);
  if (to.concurrency != from.concurrency) {
    drop_key(e, Reason::kInvalidArgument);  // acquires and permits do not mix
    return true;
  }
  expire_leases(e, now);
  for (int i = 0; i < s.lease_count; ++i) lease_ending(e);  // the key's leases end here
  if (from.concurrency) {
    const std::int64_t reserved = s.lease_count > 0 ? s.leases[0].granted : 0;
    e->balance.fetch_sub(reserved, std::memory_order_acq_rel);
    give_back(e, reserved);
  } else if (e->fallback.load(std::memory_order_acquire) == core::kFallbackLocal) {
    // The local fallback bucket's tokens never came from the store: dropped, and the new
    // policy's bucket starts afresh (consider() below).
    const std::int64_t left = e->balance.exchange(0, std::memory_order_acq_rel);
    if (left > 0)
      counted_.fallback_dropped.fetch_add(static_cast<std::uint64_t>(left),
                                          std::memory_order_relaxed);
    s.lease_count = 0;
  } else {
    const std::int64_t left = e->balance.exchange(0, std::memory_order_acq_rel);
    give_back(e, clamp_nonneg(left));
    if (left < 0) e->balance.fetch_add(left, std::memory_order_acq_rel);  // the debt moves too
  }
  if (e->unavailable) {
    e->fallback.store(to.fallback == core::kFallbackLocal ? core::kFallbackOff : to.fallback,
                      std::memory_order_release);
  }
  e->watermark.store(0, std::memory_order_relaxed);
  e->retry_at.store(0, std::memory_order_relaxed);
  e->exhausted.store(core::kExhaustedNot, std::memory_order_relaxed);
  e->penalized.store(false, std::memory_order_relaxed);
  s.last_grant = 0;
  s.baseline_balance = e->balance.load(std::memory_order_relaxed);
  s.baseline_time = to_ms(now);
  s.deny_base = e->denials.load(std::memory_order_relaxed);
  s.deny_window_start = to_ms(now);
  e->policy.store(slot, std::memory_order_release);
  counted_.keys_moved.fetch_add(1, std::memory_order_relaxed);
  consider(e, now);  // the first lease under the new policy
  return true;
}

// Takes a key out of the table because no policy of its kind matches it any more: its
// waiters complete (`why`), its tokens go back; permits out return to the old entry, which
// waits in the graveyard until they have.
void LimiterImpl::drop_key(Entry* e, Reason why) {
  Completions done;
  waits_.finish_key(
      e,
      [why](const core::Waiter&) {
        return Decision{false, why, 0, Nanos{0}};
      },
      done, [&] { table_.erase(e); });
  give_back(e, core::take_unspent(*e, policy_of(e).concurrency));
  eviction_.bury(e);
  counted_.keys_moved.fetch_add(1, std::memory_order_relaxed);
  core::complete(done);
}

// After an update, once no reader that saw the old config can still be creating a key
// under it: matches every key again. When no key holds a replaced policy's slot any more
// (graveyard included), the slot is free for a later update.
void LimiterImpl::rematch_keys(Nanos now) {
  if (rematch_due_ && core::Epoch::safe_epoch() >= rematch_epoch_) {
    rematch_due_ = false;
    std::vector<Entry*> keys;
    keys.reserve(table_.size());
    {
      EpochGuard g;
      table_.for_each([&](Entry* e) { keys.push_back(e); });
    }
    for (Entry* e : keys) {
      if (!e->retired.load(std::memory_order_acquire)) rematch(e, now);
    }
  }
  if (rematch_due_ || moves_pending_ > 0) return;
  if (!policies_.retiring()) return;
  if (eviction_.any_buried([&](const Entry* e) {
        return policies_.retiring(e->policy.load(std::memory_order_relaxed));
      }))
    return;
  policies_.free_retiring();
}

LimiterImpl::~LimiterImpl() {
  shutdown();
}

void LimiterImpl::start() {
  if (background_) thread_ = std::thread([this] { run(); });
}

void LimiterImpl::shutdown() {
  if (shut_.exchange(true)) return;
  stop_.store(true);
  wake();
  if (thread_.joinable()) thread_.join();
  refills_.detach();
  Completions done;
  waits_.finish_all(
      [](const core::Waiter&) {
        return Decision{false, Reason::kShutdown, 0, Nanos{0}};
      },
      done);
  core::complete(done);
  // Give every unspent token back so that other instances can use it at once.
  std::lock_guard lk(tick_mu_);
  {
    EpochGuard g;
    table_.for_each([&](Entry* e) {
      if (e->permits_out.load() != 0) return;  // permits still out: let the lease expire
      give_back(e, core::take_unspent(*e, policy_of(e).concurrency));
    });
  }
  take_late_refunds();
  refills_.flush_give_backs();
  eviction_.destroy_all();
}

// ---------------------------------------------------------------------------------------
// The hot path

Decision LimiterImpl::deny_as(std::uint8_t label, Reason r, std::uint32_t stripe,
                              std::int64_t remaining, Nanos retry_after) noexcept {
  count(
      stripe,
      [ label, r ](Stripe & s) -> auto& { return s.policy[label].denied[static_cast<int>(r)]; }, 1);
  return Decision{false, r, remaining, retry_after};
}

Decision LimiterImpl::try_acquire(std::string_view key, std::uint64_t cost) noexcept {
  EpochGuard guard;
  const std::uint32_t stripe = guard.thread_index();
  if (!valid(key, cost)) return deny(Reason::kInvalidArgument, stripe);
  Entry* e = table_.find(key, core::hash_key(key));
  if (__builtin_expect(e == nullptr, 0)) {
    Decision failure;
    e = find_or_create(key, cost, false, stripe, failure);
    if (e == nullptr) return failure;
  }
  const Decision d = spend(e, cost, stripe, false);
  if (__builtin_expect(!d.allowed, 0)) return shadowed(e, d, stripe);
  return d;
}

// A shadow policy's denial, counted as such (deny() did), admits all the same.
Decision LimiterImpl::shadowed(const Entry* e, Decision d, std::uint32_t stripe) noexcept {
  if (d.reason == Reason::kInvalidArgument || !policy_of(e).shadow) return d;
  count(
      stripe, [](Stripe & s) -> auto& { return s.shadow_admitted; }, 1);
  d.allowed = true;
  d.retry_after = Nanos{0};
  return d;
}

Decision LimiterImpl::spend(Entry* e, std::uint64_t cost, std::uint32_t stripe,
                            bool permit) noexcept {
  const CompiledPolicy& p = policy_of(e);
  if (p.concurrency != permit || cost > p.capacity)
    return deny(p, Reason::kInvalidArgument, stripe);
  if (!e->touched.load(std::memory_order_relaxed))
    e->touched.store(true, std::memory_order_relaxed);
  if (e->penalized.load(std::memory_order_relaxed)) {
    Nanos wait{clamp_nonneg(e->retry_at.load(std::memory_order_relaxed) - clock_->now().count())};
    return deny(p, Reason::kPenaltyBox, stripe, 0, wait);
  }
  const auto want = static_cast<std::int64_t>(cost);
  std::int64_t b = e->balance.load(std::memory_order_relaxed);
  if (e->waiters.load(std::memory_order_relaxed) == 0) {
    while (b >= want) {
      if (e->balance.compare_exchange_weak(b, b - want, std::memory_order_acquire,
                                           std::memory_order_relaxed)) {
        std::int64_t left = b - want;
        if (left < e->watermark.load(std::memory_order_relaxed)) request_refill(e);
        count_admitted(p.label, stripe, cost);
        const bool local = e->fallback.load(std::memory_order_relaxed) == core::kFallbackLocal;
        return Decision{true, local ? Reason::kFallbackLocal : Reason::kOk, left, Nanos{0}};
      }
    }
  }
  // Denied: remember the demand, and make sure a refill is on its way.
  e->denials.fetch_add(1, std::memory_order_relaxed);
  if (e->last_denied_cost.load(std::memory_order_relaxed) < cost) {
    e->last_denied_cost.store(static_cast<std::uint32_t>(std::min<std::uint64_t>(cost, UINT32_MAX)),
                              std::memory_order_relaxed);
  }
  request_refill(e);
  if (const std::uint8_t fb = e->fallback.load(std::memory_order_acquire); fb != 0) {
    return spend_fallback(e, fb, cost, b, stripe);
  }
  if (b < 0 && !p.concurrency) return deny_in_debt(e, stripe);
  if (const std::uint8_t level = e->exhausted.load(std::memory_order_relaxed); level != 0) {
    Nanos wait{clamp_nonneg(e->retry_at.load(std::memory_order_relaxed) - clock_->now().count())};
    if (level == core::kExhaustedDebt) return deny_in_debt(e, stripe);
    return deny(p, level == core::kExhaustedGroup ? Reason::kOverGroupLimit : Reason::kOverLimit,
                stripe, clamp_nonneg(b), wait);
  }
  Nanos rtt{refills_.rtt_ns() + kTick.count()};
  Reason r = e->leased.load(std::memory_order_relaxed) ? Reason::kLeasePending : Reason::kColdKey;
  return deny(p, r, stripe, clamp_nonneg(b), rtt);
}

// The shard is unavailable and the key's lease spent: the policy's fallback decides.
Decision LimiterImpl::spend_fallback(Entry* e, std::uint8_t fb, std::uint64_t cost,
                                     std::int64_t balance, std::uint32_t stripe) noexcept {
  const CompiledPolicy& p = policy_of(e);
  if (fb == core::kFallbackAllow) {
    count_admitted(p.label, stripe, cost);
    return Decision{true, Reason::kFallbackAllow, 0, Nanos{0}};
  }
  if (fb == core::kFallbackLocal) {
    // The local bucket is short of `cost`: it holds that many after cost / rate.
    const double rate = p.fallback_rate;
    const double secs =
        rate > 0 ? static_cast<double>(
                       cost - std::min(cost, static_cast<std::uint64_t>(clamp_nonneg(balance)))) /
                       rate
                 : 1.0;
    return deny(p, Reason::kFallbackLocal, stripe, clamp_nonneg(balance),
                std::max(Nanos{static_cast<std::int64_t>(secs * 1e9)}, kTick));
  }
  Nanos wait{clamp_nonneg(e->retry_at.load(std::memory_order_relaxed) - clock_->now().count())};
  return deny(p, Reason::kFallbackDeny, stripe, clamp_nonneg(balance), std::max(wait, kTick));
}

Entry* LimiterImpl::find_or_create(std::string_view key, std::uint64_t cost, bool permit,
                                   std::uint32_t stripe, Decision& failure) noexcept {
  try {
    const core::PolicySet& set = policies_.published();
    auto idx = set.index.match(key);
    if (!idx) {
      failure = deny(Reason::kNoPolicy, stripe);
      return nullptr;
    }
    const std::uint16_t slot = set.slot_of[*idx];
    const CompiledPolicy& p = policies_.at(slot);
    // A bad cost never creates state.
    if (p.concurrency != permit || cost > p.capacity) {
      failure = deny(p, Reason::kInvalidArgument, stripe);
      return nullptr;
    }
    const std::uint64_t h = core::hash_key(key);
    if (!admission_.admits(h, table_.size())) {  // a key seen once never takes the last places
      // Evict harder, as for a full table; one wake-up a tick is enough (refusals here
      // come at the hot path's pace, faster than the SDK's thread could drain wake-ups).
      if (eviction_.press()) wake();
      failure = deny(p, Reason::kKeyTableFull, stripe);
      return nullptr;
    }
    auto [e, result] = table_.find_or_insert(key, h, [&] {
      Entry* n = Entry::create(key, static_cast<std::uint32_t>(h), slot);
      const ColdKeys& cold = set.config->cold_keys;
      if (cold.mode == ColdKeyMode::kOptimistic && !p.concurrency) {
        auto allowance =
            static_cast<std::int64_t>(std::min<std::uint64_t>(cold.allowance, p.capacity));
        n->balance.store(allowance, std::memory_order_relaxed);
        n->s.debt = static_cast<std::uint32_t>(allowance);
      }
      return n;
    });
    if (result == core::KeyTable::Insert::kFull) {
      admission_.table_full();
      eviction_.press();
      wake();
      failure = deny(p, Reason::kKeyTableFull, stripe);
      return nullptr;
    }
    if (result == core::KeyTable::Insert::kInserted) {
      request_refill(e);
      wake();  // a cold key wants its first lease now, not at the next tick
    }
    return e;
  } catch (...) {  // allocation failure: deny, never throw through try_acquire
    failure = deny(Reason::kKeyTableFull, stripe);
    return nullptr;
  }
}

// ---------------------------------------------------------------------------------------
// Waiting acquires and permits

WaitId LimiterImpl::acquire_async(std::string_view key, std::uint64_t cost, Nanos timeout,
                                  Limiter::Completion done) {
  auto finish = [&](const Decision& d) {
    done(d);
    return WaitId{0};
  };
  Decision d;
  Entry* e = nullptr;
  {
    EpochGuard guard;
    const std::uint32_t stripe = guard.thread_index();
    if (!valid(key, cost)) return finish(deny(Reason::kInvalidArgument, stripe));
    e = table_.find(key, core::hash_key(key));
    if (e == nullptr) {
      e = find_or_create(key, cost, false, stripe, d);
      if (e == nullptr) return finish(d);
    }
    d = spend(e, cost, stripe, false);
    if (!d.allowed) d = shadowed(e, d, stripe);
    if (d.allowed || d.reason == Reason::kInvalidArgument || d.reason == Reason::kPenaltyBox) {
      return finish(d);
    }
    if (timeout <= Nanos{0})
      return finish(Decision{false, Reason::kTimeout, d.remaining, d.retry_after});
    WaitId id = 0;
    switch (waits_.add(e, cost, clock_->now() + timeout,
                       policies_.published().config->max_waiters_per_key, done, id)) {
      case core::WaitQueue::Added::kRetired:
        return finish(Decision{false, Reason::kLeasePending, 0, d.retry_after});
      case core::WaitQueue::Added::kFull:
        return finish(deny(policy_of(e), Reason::kQueueFull, stripe));
      case core::WaitQueue::Added::kQueued:
        break;
    }
    request_refill(e);
    wake();
    return id;
  }
}

bool LimiterImpl::cancel(WaitId id) {
  Limiter::Completion done;
  if (!waits_.cancel(id, done)) return false;
  done(Decision{false, Reason::kCancelled, 0, Nanos{0}});
  return true;
}

Permit LimiterImpl::acquire_permit(std::string_view key, std::uint32_t count) noexcept {
  EpochGuard guard;
  const std::uint32_t stripe = guard.thread_index();
  if (!valid(key, count)) return Permit({}, nullptr, 0, deny(Reason::kInvalidArgument, stripe));
  Entry* e = table_.find(key, core::hash_key(key));
  if (e == nullptr) {
    Decision failure;
    e = find_or_create(key, count, true, stripe, failure);
    if (e == nullptr) return Permit({}, nullptr, 0, failure);
  }
  // Counted before spending, so eviction never takes an entry with permits about to go out.
  e->permits_out.fetch_add(count, std::memory_order_acq_rel);
  Decision d = spend(e, count, stripe, true);
  if (!d.allowed) {
    e->permits_out.fetch_sub(count, std::memory_order_acq_rel);
    return Permit({}, nullptr, 0, shadowed(e, d, stripe));  // shadow: admitted, holds none
  }
  try {
    return Permit(shared_from_this(), e, count, d);
  } catch (...) {
    release_permit(e, count);
    return Permit({}, nullptr, 0, Decision{false, Reason::kShutdown, 0, Nanos{0}});
  }
}

void LimiterImpl::release_permit(void* entry, std::uint32_t count) noexcept {
  auto* e = static_cast<Entry*>(entry);
  e->balance.fetch_add(count, std::memory_order_release);
  e->touched.store(true, std::memory_order_relaxed);
  e->permits_out.fetch_sub(count, std::memory_order_acq_rel);
  if (e->waiters.load(std::memory_order_relaxed) != 0) request_refill(e);
}

// ---------------------------------------------------------------------------------------
// The refill scheduler

void LimiterImpl::run() {
  while (!stop_.load(std::memory_order_acquire)) {
    tick();
    Nanos now = clock_->now();
    Nanos sleep;
    bool busy = false;
    {
      std::lock_guard lk(tick_mu_);
      sleep = next_wakeup(now) - now;
      busy = now < busy_until_;
    }
    if (busy) sleep = std::min(sleep, kTick);
    if (sleep <= Nanos{0}) continue;
    refills_.sleep(sleep, busy, stop_);
  }
}

Nanos LimiterImpl::next_wakeup(Nanos now) {
  Nanos next = refills_.next_wakeup(now, config_->leases.refresh);
  next = std::min(next, waits_.next_deadline());
  if (!eviction_.empty() || rematch_due_) next = std::min(next, now + kTick);
  return next;
}

void LimiterImpl::tick() {
  std::lock_guard lk(tick_mu_);
  if (shut_.load(std::memory_order_acquire) && !background_) return;
  Nanos now = clock_->now();
  refills_.begin_tick(now);
  drain_inbox(now);
  mark_overdue(now);

  Entry* list = refills_.take_requests();
  if (list != nullptr) busy_until_ = now + 2 * config_->leases.horizon;
  while (list != nullptr) {
    Entry* e = list;
    list = e->next_queued.load(std::memory_order_relaxed);
    e->queued.store(false, std::memory_order_release);
    if (!e->retired.load(std::memory_order_acquire)) consider(e, now);
  }
  refills_.fire_timers(now, [&](Entry* e) { maintain(e, now); });
  rematch_keys(now);
  flush(now);
  drain_inbox(now);  // stores that answer inline
  expire_deadlines(now);
  idle_scan(now);
  admission_.age();
  admission_.settle(table_.size());
  // Give-backs travel with the next lease call, or once they have waited a refresh period.
  take_late_refunds();
  refills_.end_tick(now, config_->leases.refresh);
  reclaim();
}

void LimiterImpl::ensure_timers(Entry* e, Nanos now) {
  auto& s = e->s;
  if (s.lease_count > 0) {
    add_timer(e, from_ms(s.leases[0].local_expiry));
    const Nanos renew = from_ms(s.leases[0].local_expiry) - config_->leases.ttl * 2 / 3;
    if (policy_of(e).concurrency && !s.in_flight && renew > now) add_timer(e, renew);
  }
  const std::int64_t retry_at = e->retry_at.load(std::memory_order_relaxed);
  if (retry_at > now.count()) add_timer(e, Nanos{retry_at});
}

void LimiterImpl::maintain(Entry* e, Nanos now) {
  expire_leases(e, now);
  if (e->penalized.load(std::memory_order_relaxed) &&
      e->retry_at.load(std::memory_order_relaxed) <= now.count()) {
    e->penalized.store(false, std::memory_order_relaxed);
    e->s.deny_base = e->denials.load(std::memory_order_relaxed);
    e->s.deny_window_start = to_ms(now);
  }
  consider(e, now);
  ensure_timers(e, now);
}

void LimiterImpl::expire_leases(Entry* e, Nanos now) {
  auto& s = e->s;
  const Ms nms = to_ms(now);
  const bool concurrency = policy_of(e).concurrency;
  while (core::book_oldest_due(s, nms)) {
    if (concurrency) {
      // The reservation lapsed without renewal: the store has let it go too.
      e->balance.fetch_sub(s.leases[0].granted, std::memory_order_acq_rel);
      s.lease_count = 0;
      break;
    }
    lease_ending(e);
    std::int64_t b = e->balance.load(std::memory_order_acquire);
    std::int64_t take = 0;
    do {
      take = core::book_oldest_left(s, b);
    } while (take > 0 && !e->balance.compare_exchange_weak(b, b - take, std::memory_order_acq_rel));
    if (take > 0) {
      refills_.give_back(
          GiveBack{std::string(e->key()), policy_of(e).spec, static_cast<std::uint64_t>(take),
                   from_ms(s.leases[0].store_expiry) + store_offset_, instance_id_},
          from_ms(s.leases[0].store_expiry));
      counted_.tokens_given_back.fetch_add(take, std::memory_order_relaxed);
    }
    core::book_end_oldest(s, take);
  }
}

// Fills the key's local fallback bucket (fallback = local) while its shard is
// unavailable. It starts full (burst) once the key's leases are spent or expired, then
// refills at the fallback rate. Its tokens live in the balance, which then holds nothing
// else: leases are credited only after leave_fallback() has taken the rest away.
void LimiterImpl::fallback_refill(Entry* e, Nanos now) {
  auto& s = e->s;
  const CompiledPolicy& p = policy_of(e);
  if (!e->unavailable || p.fallback != core::kFallbackLocal) return;
  const std::int64_t b = e->balance.load(std::memory_order_acquire);
  if (s.lease_count > 0) {
    if (b > 0) return;  // lease tokens left: those first (expire_leases ends them)
    for (int i = 0; i < s.lease_count; ++i) lease_ending(e);
    s.lease_count = 0;  // spent: nothing of them to give back
  }
  const bool starting = e->fallback.load(std::memory_order_relaxed) != core::kFallbackLocal;
  if (starting) {
    e->fallback.store(core::kFallbackLocal, std::memory_order_release);  // first
    s.fallback_added() = 0;
  }
  double rate = p.fallback_rate;
  std::int64_t burst = p.fallback_burst, start = p.fallback_burst;
  if (p.fallback_share) {  // the share of the key's rate this instance was last granted
    const core::ShareBucket sb =
        core::share_bucket(core::decode_share(s.share), p.fallback_rate, p.fallback_burst);
    rate = sb.rate;
    burst = sb.burst;
    start = sb.start;
  }
  const core::FallbackFill fill =
      core::fallback_fill(starting, s.fallback_filled(), to_ms(now), rate, burst, start, b);
  s.fallback_filled() = fill.filled;
  const std::int64_t add = fill.add;
  if (add <= 0) return;
  e->balance.fetch_add(add, std::memory_order_acq_rel);
  s.baseline_balance += add;
  s.fallback_added() = static_cast<std::uint32_t>(std::min<std::uint64_t>(
      std::uint64_t{s.fallback_added()} + static_cast<std::uint64_t>(add), UINT32_MAX));
  counted_.fallback_tokens.fetch_add(static_cast<std::uint64_t>(add), std::memory_order_relaxed);
  serve_waiters(e);
}

// The key's shard failed its refill, or has not answered it in time (mark_overdue): its
// policy's fallback decides once the key's lease is spent, until an answer comes back —
// waiters included, who would otherwise wait for a refill that may never come.
void LimiterImpl::engage_fallback(Entry* e, Nanos now) {
  const CompiledPolicy& p = policy_of(e);
  e->unavailable = true;
  if (p.fallback == core::kFallbackLocal) {
    fallback_refill(e, now);  // serves waiters from the local bucket
    return;
  }
  e->fallback.store(p.fallback, std::memory_order_release);
  if (e->waiters.load(std::memory_order_acquire) == 0) return;
  // allow admits them all, deny refuses them all now: neither waits for the shard.
  const bool admit = p.fallback == core::kFallbackAllow;
  const Reason reason = admit ? Reason::kFallbackAllow : Reason::kFallbackDeny;
  Completions done;
  // shared: the scheduler owns no stripe
  PolicyCounts& st = stripes_[kOwnedStripes].policy[p.label];
  waits_.finish_key(
      e,
      [&](const core::Waiter& w) {
        if (admit) {
          st.admitted.fetch_add(1, std::memory_order_relaxed);
          st.admitted_tokens.fetch_add(w.cost, std::memory_order_relaxed);
        } else {
          st.denied[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
        }
        return Decision{admit, reason, 0, admit ? Nanos{0} : kTick};
      },
      done);
  core::complete(done);
}

// Refills unanswered past their shard's overdue time (LeaseOptions::overdue_floor, 4 x the
// shard's p99 round trip): their keys go to the fallback now, not when the call times out
// (store.command_timeout, 500 ms by default). The answer, when it comes, ends it.
void LimiterImpl::mark_overdue(Nanos now) {
  refills_.mark_overdue(now, config_->leases.overdue_floor,
                        [&](Entry* e) { engage_fallback(e, now); });
}

// The store answered again: leases resume, and what the local fallback bucket still
// holds is dropped (it never came from the store, so it must not outlive the outage).
// Returns the fallback tokens admitted meanwhile, which the answer's grant pays (apply).
std::uint64_t LimiterImpl::leave_fallback(Entry* e) {
  e->unavailable = false;
  if (e->fallback.exchange(core::kFallbackOff, std::memory_order_acq_rel) != core::kFallbackLocal)
    return 0;
  const std::int64_t left = e->balance.exchange(0, std::memory_order_acq_rel);
  if (left > 0)
    counted_.fallback_dropped.fetch_add(static_cast<std::uint64_t>(left),
                                        std::memory_order_relaxed);
  if (left < 0) e->balance.fetch_add(left, std::memory_order_acq_rel);  // debt stays owed
  e->s.baseline_balance = 0;
  const std::uint64_t added = e->s.fallback_added();
  e->s.fallback_added() = 0;  // the first lease slot again
  return added - std::min<std::uint64_t>(added, clamp_nonneg(left));
}

void LimiterImpl::consider(Entry* e, Nanos now) {
  // Between an update and the pass of rematch_keys(), a key moves before it asks again.
  if (rematch_due_ && rematch(e, now)) return;
  auto& s = e->s;
  const CompiledPolicy& p = policy_of(e);
  const Ms nms = to_ms(now);
  if (e->unavailable) fallback_refill(e, now);
  // A waiter may have queued just after the last credit served the queue (it saw no
  // tokens, then the credit found no waiter): the tokens are there, serve it now.
  if (e->waiters.load(std::memory_order_acquire) != 0) serve_waiters(e);
  if (s.in_flight) {
    // Parked until the answer: `queued` stays set, so that denials meanwhile do not push
    // the key again or wake this thread (a system call on the hot path) for nothing.
    // (Only when `queued` is free: an application thread may just have put the key on the
    // queue, and a key must never be on it twice.)
    s.again = true;
    if (s.held) hurry(e, now);
    bool free = false;
    if (!s.parked && e->queued.compare_exchange_strong(free, true, std::memory_order_acq_rel))
      s.parked = true;
    return;
  }
  const std::uint32_t denials = e->denials.load(std::memory_order_relaxed);
  // Penalty box: K denials within M refuses the key for U, without asking the store.
  if (p.penalty_box && !e->penalized.load(std::memory_order_relaxed)) {
    const PenaltyBox& box = p.spec->penalty_box;
    if (core::ms_before(s.deny_window_start + static_cast<Ms>(box.within.count() / 1'000'000),
                        nms)) {
      s.deny_window_start = nms;
      s.deny_base = denials;
    } else if (denials - s.deny_base >= box.denials) {
      e->retry_at.store((now + box.duration).count(), std::memory_order_relaxed);
      e->penalized.store(true, std::memory_order_release);
      add_timer(e, now + box.duration);
      return;
    }
  }
  if (e->penalized.load(std::memory_order_relaxed)) return;

  const std::int64_t balance = e->balance.load(std::memory_order_acquire);
  std::uint64_t head_cost = 0;
  if (e->waiters.load(std::memory_order_acquire) != 0) head_cost = waits_.head_cost(e);
  const std::uint64_t denied_cost = e->last_denied_cost.load(std::memory_order_relaxed);
  s.max_cost = static_cast<std::uint16_t>(std::min<std::uint64_t>(
      65535, std::max<std::uint64_t>({s.max_cost, denied_cost, head_cost})));
  const std::uint64_t min_need = std::max<std::uint64_t>({1, denied_cost, head_cost});

  std::uint64_t want = 0;
  std::uint64_t debt = 0;
  double demand = -1;  // per second, reported with a token bucket's request (< 0: not yet)
  std::uint8_t urgency = Scheduler::kUrgent;  // concurrency: always at once
  if (p.concurrency) {
    const std::int64_t reserved = s.lease_count > 0 ? s.leases[0].granted : 0;
    const std::int64_t in_use = reserved - balance;
    const std::uint64_t headroom = std::max<std::uint64_t>(p.max_lease, min_need);
    const bool short_of_permits = balance < static_cast<std::int64_t>(min_need) &&
                                  (denied_cost > 0 || head_cost > 0 || reserved == 0);
    const Nanos ttl = config_->leases.ttl;
    const bool renew_due =
        s.lease_count > 0 &&
        !core::ms_before(
            nms, s.leases[0].local_expiry - static_cast<Ms>(ttl.count() / 1'000'000 * 2 / 3));
    const bool too_many = balance > static_cast<std::int64_t>(2 * headroom);
    if (!short_of_permits && !renew_due && !too_many) return;
    if (now.count() < e->retry_at.load(std::memory_order_relaxed) && !renew_due) {
      add_timer(e, Nanos{e->retry_at.load(std::memory_order_relaxed)});
      return;
    }
    want = std::min<std::uint64_t>(
        p.capacity, static_cast<std::uint64_t>(std::max<std::int64_t>(in_use, 0)) + headroom);
  } else {
    // An unavailable shard is asked again (every kStoreErrorBackoff) even while the local
    // fallback bucket has tokens: that is how its return is noticed.
    const bool short_of_tokens = balance < e->watermark.load(std::memory_order_relaxed) ||
                                 balance < static_cast<std::int64_t>(min_need) ||
                                 !e->leased.load(std::memory_order_relaxed) || e->unavailable;
    if (!short_of_tokens) return;
    const std::int64_t retry_at = e->retry_at.load(std::memory_order_relaxed);
    if (now.count() < retry_at) {
      add_timer(e, Nanos{retry_at});
      return;
    }
    const double horizon = std::chrono::duration<double>(config_->leases.horizon).count();
    demand = sample_demand(e, nms, balance, denials, denied_cost);
    const core::LeaseSizing sizing = lease_sizing(p);
    debt = debt_to_ask(e, p, balance);
    want = core::lease_want(s.rate, min_need + debt, sizing);
    // Otherwise the average (denied tokens included); before a rate is known, what the
    // first lease is for.
    if (demand < 0) demand = s.rate > 0 ? s.rate : static_cast<double>(want) / horizon;
    // Callers waiting (acquire): what the key was served is not what it wants, since
    // closed-loop callers ask again as fast as they are served and the instance served
    // least would report least and be given least. Such a key claims the policy's whole
    // rate, so that instances which all have callers waiting get equal parts.
    if (e->waiters.load(std::memory_order_acquire) != 0) demand = std::max(demand, p.spec->rate);
    // Refill early enough that the lease lasts through the shard's next call and a round
    // trip.
    const double lead =
        (static_cast<double>(refills_.rtt_ns()) + 2.0 * static_cast<double>(kTick.count())) / 1e9;
    const std::int64_t wm = core::low_watermark(s.rate, lead, s.max_cost, want, sizing);
    // A key in debt refuses every request until a grant pays it: its call goes at once, not
    // with the shard's next call, when it carries kWorthACall tokens or more (debt and lease).
    const bool in_debt_due = balance < 0 && e->leased.load(std::memory_order_relaxed) &&
                             static_cast<double>(want) >= core::kWorthACall;
    urgency =
        core::refill_urgent(e->waiters.load(std::memory_order_acquire) != 0, e->unavailable,
                            e->leased.load(std::memory_order_relaxed),
                            e->exhausted.load(std::memory_order_relaxed) != core::kExhaustedNot,
                            balance, min_need, s.rate, sizing) ||
                in_debt_due
            ? Scheduler::kUrgent
            // Cold only on its first ask: a key the store had nothing for is paced by
            // scarcity, and waits for its shard's next call like one that was granted.
            : (e->leased.load(std::memory_order_relaxed) ||
                       e->exhausted.load(std::memory_order_relaxed) != core::kExhaustedNot
                   ? Scheduler::kCanWait
                   : Scheduler::kCold);
    e->watermark.store(static_cast<std::int32_t>(std::min<std::int64_t>(wm, INT32_MAX)),
                       std::memory_order_relaxed);
  }
  // A key whose last grants found the store's bucket half full or more (RefillState::
  // overflowed) asks again before it is full: the bucket holds at most its burst, so what
  // it refills after capacity / rate while no instance asks is lost. Its partition's calls
  // then come at most that far apart while it waits (RefillScheduler::add). At a refresh
  // period longer than that (2 s against a burst of 1 s of rate), two instances over a
  // plain bucket used 0.49 of it, 16 over buckets of 5,000/s 0.53 (docs/performance.md,
  // "Plain buckets shared by few instances"). Not under a group budget: there the group's
  // bucket binds, and its share levels hold a quarter of a TTL; at the reference fleet the
  // rule took zipf's admitted per store call from 515 to 482 and gained nothing.
  Nanos within = Nanos::max();
  if (!p.concurrency && urgency == Scheduler::kCanWait && p.refill_per_second > 0 &&
      s.overflowed > 0 && !p.spec->has_group_budget()) {
    within = at_least_a_tick(static_cast<double>(p.capacity) / p.refill_per_second);
  }
  e->last_denied_cost.store(0, std::memory_order_relaxed);
  s.baseline_balance = balance;
  s.baseline_time = nms;
  s.baseline_denials = denials;
  s.in_flight = true;
  LeaseRequest req;
  req.key = std::string(e->key());
  req.policy = p.spec;
  req.want = want;
  req.min = p.concurrency ? std::min<std::uint64_t>(want, min_need) : min_need + debt;
  req.request_id = instance_id_ + ":" + std::to_string(next_request_++);
  req.holder = instance_id_;
  req.ttl = config_->leases.ttl;
  if (!p.concurrency) {
    req.demand = demand;
    req.held = static_cast<std::uint64_t>(std::max<std::int64_t>(0, balance));
  }
  refills_.add(std::move(req), e, urgency, now, config_->leases.refresh, config_->leases.ttl,
               within);
  watch_dry(e, now);
}

// A held refill whose key ran dry while it waited, or that someone now waits for, goes with
// this tick after all.
void LimiterImpl::hurry(Entry* e, Nanos now) {
  const CompiledPolicy& p = policy_of(e);
  const bool urgent = core::refill_urgent(
      e->waiters.load(std::memory_order_acquire) != 0, e->unavailable,
      e->leased.load(std::memory_order_relaxed),
      e->exhausted.load(std::memory_order_relaxed) != core::kExhaustedNot,
      e->balance.load(std::memory_order_acquire), 1, e->s.rate, lease_sizing(p));
  if (urgent) {
    refills_.urge(e);
  } else {
    watch_dry(e, now);
  }
}

// A held refill's key is looked at again when its balance should be spent, at its demand:
// a key parked while its refill waits is not pushed by the denials that follow (consider),
// so without this a key that ran dry waited for its shard's next call, a refresh period,
// instead of going with the tick as refill_urgent says (two instances sharing a bucket
// used half of it at the 2 s refresh period). Not for a key already dry: it is not urgent,
// so its refill waits (refill_urgent: slow keys lose less than a call is worth).
void LimiterImpl::watch_dry(Entry* e, Nanos now) {
  const double rate = e->s.rate;
  const std::int64_t balance = e->balance.load(std::memory_order_relaxed);
  if (!(rate > 0) || balance <= 0 || !e->s.held) return;
  add_timer(e, now + at_least_a_tick(static_cast<double>(balance) / rate));
}

void LimiterImpl::drain_inbox(Nanos now) {
  refills_.drain(now, [&](Entry* e, std::uint64_t min, std::uint64_t want, const LeaseGrant& g,
                          Nanos sent_at) {
    apply(e, min, want, g, sent_at, now);
    if (e->s.rematch) {  // an update came while it was in flight
      e->s.rematch = false;
      --moves_pending_;
      if (!e->retired.load(std::memory_order_acquire)) rematch(e, now);
    }
  });
}

void LimiterImpl::apply(Entry* e, std::uint64_t min, std::uint64_t want, const LeaseGrant& g,
                        Nanos sent_at, Nanos now) {
  auto& s = e->s;
  const CompiledPolicy& p = policy_of(e);
  s.in_flight = false;
  if (!g.ok) {
    // The shard is unavailable for this key: its policy's fallback decides once the
    // lease is spent, until an answer comes back.
    engage_fallback(e, now);
    e->retry_at.store((now + kStoreErrorBackoff).count(), std::memory_order_relaxed);
    add_timer(e, now + kStoreErrorBackoff);
    requeue(e);
    return;
  }
  // What the local fallback admitted while this answer was overdue (or its shard out) was
  // admitted beyond any lease: the grant pays it first, up to its size (below), so that an
  // overdue answer that does come keeps the key inside its lease bound.
  const std::uint64_t fallback_spent = e->unavailable ? leave_fallback(e) : 0;
  // Demand this answer leaves unmet: callers waiting, or denials since the ask was sent.
  const bool waited = e->waiters.load(std::memory_order_acquire) != 0;
  const bool denied = e->denials.load(std::memory_order_relaxed) != s.baseline_denials;
  const bool unmet = waited || denied;
  // What was asked of the key while its refill was on its way (held for the partition's
  // next call, then a round trip): the next ask follows this answer at once.
  if (!p.concurrency) {
    const auto denied_cost = e->last_denied_cost.load(std::memory_order_relaxed);
    (void)sample_demand(e, to_ms(now), e->balance.load(std::memory_order_acquire),
                        e->denials.load(std::memory_order_relaxed), denied_cost);
    s.baseline_balance = e->balance.load(std::memory_order_relaxed);
    s.baseline_time = to_ms(now);
    s.baseline_denials = e->denials.load(std::memory_order_relaxed);
  }
  // The store's clock decides expiry; mapping it onto ours from the moment we asked
  // (which is no later than the moment it decided) can only make leases end earlier.
  store_offset_ = g.now - now;
  const Nanos ttl_left = g.expires_at - g.now;
  const Nanos store_expiry = sent_at + ttl_left;
  const Nanos local_expiry = store_expiry - config_->leases.expiry_margin;
  const std::uint64_t granted = std::min<std::uint64_t>(g.granted, kMaxLeaseTokens);
  if (granted > 0) {
    counted_.leases_granted.fetch_add(1, std::memory_order_relaxed);
    counted_.tokens_leased.fetch_add(granted, std::memory_order_relaxed);
  }
  if (p.concurrency) {
    const std::int64_t reserved = s.lease_count > 0 ? s.leases[0].granted : 0;
    const auto now_reserved = static_cast<std::int64_t>(granted);
    s.leases[0] = core::HeldLease{static_cast<std::uint32_t>(granted), to_ms(local_expiry),
                                  to_ms(store_expiry)};
    s.lease_count = granted > 0 ? 1 : 0;
    e->balance.fetch_add(now_reserved - reserved, std::memory_order_acq_rel);
    if (granted > 0) {
      e->leased.store(true, std::memory_order_relaxed);
      add_timer(e, local_expiry - config_->leases.ttl * 2 / 3);  // renewal
      add_timer(e, local_expiry);
    }
  } else if (granted > 0 && local_expiry > now) {
    const std::uint64_t charged = std::min(granted, fallback_spent);
    const std::uint64_t pay = std::min<std::uint64_t>(granted - charged, s.debt);
    s.debt -= static_cast<std::uint32_t>(pay);
    const auto credit = static_cast<std::uint32_t>(granted - charged - pay);
    if (credit > 0) {
      core::book_credit(s, core::HeldLease{credit, to_ms(local_expiry), to_ms(store_expiry)});
      e->newer_granted.store(s.lease_count > 1 ? s.leases[1].granted : 0);
      e->balance.fetch_add(credit, std::memory_order_acq_rel);
      add_timer(e, local_expiry);
    }
    e->leased.store(true, std::memory_order_relaxed);
  } else if (granted > 0) {
    // Expired before it arrived: hand it straight back (the store drops it if too late).
    refills_.give_back(
        GiveBack{std::string(e->key()), p.spec, granted, g.expires_at, instance_id_});
    counted_.tokens_expired.fetch_add(granted, std::memory_order_relaxed);
  }
  const core::Ms previous_grant = s.last_grant;
  if (granted > 0 && !p.concurrency) {
    s.last_grant = to_ms(sent_at) | 1;
    // The share this instance is granted, for the local fallback in share mode: tokens
    // over the time since the previous grant (the first: over a horizon).
    const double dt =
        previous_grant != 0
            ? static_cast<double>(static_cast<std::int32_t>(to_ms(sent_at) - previous_grant)) / 1e3
            : std::chrono::duration<double>(config_->leases.horizon).count();
    s.share = core::encode_share(core::next_share(
        core::decode_share(s.share), static_cast<double>(granted), dt, p.refill_per_second));
  }
  if (granted < min) {
    Nanos wait = std::max(g.wait_until - g.now, kTick);
    // A key never granted that the store had nothing for, on a bucket its instances share,
    // its requests denied meanwhile (no caller waits: those ask again at the store's time):
    // other instances emptied the bucket, and its turn comes after the bucket's fill time,
    // as for a grant that left the bucket short (below). The store's time is when this
    // instance's part holds one token, often a millisecond away, so the key rode along with
    // each of its partition's calls for a crumb: at the reference fleet's start, the
    // instances that found a bucket emptied by the first askers asked again with every
    // call, each half second while cold keys kept arriving, and a shard's busiest second was
    // 0.277 busy (0.156 with this; docs/performance.md, "The fleet's first seconds"). A key
    // granted before asks at the store's time as it did: one instance alone on its bucket
    // is paced by the store, not by a turn.
    if (previous_grant == 0 && denied && !waited && !p.concurrency)
      wait = std::max(wait, scarcity_turn(p, want));
    e->retry_at.store((now + wait).count(), std::memory_order_relaxed);
    e->exhausted.store(exhausted_level(g), std::memory_order_release);
    add_timer(e, now + wait);
  } else {
    std::int64_t retry_at = 0;
    std::uint8_t exhausted = core::kExhaustedNot;
    // The bucket held granted + remaining before this grant: half its burst or more means
    // it filled up unasked, and would have lost its refill had nobody come (kFillingLevel).
    if (!p.concurrency && static_cast<double>(granted) + static_cast<double>(g.remaining) >=
                              static_cast<double>(p.capacity) * kFillingLevel) {
      s.overflowed = kOverflowedGrants;
    } else if (s.overflowed > 0) {
      --s.overflowed;
    }
    const bool short_after = !p.concurrency && g.remaining < want && p.refill_per_second > 0;
    if (short_after && granted < want) {
      // Partly served under scarcity: do not ask again before the rest can have refilled.
      // Once the part is spent, denials say over_limit (the global bucket is low), not
      // lease_pending.
      double secs = static_cast<double>(want - granted) / p.refill_per_second;
      if (previous_grant != 0 && granted > 0) {
        // Other instances share the refill: at the share this one just received (granted
        // for the time between its last two asks), `want` takes want * dt / granted to
        // come together. Asking sooner only splits the same tokens over more round trips.
        const double dt =
            static_cast<double>(static_cast<std::int32_t>(to_ms(sent_at) - previous_grant)) / 1e3;
        if (dt > 0)
          secs = std::max(secs, static_cast<double>(want) * dt / static_cast<double>(granted));
      }
      Nanos wait{static_cast<std::int64_t>(secs * 1e9)};
      // The partition's next call (within LeaseOptions::refresh) paces it further.
      wait = std::clamp(wait, kTick, pacing_most());
      retry_at = (now + wait).count();
      exhausted = exhausted_level(g);
    } else if (short_after && unmet && p.spec->shares_instances()) {
      // Served in full, but the bucket is left short of another lease while demand went
      // unmet (callers waiting, or denied while the ask was on its way: a key that ran dry):
      // the next ask waits for the bucket's fill time (at most the pacing above), so
      // that under scarcity each instance takes about one lease (at most max_fraction of the
      // bucket) per fill time. Asking again at once took what the bucket had left before the
      // other instances' turns: two instances of equal demand split a 100/s bucket 60/40 over
      // 10 s, the one that asked after the longer gap keeping the lead (fairness_test.cpp,
      // EvenInstances). Only when the bucket refills a lease within that time: otherwise the
      // wait gives no other instance anything (a bucket at 0.001/s drained to its last
      // tokens). The store's answer does not say which level is short: denials until then
      // say lease_pending.
      if (const Nanos turn = scarcity_turn(p, want); turn > Nanos{0})
        retry_at = (now + turn).count();
    }
    e->retry_at.store(retry_at, std::memory_order_relaxed);
    e->exhausted.store(exhausted, std::memory_order_release);
  }
  s.baseline_balance = e->balance.load(std::memory_order_relaxed);
  s.baseline_time = to_ms(now);
  s.baseline_denials = e->denials.load(std::memory_order_relaxed);

  serve_waiters(e);
  // Waiters the grant did not cover ask again now, not at the lease's expiry: a queue longer
  // than one lease (after a move, the new policy's first lease) would otherwise wait a TTL.
  if (e->waiters.load(std::memory_order_acquire) != 0 && granted > 0) s.again = true;
  if (!p.concurrency) carry_debt(e, /*store_short=*/!(granted >= min), granted != 0);
  requeue(e);
}

// An instance's turn at a bucket its instances share while it is scarce: the bucket's fill
// time, at most pacing_most(); 0 (no turn) when the bucket does not refill `want` within
// it, or its instances do not share it.
Nanos LimiterImpl::scarcity_turn(const CompiledPolicy& p, std::uint64_t want) const noexcept {
  if (!p.spec->shares_instances() || !(p.refill_per_second > 0)) return Nanos{0};
  const Nanos turn = std::min(
      at_least_a_tick(static_cast<double>(p.capacity) / p.refill_per_second), pacing_most());
  return static_cast<double>(want) <=
                 p.refill_per_second * std::chrono::duration<double>(turn).count()
             ? turn
             : Nanos{0};
}

// The longest a key served short under scarcity waits before it asks again.
Nanos LimiterImpl::pacing_most() const noexcept {
  const Nanos refresh = config_->leases.refresh;
  return refresh > Nanos{0}
             ? std::max(kTick, std::min(refresh / 2, config_->leases.ttl / core::kHoldTtlDivisor))
             : config_->leases.ttl / 4;
}

// The answer is in: a key asked for while in flight goes on the queue again.
void LimiterImpl::requeue(Entry* e) noexcept {
  auto& s = e->s;
  if (!s.again) return;
  s.again = false;
  if (s.parked) {
    s.parked = false;
    e->queued.store(false, std::memory_order_release);
  }
  request_refill(e);
}

void LimiterImpl::serve_waiters(Entry* e) {
  Completions done;
  serve_waiters(e, done);
  core::complete(done);
}

void LimiterImpl::serve_waiters(Entry* e, Completions& out) {
  const core::WaitQueue::Served served = waits_.serve(e, out);
  if (served.waits == 0) return;
  // shared: the scheduler owns no stripe
  PolicyCounts& st = stripes_[kOwnedStripes].policy[policy_of(e).label];
  st.admitted.fetch_add(served.waits, std::memory_order_relaxed);
  st.admitted_tokens.fetch_add(served.tokens, std::memory_order_relaxed);
}

void LimiterImpl::expire_deadlines(Nanos now) {
  Completions done;
  waits_.expire(
      now,
      [this, now](const core::Waiter& w) {
        stripes_[kOwnedStripes]  // shared: the scheduler owns no stripe
            .policy[policy_of(w.entry).label]
            .denied[static_cast<int>(Reason::kTimeout)]
            .fetch_add(1, std::memory_order_relaxed);
        Nanos retry{clamp_nonneg(w.entry->retry_at.load(std::memory_order_relaxed) - now.count())};
        return Decision{false, Reason::kTimeout, 0, retry};
      },
      done);
  core::complete(done);
}

void LimiterImpl::idle_scan(Nanos now) {
  for (Entry* e : eviction_.sweep(table_, now, config_->idle_timeout)) evict(e, now);
}

bool LimiterImpl::evict(Entry* e, Nanos now) {
  if (e->s.in_flight || e->permits_out.load(std::memory_order_acquire) != 0) return false;
  // A key in debt stays until its leases have paid it (or the debt would be forgotten).
  if (!policy_of(e).concurrency && e->balance.load(std::memory_order_acquire) < 0) return false;
  // table_.erase marks it retired: no new waiter can join.
  if (!waits_.close_if_idle(e, [&] { table_.erase(e); })) return false;
  expire_leases(e, now);
  give_back(e, core::take_unspent(*e, policy_of(e).concurrency));
  eviction_.bury(e);
  counted_.keys_evicted.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void LimiterImpl::give_back(Entry* e, std::int64_t tokens) {
  auto& s = e->s;
  const CompiledPolicy& p = policy_of(e);
  for (int i = 0; i < s.lease_count; ++i) lease_ending(e);  // each lease ends
  // Newest leases hold what is left (first-in first-out spending).
  for (int i = s.lease_count - 1; i >= 0 && tokens > 0; --i) {
    const auto part = std::min<std::int64_t>(tokens, s.leases[i].granted);
    refills_.give_back(GiveBack{std::string(e->key()), p.spec, static_cast<std::uint64_t>(part),
                                from_ms(s.leases[i].store_expiry) + store_offset_, instance_id_},
                       from_ms(s.leases[i].store_expiry));
    counted_.tokens_given_back.fetch_add(part, std::memory_order_relaxed);
    tokens -= part;
  }
  s.lease_count = 0;
  // A debt leaving with the key: a lease call in flight asked for it (its grant pays it);
  // else the store's bucket is charged, or the fleet would never pay it back.
  if (!p.concurrency && !s.in_flight) report_debt(e, owed(e, tokens));
}

void LimiterImpl::reclaim() {
  table_.reclaim();
  policies_.reclaim();
  if (eviction_.empty()) return;
  // Under a flood of keys, evictions outrun the lease timers that hold evicted entries,
  // and timers made redundant by an earlier one pile up: drop both once they outnumber
  // the table (a key needs only its earliest timer; when it fires, maintain() sets the next).
  if (eviction_.buried() > std::max<std::size_t>(1024, config_->max_keys / 64) ||
      refills_.timers() > 2 * table_.size() + 1024) {
    refills_.drop_stale_timers();
  }
  eviction_.reclaim();
}

Stats LimiterImpl::stats() const {
  Stats st;
  // Counts first, names after: a label is named before any decision counts under it.
  std::array<PolicyStats, core::PolicyLabels::kMax> by_label{};
#define TOLLGATE_STATS_SUM(name, since, help) st.name += s.name.load(std::memory_order_relaxed);
#define TOLLGATE_STATS_SUM_POLICY(name, since, help) \
  ps.name += s.policy[l].name.load(std::memory_order_relaxed);
  for (const Stripe& s : stripes_) {
    TOLLGATE_STATS_ADMISSIONS(TOLLGATE_STATS_SUM)
    for (std::size_t l = 0; l < by_label.size(); ++l) {
      PolicyStats& ps = by_label[l];
      TOLLGATE_STATS_DECISIONS(TOLLGATE_STATS_SUM_POLICY)
      for (int r = 0; r < kReasonCount; ++r)
        ps.denied[r] += s.policy[l].denied[r].load(std::memory_order_relaxed);
    }
  }
#undef TOLLGATE_STATS_SUM_POLICY
  std::vector<std::string> names = labels_.names();
  st.policies.reserve(names.size());
  for (std::size_t l = 0; l < names.size(); ++l) {
    PolicyStats& ps = by_label[l];
    ps.name = std::move(names[l]);
    st.admitted += ps.admitted;
    st.admitted_tokens += ps.admitted_tokens;
    for (int r = 0; r < kReasonCount; ++r) st.denied[r] += ps.denied[r];
    st.policies.push_back(std::move(ps));
  }
  {
    const SchedulerCounters& s = counted_;
    TOLLGATE_STATS_SCHEDULER(TOLLGATE_STATS_SUM)
  }
#undef TOLLGATE_STATS_SUM
  st.keys_tracked = table_.size();
  const std::size_t waiting = waits_.size();
  st.bytes_used = table_.bytes_used() + admission_.bytes() +
                  waiting * (sizeof(core::Waiter) + 2 * sizeof(void*)) +
                  refills_.timers_counted() * Scheduler::kTimerBytes;
  st.breaker_transitions = relay_->transitions.load(std::memory_order_relaxed);
  st.breakers_opened = relay_->opened.load(std::memory_order_relaxed);
  relay_->durations.read(st.lease_duration);
  try {
    st.breakers = store_->breaker_states();
    const StoreStats store = store_->stats();
#define TOLLGATE_STATS_COPY(name, since, help) st.name = store.name;
    TOLLGATE_STATS_STORE(TOLLGATE_STATS_COPY)
#undef TOLLGATE_STATS_COPY
  } catch (...) {
  }
  return st;
}

}  // namespace tollgate
