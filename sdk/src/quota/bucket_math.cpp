#include "quota/bucket_math.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace tollgate::core {
namespace {

constexpr double kNsPerSecond = 1e9;

std::int64_t align_down(std::int64_t t, std::int64_t window) noexcept {
  const std::int64_t r = t % window;
  return r < 0 ? t - r - window : t - r;
}

// Nanoseconds until `tokens` more have refilled at `rate` per second, rounded up.
std::int64_t refill_time(double tokens, double rate) noexcept {
  if (tokens <= 0) return 0;
  if (!(rate > 0)) return std::numeric_limits<std::int64_t>::max() / 4;
  return static_cast<std::int64_t>(std::ceil(tokens / rate * kNsPerSecond));
}

void refill(TokenBucketState& s, double rate, double burst, std::int64_t now) noexcept {
  if (s.fresh) {
    s.fresh = false;
    s.level = burst;
    s.ts = now;
    return;
  }
  if (now > s.ts) {
    s.level = std::min(burst, s.level + rate * static_cast<double>(now - s.ts) / kNsPerSecond);
    s.ts = now;
  }
}

void refill(TokenBucketState& s, const Policy& p, std::int64_t now) noexcept {
  refill(s, p.rate, p.effective_burst(), now);
}

bool bucket_idle(const TokenBucketState& s, double rate, double burst, std::int64_t now) noexcept {
  if (s.fresh) return true;
  if (s.pool > 0 && s.pool_expires > now) return false;
  return now - s.ts >= refill_time(burst - s.level, rate);
}

// Brings a share level up to date at `rate`, holding at most `cap` (a share that shrank
// loses what it no longer may hold at once).
void refill_share(ShareLevel& s, double rate, double cap, std::int64_t now) noexcept {
  if (s.level < 0) {
    s.level = cap;
    s.ts = now;
    return;
  }
  if (now > s.ts) {
    s.level += rate * static_cast<double>(now - s.ts) / kNsPerSecond;
    s.ts = now;
  }
  s.level = std::min(cap, s.level);
}

// Pooled tokens expire early: lend no more of them than the asker can spend before
// then (its `want` covers at most a TTL of its spending).
std::uint64_t pool_share(const TokenBucketState& s, const LeaseAsk& ask, bool usable,
                         std::int64_t now) noexcept {
  if (!usable || ask.ttl <= 0) return 0;
  return static_cast<std::uint64_t>(
      std::ceil(static_cast<double>(ask.want) * static_cast<double>(s.pool_expires - now) /
                static_cast<double>(ask.ttl)));
}

// Rolls the window forward so that `start` is the window holding `now`.
void roll(WindowState& s, std::int64_t window, std::int64_t now) noexcept {
  const std::int64_t start = align_down(now, window);
  if (s.start == start) return;
  s.previous = s.start == start - window ? s.count : 0;
  s.count = 0;
  s.start = start;
}

// Grants up to `free` tokens counted in the current window (ending at `end`); false when
// fewer than `min` are free.
bool take_from_window(WindowState& s, std::uint64_t free, const LeaseAsk& ask, std::int64_t now,
                      std::int64_t end, LeaseAnswer& a) noexcept {
  if (ask.want == 0 || free < std::max<std::uint64_t>(1, ask.min)) return false;
  a.granted = std::min(ask.want, free);
  s.count += a.granted;
  // Tokens of this window are spent in this window, or the next one could see 2x limit.
  a.expires_at = std::min(now + ask.ttl, end);
  return true;
}

}  // namespace

