// How big a token-bucket lease is, when a key asks for the next one, and whether its ask
// may wait for the shard's next call: pure functions of the key's demand and the lease
// options, called by the Limiter's scheduler (docs/architecture.md, "Lease size and when
// to refill"). Nothing here reads a clock, locks or allocates.
//
// Sizing: a lease covers `horizon` (two refresh periods by default) of the key's local
// demand, so a key asks about once per refresh period whatever its rate; under scarcity the
// store's pacing grants each instance its part of the key's rate (docs/quotas.md). The low
// watermark covers the wait for the shard's next call (`refresh`) and a round trip, so
// that a key that can wait still has tokens when its refill arrives.
#pragma once

#include <cstdint>

#include "limiter/entry.h"
#include "tollgate/config.h"

namespace tollgate::core {

// A sample of local demand, tokens per second: `spent` tokens (denied ones included) over
// `dt` seconds since the last credit or ask.
double demand_sample(double spent, double dt_s) noexcept;

struct LeaseSizing {
  double horizon_s = 2;          // seconds of local demand a lease covers
  double refresh_s = 1;          // longest wait for the shard's next call
  std::uint64_t min_tokens = 1;  // smallest lease worth asking for
  std::uint64_t max_lease = 1;   // largest lease (a fraction of the policy's capacity)
};
// The lease options of a policy whose largest lease is `max_lease`.
LeaseSizing lease_sizing(const LeaseOptions& o, std::uint64_t max_lease) noexcept;

// Takes a sample of the key's demand into s.rate (an EWMA over half a second): the tokens
// spent since the baseline (s.baseline_balance, then `balance` now) and the denials since
// (s.baseline_denials, then `denials`), each counted at `denied_cost`, over the time since
// s.baseline_time. Returns the demand to report for fair shares when the sample spans
// `horizon_s` (a drop is followed at once), else -1; -1 and no sample when the key holds
// no lease or less than a millisecond has passed.
double sample_demand(RefillState& s, bool leased, Ms now, double horizon_s, std::int64_t balance,
                     std::uint32_t denials, std::uint64_t denied_cost) noexcept;

// Tokens to ask for: demand x horizon, at least min_tokens and what the asker needs now
// (need: the cost denied or waited for, plus the optimistic debt to repay), at most
// max_lease (or need, if larger). A key with no demand measured yet (demand <= 0) asks
// for an eighth of max_lease: with many instances a first lease sized by the policy would
// sit unspent on one of them while the others are refused; a busy key asks again at once.
std::uint64_t lease_want(double demand, std::uint64_t need, const LeaseSizing& s) noexcept;

// Refill when the balance falls below this: the demand over the lead (round trip and
// scheduler ticks) plus the wait for the shard's next call, with half again as margin,
// plus the largest cost seen; at most three quarters of a lease, so that a lease is spent
// for a while before the next is asked.
std::int64_t low_watermark(double demand, double lead_s, std::uint64_t max_cost, std::uint64_t want,
                           const LeaseSizing& s) noexcept;

// Whether a refill must go at once rather than with the shard's next call: someone waits
// for it, the shard is failing (its return is noticed by asking), or nothing is left to
// spend though the store did not say it is short, and the demand would be refused
// kWorthACall tokens or more while waiting (the demand outran the watermark). Keys paced
// by scarcity, prefetching keys and slow keys wait: they hold tokens for the wait, would
// be refused by the store anyway, or lose less than a call is worth.
bool refill_urgent(bool waiters, bool unavailable, bool leased, bool exhausted,
                   std::int64_t balance, std::uint64_t need, double demand,
                   const LeaseSizing& s) noexcept;
inline constexpr double kWorthACall = 100;

// A cold key (never leased) that nobody waits for joins the shard's next call within
// this fraction of the refresh period, so that a new tenant is served within one short
// hold while a fleet starting up does not send one call per key.
inline constexpr double kColdHoldFraction = 1.0 / 4;

// The hold never exceeds this fraction of the lease TTL, nor a scarcity wait half of it: the
// store's share levels hold a quarter of a TTL of a rate, so wait plus hold must fit in it.
inline constexpr int kHoldTtlDivisor = 8;

}  // namespace tollgate::core
