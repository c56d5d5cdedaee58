// A policy as the Limiter spends it: the values it derives once from a ResolvedPolicy and
// the running config (capacity, the largest lease, the fallback's bucket, the
// tollgate.policy label), so that the hot path reads plain fields. Pure: compile() reads
// no clock and takes no lock but PolicyLabels' own. Immutable once compiled; readers reach
// it through the Limiter's slot array under an EpochGuard.
#pragma once

#include <cstdint>
#include <memory>

#include "limiter/entry.h"
#include "limiter/policy_labels.h"
#include "tollgate/config.h"

namespace tollgate::core {

inline constexpr std::uint64_t kMaxLeaseTokens = 1u << 30;  // a lease fits HeldLease::granted

struct CompiledPolicy {
  std::shared_ptr<const ResolvedPolicy> spec;
  std::uint64_t capacity = 0;
  std::uint64_t max_lease = 0;
  bool concurrency = false;
  bool shadow = false;                        // Policy::shadow: denials admit all the same
  std::uint8_t label = PolicyLabels::kOther;  // its tollgate.policy value
  bool penalty_box = false;                   // spec->penalty_box.enabled(), without a look at spec
  double refill_per_second = 0;               // how fast capacity comes back (rate or limit/window)
  std::uint8_t fallback = kFallbackLocal;     // Entry::fallback while unavailable
  double fallback_rate = 0;     // local bucket, tokens per second (share mode: the most)
  bool fallback_share = false;  // Fallback::share()
  std::int64_t fallback_burst = 1;
};

// `p` compiled under `config` (its lease options); `labels` gives (or keeps) its label.
CompiledPolicy compile(const ResolvedPolicy& p, const Config& config, PolicyLabels& labels);

}  // namespace tollgate::core