LeaseAnswer lease_token_bucket(TokenBucketState& s, const Policy& p, const LeaseAsk& ask,
                               std::int64_t now) noexcept {
  refill(s, p, now);
  if (s.pool > 0 && s.pool_expires <= now) s.pool = 0;
  const bool pool_usable = s.pool > 0 && s.pool_expires - now >= ask.ttl / 4;
  const std::uint64_t min = std::max<std::uint64_t>(1, ask.min);
  LeaseAnswer a;
  if (ask.want == 0) {
    a.remaining = static_cast<std::uint64_t>(std::max(0.0, s.level)) + (pool_usable ? s.pool : 0);
    return a;
  }
  const std::uint64_t lend = pool_share(s, ask, pool_usable, now);
  if (pool_usable && std::min(s.pool, lend) >= min) {
    a.granted = std::min({ask.want, s.pool, lend});
    s.pool -= a.granted;
    a.expires_at = s.pool_expires;
  } else if (s.level >= static_cast<double>(min)) {
    a.granted = std::min<std::uint64_t>(ask.want, static_cast<std::uint64_t>(s.level));
    s.level -= static_cast<double>(a.granted);
    a.expires_at = now + ask.ttl;
  } else {
    a.wait_until =
        now + std::max<std::int64_t>(1, refill_time(static_cast<double>(min) - s.level, p.rate));
  }
  a.remaining = static_cast<std::uint64_t>(std::max(0.0, s.level)) +
                (s.pool > 0 && s.pool_expires - now >= ask.ttl / 4 ? s.pool : 0);
  return a;
}

LeaseAnswer lease_fixed_window(WindowState& s, const Policy& p, const LeaseAsk& ask,
                               std::int64_t now) noexcept {
  const std::int64_t window = p.window.count();
  roll(s, window, now);
  const std::int64_t end = s.start + window;
  const std::uint64_t free = p.limit > s.count ? p.limit - s.count : 0;
  LeaseAnswer a;
  if (!take_from_window(s, free, ask, now, end, a) && ask.want > 0) a.wait_until = end;
  a.remaining = p.limit - std::min(p.limit, s.count);
  return a;
}

double sliding_window_estimate(const WindowState& s, const Policy& p, std::int64_t now) noexcept {
  const auto window = static_cast<double>(p.window.count());
  const double elapsed = static_cast<double>(now - s.start);
  const double weight = std::clamp(1.0 - elapsed / window, 0.0, 1.0);
  return static_cast<double>(s.previous) * weight + static_cast<double>(s.count);
}

LeaseAnswer lease_sliding_window(WindowState& s, const Policy& p, const LeaseAsk& ask,
                                 std::int64_t now) noexcept {
  const std::int64_t window = p.window.count();
  roll(s, window, now);
  const std::int64_t end = s.start + window;
  const auto limit = static_cast<double>(p.limit);
  const double used = sliding_window_estimate(s, p, now);
  const std::uint64_t free =
      used >= limit ? 0 : static_cast<std::uint64_t>(std::floor(limit - used + 1e-9));
  LeaseAnswer a;
  if (take_from_window(s, free, ask, now, end, a)) {
    a.remaining = free - a.granted;
    return a;
  }
  a.remaining = free;
  if (ask.want == 0) return a;
  const std::uint64_t min = std::max<std::uint64_t>(1, ask.min);
  // When will previous × (1 − e/window) + count + min ≤ limit hold?
  const auto need = static_cast<double>(min);
  const auto wdur = static_cast<double>(window);
  if (static_cast<double>(s.count) + need <= limit) {
    // Still in this window, as the previous one's weight fades.
    const double e = wdur * (1.0 - (limit - static_cast<double>(s.count) - need) /
                                       static_cast<double>(std::max<std::uint64_t>(1, s.previous)));
    a.wait_until =
        s.start + std::clamp(static_cast<std::int64_t>(std::ceil(e)), now - s.start + 1, window);
  } else if (need <= limit) {
    // In the next window, as this one's count fades.
    const double e =
        wdur * (1.0 - (limit - need) / static_cast<double>(std::max<std::uint64_t>(1, s.count)));
    a.wait_until =
        end + std::clamp(static_cast<std::int64_t>(std::ceil(e)), std::int64_t{0}, window);
  } else {
    a.wait_until = end + window;
  }
  return a;
}

