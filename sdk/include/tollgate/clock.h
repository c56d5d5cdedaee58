#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include "tollgate/export.h"

namespace tollgate {

using Nanos = std::chrono::nanoseconds;

// Monotonic time source. All SDK-side time comes from one of these, so tests move
// a simulated clock instead of sleeping. Thread-safe: now() may be called from any thread.
class TOLLGATE_API Clock {
 public:
  virtual ~Clock();
  // Time since an arbitrary, fixed epoch; never goes backwards.
  virtual Nanos now() const noexcept = 0;
};

// std::chrono::steady_clock.
class TOLLGATE_API SteadyClock final : public Clock {
 public:
  Nanos now() const noexcept override;
  static std::shared_ptr<SteadyClock> shared();
};

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
