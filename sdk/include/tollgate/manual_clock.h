// ManualClock: the clock tests move by hand instead of sleeping.
#pragma once

#include <atomic>
#include <cstdint>

#include "tollgate/clock.h"

namespace tollgate {

// A clock that only moves when told to. Thread-safe.
class TOLLGATE_API ManualClock final : public Clock {
 public:
  explicit ManualClock(Nanos start = Nanos{1'000'000'000}) : now_(start.count()) {}
  Nanos now() const noexcept override { return Nanos{now_.load(std::memory_order_acquire)}; }
  void advance(Nanos by) noexcept { now_.fetch_add(by.count(), std::memory_order_acq_rel); }
  void set(Nanos to) noexcept { now_.store(to.count(), std::memory_order_release); }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace tollgate