LeaseAnswer lease_concurrency(ConcurrencyState& s, const Policy& p, std::string_view holder,
                              const LeaseAsk& ask, std::int64_t now) {
  std::uint64_t others = 0;
  std::int64_t next_expiry = std::numeric_limits<std::int64_t>::max();
  std::uint64_t current = 0;
  for (auto it = s.holders.begin(); it != s.holders.end();) {
    if (it->second.expires_at <= now) {
      it = s.holders.erase(it);
      continue;
    }
    if (it->first == holder) {
      current = it->second.reserved;
    } else {
      others += it->second.reserved;
      next_expiry = std::min(next_expiry, it->second.expires_at);
    }
    ++it;
  }
  const std::uint64_t room = p.limit > others ? p.limit - others : 0;
  // A holder never loses what it already holds unless it asks for less: its permits
  // may be out, and the limit counts them.
  LeaseAnswer a;
  a.granted = std::min(ask.want, std::max(current, room));
  if (a.granted > 0) {
    s.holders[std::string(holder)] = {a.granted, now + ask.ttl};
    a.expires_at = now + ask.ttl;
  } else {
    s.holders.erase(std::string(holder));
  }
  const std::uint64_t used = others + a.granted;
  a.remaining = p.limit > used ? p.limit - used : 0;
  if (a.granted < std::min(ask.want, std::max<std::uint64_t>(1, ask.min))) {
    // Permits come back when another holder releases (unseen here) or lapses: look again
    // soon, and no later than the first lapse.
    constexpr std::int64_t kPoll = 50'000'000;
    a.wait_until = std::min(now + kPoll, next_expiry);
  }
  return a;
}

std::uint64_t give_back_token_bucket(TokenBucketState& s, const Policy& /*p*/, std::uint64_t tokens,
                                     std::int64_t expires_at, std::int64_t now) noexcept {
  if (tokens == 0 || expires_at <= now) return 0;
  if (s.pool > 0 && s.pool_expires > now) {
    s.pool_expires = std::min(s.pool_expires, expires_at);
    s.pool += tokens;
  } else {
    s.pool = tokens;
    s.pool_expires = expires_at;
  }
  return tokens;
}

std::uint64_t credit_token_bucket(TokenBucketState& s, const Policy& p, std::uint64_t tokens,
                                  std::int64_t now) noexcept {
  refill(s, p, now);
  const double credit = std::min(static_cast<double>(tokens), p.effective_burst() - s.level);
  if (credit <= 0) return 0;
  s.level += credit;
  return static_cast<std::uint64_t>(credit);
}

void charge_token_bucket(TokenBucketState& s, const Policy& p, std::uint64_t tokens,
                         std::int64_t now) noexcept {
  refill(s, p, now);
  s.level -= static_cast<double>(tokens);
}

void charge_group(GroupState& g, const ResolvedPolicy& p, std::uint64_t tokens,
                  std::int64_t now) noexcept {
  refill(g.bucket, p.group_rate, p.effective_group_burst(), now);
  g.bucket.level -= static_cast<double>(tokens);
}

void charge_window(WindowState& s, const Policy& p, std::uint64_t tokens,
                   std::int64_t now) noexcept {
  roll(s, p.window.count(), now);
  s.count += tokens;
}

std::uint64_t give_back_window(WindowState& s, const Policy& p, std::uint64_t tokens,
                               std::int64_t expires_at, std::int64_t now) noexcept {
  const std::int64_t window = p.window.count();
  if (tokens == 0 || expires_at <= now || s.start < 0) return 0;
  // Only tokens counted in the current window come off its count.
  if (now >= s.start + window || expires_at > s.start + window || expires_at <= s.start) return 0;
  const std::uint64_t credit = std::min(tokens, s.count);
  s.count -= credit;
  return credit;
}

