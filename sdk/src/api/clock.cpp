#include "tollgate/clock.h"

namespace tollgate {

Clock::~Clock() = default;

Nanos SteadyClock::now() const noexcept {
  return std::chrono::duration_cast<Nanos>(std::chrono::steady_clock::now().time_since_epoch());
}

std::shared_ptr<SteadyClock> SteadyClock::shared() {
  static const auto clock = std::make_shared<SteadyClock>();
  return clock;
}

}  // namespace tollgate
