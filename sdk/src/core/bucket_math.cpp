#include "core/bucket_math.h"

#include <algorithm>
#include <cmath>
#include <limits>

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

void refill(TokenBucketState& s, const Policy& p, std::int64_t now) noexcept {
  const double burst = p.effective_burst();
  if (s.fresh) {
    s.fresh = false;
    s.level = burst;
    s.ts = now;
    return;
  }
  if (now > s.ts) {
    s.level = std::min(burst, s.level + p.rate * static_cast<double>(now - s.ts) / kNsPerSecond);
    s.ts = now;
  }
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
    a.remaining = static_cast<std::uint64_t>(s.level) + (pool_usable ? s.pool : 0);
    return a;
  }
  // Pooled tokens expire early: lend no more of them than the asker can spend before
  // then (its `want` covers at most a TTL of its spending).
  const std::uint64_t pool_share =
      pool_usable && ask.ttl > 0
          ? static_cast<std::uint64_t>(std::ceil(static_cast<double>(ask.want) *
                                                 static_cast<double>(s.pool_expires - now) /
                                                 static_cast<double>(ask.ttl)))
          : 0;
  if (pool_usable && std::min(s.pool, pool_share) >= min) {
    a.granted = std::min({ask.want, s.pool, pool_share});
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
  a.remaining = static_cast<std::uint64_t>(s.level) +
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
  if (s.fresh) return true;
  if (s.pool > 0 && s.pool_expires > now) return false;
  const double missing = p.effective_burst() - s.level;
  return now - s.ts >= refill_time(missing, p.rate);
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