std::uint64_t give_back_concurrency(ConcurrencyState& s, std::string_view holder,
                                    std::uint64_t tokens, std::int64_t now) noexcept {
  auto it = s.holders.find(holder);
  if (it == s.holders.end() || tokens == 0) return 0;
  if (it->second.expires_at <= now) {
    s.holders.erase(it);
    return 0;
  }
  const std::uint64_t credit = std::min(tokens, it->second.reserved);
  it->second.reserved -= credit;
  if (it->second.reserved == 0) s.holders.erase(it);
  return credit;
}

bool idle(const TokenBucketState& s, const Policy& p, std::int64_t now) noexcept {
  return bucket_idle(s, p.rate, p.effective_burst(), now);
}

double FairShare::of(const Claim& c) const noexcept {
  const double lo = std::min(c.floor, c.ceiling);
  switch (mode) {
    case kAll:
      return c.ceiling + k * c.weight;
    case kGuarantees:
      return lo * k;
    default:
      return std::min(c.ceiling, std::max(lo, k * c.weight));
  }
}

void water_fill(double capacity, std::span<const Claim> in, std::span<double> out) {
  const FairShare f = fair_share(capacity, in);
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = f.of(in[i]);
}

FairShare fair_share(double capacity, std::span<const Claim> in) {
  const std::size_t n = in.size();
  double sum_hi = 0, sum_w = 0, sum_lo = 0;
  for (const Claim& c : in) {
    sum_hi += c.ceiling;
    sum_w += c.weight;
  }
  if (n == 0 || sum_hi <= capacity) {
    // Not contended: every claim is met, and the spare is lent by weight.
    return {FairShare::kAll, n == 0 ? 0 : (capacity - sum_hi) / sum_w};
  }
  std::vector<double> lo(n);
  for (std::size_t i = 0; i < n; ++i) {
    lo[i] = std::min(in[i].floor, in[i].ceiling);
    sum_lo += lo[i];
  }
  if (sum_lo >= capacity) return {FairShare::kGuarantees, capacity / sum_lo};
  // F(λ) = Σ clamp(λ·w, lo, hi) is piecewise linear and rises from Σlo to Σhi: walk its
  // breakpoints (a claim starts rising at lo/w and stops at hi/w) to where it meets capacity.
  std::vector<std::pair<double, double>> events;
  events.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    events.emplace_back(lo[i] / in[i].weight, in[i].weight);
    events.emplace_back(in[i].ceiling / in[i].weight, -in[i].weight);
  }
  std::sort(events.begin(), events.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  double f = sum_lo, cur = 0, slope = 0, lambda = -1;
  for (const auto& [x, dw] : events) {
    const double next = f + slope * (x - cur);
    if (next >= capacity && slope > 0) {
      lambda = cur + (capacity - f) / slope;
      break;
    }
    f = next;
    cur = x;
    slope += dw;
  }
  if (lambda < 0) lambda = cur;
  return {FairShare::kLevel, lambda};
}

