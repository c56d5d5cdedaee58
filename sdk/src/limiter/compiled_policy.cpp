#include "limiter/compiled_policy.h"

#include <algorithm>
#include <cmath>

namespace tollgate::core {

CompiledPolicy compile(const ResolvedPolicy& p, const Config& config, PolicyLabels& labels) {
  CompiledPolicy c;
  c.spec = std::make_shared<const ResolvedPolicy>(p);
  c.capacity = p.capacity();
  c.concurrency = p.kind == PolicyKind::kConcurrency;
  auto frac = static_cast<std::uint64_t>(
      std::floor(config.leases.max_fraction * static_cast<double>(c.capacity)));
  c.max_lease = std::clamp<std::uint64_t>(frac, 1, kMaxLeaseTokens);
  c.refill_per_second = p.refill_per_second();
  switch (p.fallback.mode) {
    case FallbackMode::kLocal:  // concurrency: no local bucket for permits, so deny
      c.fallback = c.concurrency ? kFallbackDeny : kFallbackLocal;
      break;
    case FallbackMode::kDeny:
      c.fallback = kFallbackDeny;
      break;
    case FallbackMode::kAllow:
      c.fallback = kFallbackAllow;
      break;
  }
  c.shadow = p.shadow;
  c.label = labels.label_of(p);
  c.penalty_box = p.penalty_box.enabled();
  c.fallback_rate = p.fallback_rate();
  c.fallback_share = p.fallback.share();
  c.fallback_burst =
      static_cast<std::int64_t>(std::min(p.fallback_burst(), static_cast<double>(kMaxLeaseTokens)));
  return c;
}

}  // namespace tollgate::core
