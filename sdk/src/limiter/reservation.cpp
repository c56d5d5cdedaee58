// Reservations: part of an estimate held from the local balance, settled later at the actual
// cost (docs/quotas.md, "Estimated costs"; the bound with overage: docs/architecture.md).
//
// What is held is the estimate times the policy's HeldRatio (what its settles showed of
// their estimates), so that open requests do not sit on the difference between estimates
// and costs. A refund (held > actual) goes back to the balance, where it is spendable again
// and given back with the rest of its lease (or, when that lease has ended, to the store's
// bucket: GiveBack::late); an extra beyond what was held is taken from the
// balance, and what the balance lacks leaves it below zero: the key's debt. A key in debt is
// denied kInDebt; its next lease requests ask for the debt on top of their need
// (debt_to_ask), and the credit of their grants pays it before anything is spendable again.
// A cold key's optimistic allowance (RefillState::debt) is the same debt, asked for and paid
// the same way.
#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "limiter/limiter_impl.h"

namespace tollgate {

using core::Entry;
using core::EpochGuard;

namespace {

constexpr std::uint64_t kMaxActual = 1ull << 53;  // as a config's token counts

// Whether an admission took `estimate` tokens from the key's balance: not so for a shadow
// policy's denial admitted anyway, nor under fallback = allow.
bool took_tokens(const Decision& d) noexcept {
  return d.allowed && (d.reason == Reason::kOk || d.reason == Reason::kFallbackLocal);
}

constexpr std::uint32_t kLeast = (1u << 16) / 16;  // holds at least 1/16 of an estimate
constexpr int kRatioShift = 5;                     // EWMA weight 1/32 per settle

}  // namespace

std::uint64_t LimiterImpl::held_of(std::uint64_t estimate) const noexcept {
  const std::uint64_t r =
      std::clamp<std::uint32_t>(held_ratio_.load(std::memory_order_relaxed), kLeast, kHeldOne);
  const std::uint64_t held = (estimate >> 16) * r + (((estimate & 0xFFFF) * r + 0xFFFF) >> 16);
  return std::clamp<std::uint64_t>(held, 1, estimate);
}

void LimiterImpl::learn_held(std::uint64_t estimate, std::uint64_t actual) noexcept {
  const auto sample = static_cast<std::int64_t>(static_cast<double>(std::min(actual, estimate)) /
                                                static_cast<double>(estimate) * kHeldOne);
  const auto old = static_cast<std::int64_t>(held_ratio_.load(std::memory_order_relaxed));
  held_ratio_.store(static_cast<std::uint32_t>(old + ((sample - old) >> kRatioShift)),
                    std::memory_order_relaxed);
}

Decision LimiterImpl::deny_in_debt(const Entry* e, std::uint32_t stripe) noexcept {
  // Paid by the next grant: about a round trip away, or when the store said the key's
  // bucket has the need and the debt (retry_at).
  const Nanos rtt{refills_.rtt_ns() + std::chrono::milliseconds(1).count()};
  const Nanos until{e->retry_at.load(std::memory_order_relaxed) - clock_->now().count()};
  return deny(policy_of(e), Reason::kInDebt, stripe, 0, std::max(rtt, until));
}

std::uint64_t LimiterImpl::debt_to_ask(const Entry* e, const CompiledPolicy& p,
                                       std::int64_t balance) const noexcept {
  return std::min(owed(e, balance), p.max_lease);
}

void LimiterImpl::carry_debt(Entry* e, bool store_short, bool granted) {
  auto& s = e->s;
  if (granted) s.owes = false;
  if (s.owes) e->exhausted.store(core::kExhaustedDebt, std::memory_order_release);
  std::int64_t b = e->balance.load(std::memory_order_acquire);
  if (b >= 0 && s.debt == 0) return;
  if (!store_short) {  // a debt larger than one lease: the next ones pay the rest
    s.again = true;
    return;
  }
  // The store had not the need and the debt: it counts the debt instead, so that every
  // instance's grants pay it back, and the key waits for its next grant (in_debt).
  while (b < 0 && !e->balance.compare_exchange_weak(b, 0, std::memory_order_acq_rel)) {
  }
  const std::uint64_t total = owed(e, b);
  if (total == 0) return;
  report_debt(e, total);
  refills_.flush_give_backs();  // now: the store counts it from this call on
  s.owes = true;
  e->exhausted.store(core::kExhaustedDebt, std::memory_order_release);
}

void LimiterImpl::report_debt(Entry* e, std::uint64_t owed) {
  e->s.debt = 0;
  if (owed == 0) return;
  GiveBack debt{std::string(e->key()), policy_of(e).spec, owed, Nanos{0}, instance_id_};
  debt.debt = true;
  refills_.give_back(std::move(debt));
}

void LimiterImpl::give_back_late(const Entry* e, std::uint64_t tokens) noexcept {
  try {
    GiveBack late{std::string(e->key()), policy_of(e).spec, tokens, Nanos{0}, instance_id_};
    late.late = true;
    std::lock_guard lk(late_mu_);
    late_refunds_.push_back(std::move(late));
  } catch (...) {  // no memory: the tokens are lost, as an expired lease's
    counted_.tokens_expired.fetch_add(tokens, std::memory_order_relaxed);
  }
}

void LimiterImpl::take_late_refunds() {
  std::vector<GiveBack> late;
  {
    std::lock_guard lk(late_mu_);
    late.swap(late_refunds_);
  }
  for (GiveBack& g : late) refills_.give_back(std::move(g));
}

Reservation LimiterImpl::reserve(std::string_view key, std::uint64_t estimate) noexcept {
  Decision failure;
  std::uint32_t ends = 0;
  std::uint64_t tokens = 0;
  void* held = hold(key, estimate, failure, ends, tokens);
  if (held == nullptr) return Reservation({}, nullptr, 0, 0, 0, failure);
  EpochGuard guard;
  auto* e = static_cast<Entry*>(held);
  const std::uint32_t stripe = guard.thread_index();
  const std::uint32_t newer = e->newer_granted.load();  // after hold() read the end count
  // A positive balance short of the hold is held whole: a remainder smaller than the next
  // request's hold would otherwise wait for its lease's end (60 instances' remainders of a
  // tenant's bucket); the settle charges the rest as an extra, debt where the balance lacks it.
  const std::int64_t b = e->balance.load(std::memory_order_relaxed);
  if (b > 0 && static_cast<std::uint64_t>(b) < tokens &&
      e->waiters.load(std::memory_order_relaxed) == 0 &&
      e->fallback.load(std::memory_order_relaxed) == core::kFallbackOff)
    tokens = static_cast<std::uint64_t>(b);
  Decision d = spend(e, tokens, stripe, false);
  if (!d.allowed) d = shadowed(e, d, stripe);
  // The balance before this spend was within the newer lease: its tokens are all from it.
  if (d.allowed && newer > 0 && d.remaining >= 0 &&
      static_cast<std::uint64_t>(d.remaining) + tokens <= newer)
    ends |= kFromNewer;
  return reservation(held, estimate, tokens, ends, d);
}

void* LimiterImpl::hold(std::string_view key, std::uint64_t estimate, Decision& failure,
                        std::uint32_t& lease_ends, std::uint64_t& tokens) noexcept {
  EpochGuard guard;
  const std::uint32_t stripe = guard.thread_index();
  if (!valid(key, estimate)) {
    failure = deny(Reason::kInvalidArgument, stripe);
    return nullptr;
  }
  Entry* e = table_.find(key, core::hash_key(key));
  if (e == nullptr) {
    e = find_or_create(key, estimate, false, stripe, failure);
    if (e == nullptr) return nullptr;
  }
  const CompiledPolicy& p = policy_of(e);
  if (p.concurrency || estimate > p.capacity) {  // permits are not reserved: acquire_permit
    failure = deny(Reason::kInvalidArgument, stripe);
    return nullptr;
  }
  // Counted before spending, as permits are: eviction never takes an entry a reservation
  // may hold. The lease-end count is read before the tokens are taken (refunds compare it).
  e->permits_out.fetch_add(1, std::memory_order_acq_rel);
  lease_ends = lease_ends_of(e).load() & ~kFromNewer;
  tokens = held_of(estimate);
  return e;
}

Reservation LimiterImpl::reservation(void* held, std::uint64_t estimate, std::uint64_t tokens,
                                     std::uint32_t lease_ends, Decision d) noexcept {
  auto* e = static_cast<Entry*>(held);
  if (!took_tokens(d)) {
    e->permits_out.fetch_sub(1, std::memory_order_acq_rel);
    return Reservation({}, nullptr, 0, 0, 0, d);
  }
  {
    EpochGuard guard;
    count(
        guard.thread_index(), [](Stripe & s) -> auto& { return s.reserved; }, 1);
  }
  try {
    return Reservation(shared_from_this(), e, estimate, tokens, lease_ends, d);
  } catch (...) {
    (void)settle(e, estimate, tokens, lease_ends, estimate);
    return Reservation({}, nullptr, 0, 0, 0, Decision{false, Reason::kShutdown, 0, Nanos{0}});
  }
}

Settlement LimiterImpl::settle(void* entry, std::uint64_t estimate, std::uint64_t held,
                               std::uint32_t lease_ends, std::uint64_t actual) noexcept {
  Settlement st;
  if (entry == nullptr || actual > kMaxActual) return st;  // nothing changes
  auto* e = static_cast<Entry*>(entry);
  EpochGuard guard;
  const std::uint32_t stripe = guard.thread_index();
  const CompiledPolicy& p = policy_of(e);
  st.reason = Reason::kOk;
  const std::uint64_t cap = p.spec->overage_cap();
  const std::uint64_t most = estimate > UINT64_MAX - cap ? UINT64_MAX : estimate + cap;
  st.charged = std::min(actual, most);
  st.uncharged = actual - st.charged;
  learn_held(estimate, actual);
  // Under or over the estimate (what Stats says), whatever part of it was held.
  if (actual < estimate) {
    count(
        stripe, [](Stripe & s) -> auto& { return s.settled_under; }, 1);
  } else if (actual > estimate) {
    count(
        stripe, [](Stripe & s) -> auto& { return s.settled_over; }, 1);
  }
  if (st.charged < held) {
    const auto refund = static_cast<std::int64_t>(held - st.charged);
    // Ends since the reserve that the refund survives: none, or the older lease's when the
    // tokens came from the newer one.
    const std::uint32_t allowed = (lease_ends & kFromNewer) != 0 ? 1 : 0;
    const auto ended = [&] {
      return ((lease_ends_of(e).load() - (lease_ends & ~kFromNewer)) & ~kFromNewer) > allowed;
    };
    std::int64_t dropped = refund;
    if (!ended()) {
      e->balance.fetch_add(refund, std::memory_order_acq_rel);
      dropped = 0;
      // A lease may have ended in between: its expiry may have missed the refund, so it is
      // taken out again (as far as it is still there; a lease that did see it gave it back).
      if (ended()) {
        std::int64_t b = e->balance.load(std::memory_order_acquire);
        do {
          dropped = std::clamp<std::int64_t>(b, 0, refund);
        } while (dropped > 0 &&
                 !e->balance.compare_exchange_weak(b, b - dropped, std::memory_order_acq_rel));
      }
    }
    st.dropped = static_cast<std::uint64_t>(dropped);
    st.refunded = static_cast<std::uint64_t>(refund - dropped);
    if (dropped > 0) give_back_late(e, st.dropped);
    if (st.refunded > 0 && e->waiters.load(std::memory_order_acquire) != 0) request_refill(e);
  } else if (st.charged > held) {
    const std::uint64_t extra = st.charged - held;
    const std::int64_t before =
        e->balance.fetch_sub(static_cast<std::int64_t>(extra), std::memory_order_acq_rel);
    st.debt = extra - static_cast<std::uint64_t>(
                          std::clamp<std::int64_t>(before, 0, static_cast<std::int64_t>(extra)));
    if (st.debt > 0) {
      count(
          stripe, [](Stripe & s) -> auto& { return s.debt_tokens; }, st.debt);
    }
    if (before - static_cast<std::int64_t>(extra) < e->watermark.load(std::memory_order_relaxed))
      request_refill(e);
  }
  e->touched.store(true, std::memory_order_relaxed);
  e->permits_out.fetch_sub(1, std::memory_order_acq_rel);  // last: eviction may take it now
  return st;
}

// ---------------------------------------------------------------------------------------
// The public types

Reservation::Reservation(Reservation&& other) noexcept
    : owner_(std::move(other.owner_)),
      entry_(std::exchange(other.entry_, nullptr)),
      estimate_(std::exchange(other.estimate_, 0)),
      held_(std::exchange(other.held_, 0)),
      lease_ends_(other.lease_ends_),
      decision_(other.decision_) {}

Reservation& Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    if (entry_ != nullptr) settle(estimate_);
    owner_ = std::move(other.owner_);
    entry_ = std::exchange(other.entry_, nullptr);
    estimate_ = std::exchange(other.estimate_, 0);
    held_ = std::exchange(other.held_, 0);
    lease_ends_ = other.lease_ends_;
    decision_ = other.decision_;
  }
  return *this;
}

Reservation::~Reservation() {
  if (entry_ != nullptr) settle(estimate_);
}

Settlement Reservation::settle(std::uint64_t actual) noexcept {
  if (entry_ == nullptr || !owner_) return Settlement{};
  const Settlement st = owner_->settle(entry_, estimate_, held_, lease_ends_, actual);
  if (st) {
    entry_ = nullptr;
    owner_.reset();
  }
  return st;
}

}  // namespace tollgate