LeaseAnswer lease_shared(TenantState& t, GroupState* group, const ResolvedPolicy& p,
                         std::string_view tenant, std::string_view holder, double demand,
                         std::uint64_t held, const LeaseAsk& ask, std::int64_t now) {
  TokenBucketState& b = t.bucket;
  refill(b, p, now);
  if (b.pool > 0 && b.pool_expires <= now) b.pool = 0;
  const std::int64_t span = std::max<std::int64_t>(ask.ttl, 1);
  const std::int64_t live_after = now - span;
  // A share level holds a quarter of a TTL of its rate (the longest an instance waits
  // between asks while partly served) or its part of the bucket's burst, whichever is
  // more, and always one ask's minimum.
  const double window = static_cast<double>(span / 4) / kNsPerSecond;
  const std::uint64_t min = std::max<std::uint64_t>(1, ask.min);
  const auto need = static_cast<double>(min);
  t.ttl = span;

  // This instance's demand, and the key's: the sum over its live instances.
  const double d = demand > 0 && std::isfinite(demand)
                       ? demand
                       : static_cast<double>(ask.want) / std::max(window, 1e-9);
  // The sums over all records are redone once per refresh; in between, a call updates
  // them by its own change only, so that a lease costs O(1) however many instances and
  // tenants there are (the Lua script reads two hashes whole only at a refresh).
  const std::int64_t refresh = span / 16;
  bool made = false;
  InstanceRecord* rec = &t.instances.get(holder, made);
  const double before = made ? 0 : rec->demand;
  rec->demand = d;
  rec->held = held;
  rec->seen = now;
  if (!t.total_known || now - t.total_at >= refresh) {
    t.instances.erase_if([&](const auto& kv) { return kv.second.seen <= live_after; });
    rec = t.instances.find(holder);  // moved, not erased: seen now
    t.demand_total = 0;
    for (const auto& [name, r] : t.instances) t.demand_total += r.demand;
    t.total_known = true;
    t.total_at = now;
  } else {
    t.demand_total += d - before;
  }
  const double total = t.demand_total;
  InstanceRecord& me = *rec;

  double rate = p.rate;  // what the key may spend: its own rate, or its share of the group's
  double group_share = 0;
  if (group != nullptr) {
    refill(group->bucket, p.group_rate, p.effective_group_burst(), now);
    group->ttl = span;
    const Claim mine{p.weight, p.guaranteed_rate, std::min(total, p.rate)};
    bool joined = false;
    group->tenants.get(tenant, joined) = TenantRecord{mine.weight, mine.floor, mine.ceiling, now};
    // A tenant that joins is counted at once, so that its share is there when it asks.
    if (!group->fair_known || joined || now - group->fair_at >= refresh) {
      group->tenants.erase_if([&](const auto& kv) { return kv.second.seen <= live_after; });
      std::vector<Claim> claims;
      claims.reserve(group->tenants.size());
      for (const auto& [name, r] : group->tenants)
        claims.push_back(Claim{r.weight, r.guaranteed, r.demand});
      group->fair = fair_share(p.group_rate, claims);
      group->fair_known = true;
      group->fair_at = now;
    }
    group_share = group->fair.of(mine);
    // A share holds its part of the group's burst too, so that shares never make a
    // burst smaller than the buckets allow.
    refill_share(t.group_share, group_share,
                 std::max({group_share * window,
                           p.effective_group_burst() * group_share / p.group_rate, need}),
                 now);
    rate = std::min(rate, group_share);
  }
  const bool paced = p.shares_instances();
  double part = 0;
  if (paced) {
    part = total > 0 ? rate * d / total : rate;
    refill_share(me.share, part,
                 std::max({part * window, p.effective_burst() * part / p.rate, need}), now);
  }

  // An instance's part belongs to the level that set the key's rate. When the key's own
  // rate set it, the parts are work-conserving: the parts take the rate, so what the bucket
  // holds above three quarters of its burst is what parts left unspent (an instance whose
  // demand was reported high, then did not ask) and would overflow; any instance may have
  // it. Grants still come from the bucket, so the bound is the bucket's.
  double key_room = b.level;
  double group_room = group != nullptr ? std::min(group->bucket.level, t.group_share.level)
                                       : std::numeric_limits<double>::infinity();
  const bool lends = paced && !(group != nullptr && group_share < p.rate);
  const double kept = p.effective_burst() * kLentAbove;  // spare: the level above this
  double mine = paced ? me.share.level : 0;              // the instance's part, or what is lent
  if (paced && !lends) {
    group_room = std::min(group_room, mine);
  } else if (lends) {
    mine = std::max(mine, b.level - kept);
    key_room = std::min(key_room, mine);
  }
  const double room = std::min(key_room, group_room);
  const bool pool_usable = b.pool > 0 && b.pool_expires - now >= ask.ttl / 4;
  LeaseAnswer a;
  if (ask.want > 0) {
    const std::uint64_t lend = pool_share(b, ask, pool_usable, now);
    if (pool_usable && std::min(b.pool, lend) >= min) {
      // Given-back tokens were counted by the group and the shares when first granted.
      a.granted = std::min({ask.want, b.pool, lend});
      b.pool -= a.granted;
      a.expires_at = b.pool_expires;
    } else if (room >= need) {
      a.granted = std::min<std::uint64_t>(ask.want, static_cast<std::uint64_t>(room));
      const auto g = static_cast<double>(a.granted);
      b.level -= g;
      if (paced) me.share.level = std::max(0.0, me.share.level - g);
      if (group != nullptr) {
        group->bucket.level -= g;
        t.group_share.level -= g;
      }
      a.expires_at = now + ask.ttl;
    } else {
      // Until every bound that is short has `min` again; shares move, so look again
      // within a TTL at most.
      std::int64_t wait = 1;
      const auto until = [&](double level, double r) {
        if (level < need) wait = std::max(wait, refill_time(need - level, r));
      };
      until(b.level, p.rate);
      // A part that is short waits for its refill, or for the bucket's spare if sooner.
      if (paced && mine < need) {
        std::int64_t w = refill_time(need - me.share.level, part);
        if (lends) w = std::min(w, refill_time(kept + need - b.level, p.rate));
        wait = std::max(wait, w);
      }
      if (group != nullptr) {
        until(group->bucket.level, p.group_rate);
        until(t.group_share.level, group_share);
        // A group's bucket emptied by others' grants, asked of by several instances: this
        // instance's turn comes when its part has refilled its ask, at most the group's fill
        // time, not when the group holds `min` again (a millisecond away at the reference
        // fleet, where the instances that found it empty asked again with each call and got
        // nothing again; docs/performance.md, "Turns at an empty group").
        if (paced && part > 0 && total > d && group->bucket.level < need && p.group_rate > 0)
          wait = std::max(wait, std::min(refill_time(static_cast<double>(ask.want), part),
                                         refill_time(p.effective_group_burst(), p.group_rate)));
      }
      a.wait_until = now + std::min(wait, span);
    }
    if (a.granted < ask.want) a.limited_by = key_room <= group_room ? 1 : 2;
  }
  // What is left for this instance: the bucket's level, at most what its part (or the
  // bucket's lending) allowed before this grant — lease.lua's `lent`, not reduced by the
  // grant. Over Redis that is what the plain-bucket pacing has run on (a grant that finds
  // granted + remaining at half the bucket asks again within its fill time); the in-process
  // store answers the same (tests/redis/store_agreement_test.cpp).
  double left = paced ? std::min(b.level, mine) : b.level;
  if (group != nullptr) left = std::min({left, group->bucket.level, t.group_share.level});
  a.remaining = static_cast<std::uint64_t>(std::max(0.0, left)) +
                (b.pool > 0 && b.pool_expires - now >= ask.ttl / 4 ? b.pool : 0);
  return a;
}

bool idle(const TenantState& t, const ResolvedPolicy& p, std::int64_t now) noexcept {
  return idle(t.bucket, p, now) &&
         std::all_of(t.instances.begin(), t.instances.end(),
                     [&](const auto& kv) { return kv.second.seen <= now - t.ttl; });
}

bool idle(const GroupState& g, const ResolvedPolicy& p, std::int64_t now) noexcept {
  return bucket_idle(g.bucket, p.group_rate, p.effective_group_burst(), now) &&
         std::all_of(g.tenants.begin(), g.tenants.end(),
                     [&](const auto& kv) { return kv.second.seen <= now - g.ttl; });
}

bool idle(const WindowState& s, const Policy& p, std::int64_t now) noexcept {
  // Both the current and the previous window's counts are gone after two windows.
  return s.start < 0 || now >= s.start + 2 * p.window.count();
}

bool idle(const ConcurrencyState& s, std::int64_t now) noexcept {
  return std::all_of(s.holders.begin(), s.holders.end(),
                     [now](const auto& h) { return h.second.expires_at <= now; });
}

}  // namespace tollgate::core
