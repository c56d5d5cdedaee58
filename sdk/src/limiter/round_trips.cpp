#include "limiter/round_trips.h"

#include <algorithm>

namespace tollgate::core {

void RoundTrips::add(std::chrono::nanoseconds sent, std::chrono::nanoseconds at) noexcept {
  last_answer_ = std::max(last_answer_, at);
  if (!answered_once_) {
    answered_once_ = true;
    first_answer_ = at;
  }
  if (sent < first_answer_) return;  // sent while the connection was being set up
  recorded_ = std::min(recorded_ + 1, kEnough);
  calls_[next_] = Call{std::max<std::int64_t>(0, (at - sent).count()), at.count()};
  next_ = (next_ + 1) % kWindow;
  count_ = std::min(count_ + 1, kWindow);
}

std::size_t RoundTrips::count() const noexcept {
  const std::int64_t oldest = (last_answer_ - kHorizon).count();
  std::size_t n = 0;
  for (std::size_t i = 0; i < count_; ++i) n += calls_[i].at_ns >= oldest ? 1 : 0;
  return n;
}

std::chrono::nanoseconds RoundTrips::p99() const noexcept {
  // The two largest of the window: at 128 calls the second is the 99th percentile.
  const std::int64_t oldest = (last_answer_ - kHorizon).count();
  std::int64_t first = 0, second = 0;
  std::size_t n = 0;
  for (std::size_t i = 0; i < count_; ++i) {
    if (calls_[i].at_ns < oldest) continue;
    ++n;
    const std::int64_t v = calls_[i].rtt_ns;
    if (v > first) {
      second = first;
      first = v;
    } else if (v > second) {
      second = v;
    }
  }
  return std::chrono::nanoseconds{n >= kWindow ? second : first};
}
std::chrono::nanoseconds RoundTrips::overdue_after(std::chrono::nanoseconds floor,
                                                   double multiple) const noexcept {
  const auto scaled = std::chrono::nanoseconds{
      static_cast<std::int64_t>(static_cast<double>(p99().count()) * multiple)};
  return std::max(floor, scaled);
}

bool RoundTrips::overdue(std::chrono::nanoseconds sent, std::chrono::nanoseconds now,
                         std::chrono::nanoseconds floor, double multiple) const noexcept {
  if (recorded_ < kEnough) return false;
  const std::chrono::nanoseconds after = overdue_after(floor, multiple);
  return now - sent > after && now - last_answer_ > after;
}

}  // namespace tollgate::core
