#include "limiter/lease_sizing.h"

#include <algorithm>
#include <cmath>

namespace tollgate::core {

double demand_sample(double spent, double dt_s) noexcept {
  return dt_s > 0 ? spent / dt_s : 0;
}

std::uint64_t lease_want(double demand, std::uint64_t need, const LeaseSizing& s) noexcept {
  const std::uint64_t cap = std::max<std::uint64_t>(s.max_lease, need);
  if (!(demand > 0)) {
    return std::clamp<std::uint64_t>(std::max({s.min_tokens, need, s.max_lease / 8}), 1, cap);
  }
  const double by_rate = std::ceil(demand * s.horizon_s);
  const auto want = by_rate >= static_cast<double>(cap) ? cap : static_cast<std::uint64_t>(by_rate);
  return std::clamp<std::uint64_t>(std::max({want, s.min_tokens, need}), 1, cap);
}

std::int64_t low_watermark(double demand, double lead_s, std::uint64_t max_cost, std::uint64_t want,
                           const LeaseSizing& s) noexcept {
  const double d = demand > 0 ? demand : 0;
  const auto wm = static_cast<std::int64_t>(std::ceil(d * (lead_s + s.refresh_s) * 1.5)) +
                  static_cast<std::int64_t>(max_cost);
  return std::min<std::int64_t>(wm, static_cast<std::int64_t>(want * 3 / 4 + 1));
}

bool refill_urgent(bool waiters, bool unavailable, bool leased, bool exhausted,
                   std::int64_t balance, std::uint64_t need, double demand,
                   const LeaseSizing& s) noexcept {
  if (waiters || unavailable) return true;
  if (!leased || exhausted) return false;
  return balance < static_cast<std::int64_t>(need) && demand * s.refresh_s >= kWorthACall;
}

}  // namespace tollgate::core
