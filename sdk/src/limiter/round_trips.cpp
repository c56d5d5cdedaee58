#include "limiter/round_trips.h"

#include <algorithm>

namespace tollgate::core {

void RoundTrips::add(std::chrono::nanoseconds rtt, std::chrono::nanoseconds at) noexcept {
  last_answer_ = std::max(last_answer_, at);
  answered_ = std::min(answered_ + 1, kEnough);
  ns_[next_] = std::max<std::int64_t>(0, rtt.count());
  next_ = (next_ + 1) % kWindow;
  count_ = std::min(count_ + 1, kWindow);
}

std::chrono::nanoseconds RoundTrips::p99() const noexcept {
  if (count_ == 0) return std::chrono::nanoseconds{0};
  // The two largest of the window: at 128 calls the second is the 99th percentile.
  std::int64_t first = 0, second = 0;
  for (std::size_t i = 0; i < count_; ++i) {
    const std::int64_t v = ns_[i];
    if (v > first) {
      second = first;
      first = v;
    } else if (v > second) {
      second = v;
    }
  }
  return std::chrono::nanoseconds{count_ >= kWindow ? second : first};
}

std::chrono::nanoseconds RoundTrips::overdue_after(std::chrono::nanoseconds floor,
                                                   double multiple) const noexcept {
  const auto scaled = std::chrono::nanoseconds{
      static_cast<std::int64_t>(static_cast<double>(p99().count()) * multiple)};
  return std::max(floor, scaled);
}

bool RoundTrips::overdue(std::chrono::nanoseconds sent, std::chrono::nanoseconds now,
                         std::chrono::nanoseconds floor, double multiple) const noexcept {
  if (answered_ < kEnough) return false;
  const std::chrono::nanoseconds after = overdue_after(floor, multiple);
  return now - sent > after && now - last_answer_ > after;
}

}  // namespace tollgate::core
