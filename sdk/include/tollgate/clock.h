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

}  // namespace tollgate
