// Lease round-trip durations counted into the buckets of tollgate::kLeaseDurationBounds, by
// outcome, for Stats::lease_duration. Thread-safe: record() from any thread, lock-free.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "tollgate/limiter.h"
#include "tollgate/observer.h"

namespace tollgate::core {

class LeaseDurations {
 public:
  void record(LeaseOutcome outcome, Nanos duration) noexcept {
    Per& p = per_[outcome == LeaseOutcome::kOk ? 0 : 1];
    const double seconds = static_cast<double>(duration.count()) / 1e9;
    // Buckets are "le" bounds: a duration equal to a bound falls into that bound's bucket.
    const auto i = static_cast<std::size_t>(
        std::lower_bound(kLeaseDurationBounds.begin(), kLeaseDurationBounds.end(), seconds) -
        kLeaseDurationBounds.begin());
    p.buckets[i].fetch_add(1, std::memory_order_relaxed);
    p.count.fetch_add(1, std::memory_order_relaxed);
    p.sum_ns.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(duration.count(), 0)),
                       std::memory_order_relaxed);
  }

  void read(std::array<DurationHistogram, 2>& out) const noexcept {
    for (std::size_t o = 0; o < out.size(); ++o) {
      for (std::size_t i = 0; i < out[o].buckets.size(); ++i)
        out[o].buckets[i] = per_[o].buckets[i].load(std::memory_order_relaxed);
      out[o].count = per_[o].count.load(std::memory_order_relaxed);
      out[o].sum_seconds =
          static_cast<double>(per_[o].sum_ns.load(std::memory_order_relaxed)) / 1e9;
    }
  }

 private:
  struct Per {
    std::atomic<std::uint64_t> buckets[kLeaseDurationBounds.size() + 1] = {};
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> sum_ns{0};
  };
  Per per_[2];
};

}  // namespace tollgate::core
