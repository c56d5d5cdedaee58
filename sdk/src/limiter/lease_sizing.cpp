#include "limiter/lease_sizing.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace tollgate::core {

double demand_sample(double spent, double dt_s) noexcept {
  return dt_s > 0 ? spent / dt_s : 0;
}

LeaseSizing lease_sizing(const LeaseOptions& o, std::uint64_t max_lease) noexcept {
  LeaseSizing z;
  z.horizon_s = std::chrono::duration<double>(o.horizon).count();
  z.refresh_s = std::chrono::duration<double>(o.refresh).count();
  z.min_tokens = o.min_tokens;
  z.max_lease = max_lease;
  return z;
}

double sample_demand(RefillState& s, bool leased, Ms now, double horizon_s, std::int64_t balance,
                     std::uint32_t denials, std::uint64_t denied_cost) noexcept {
  const double dt = static_cast<double>(static_cast<std::int32_t>(now - s.baseline_time)) / 1e3;
  if (!leased || dt < 0.001) return -1;
  const double spent =
      static_cast<double>(std::max<std::int64_t>(0, s.baseline_balance - balance)) +
      static_cast<double>(denials - s.baseline_denials) *
          static_cast<double>(std::max<std::uint64_t>(1, denied_cost));
  const double sample = demand_sample(spent, dt);
  const double alpha = 1.0 - std::exp(-dt / 0.5);
  s.rate = s.rate <= 0 ? static_cast<float>(sample)
                       : static_cast<float>(alpha * sample + (1 - alpha) * s.rate);
  // The demand reported for fair shares follows a drop at once when the sample spans
  // a horizon (a tenant gone quiet lends its share within one ask); rises go through
  // the average like everything else.
  return dt >= horizon_s ? std::min(static_cast<double>(s.rate), sample) : -1;
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
