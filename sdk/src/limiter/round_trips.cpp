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
  calls_[next_] = Call{std::max<std::int64_t>(0, (at - sent).count()), at.count()};
  next_ = (next_ + 1) % kWindow;
  count_ = std::min(count_ + 1, kWindow);
  summarize();
}

void RoundTrips::summarize() noexcept {
  const std::int64_t oldest = (last_answer_ - kHorizon).count();
  std::array<std::int64_t, kWindow> rtts;
  std::size_t n = 0;
  for (std::size_t i = 0; i < count_; ++i) {
    if (calls_[i].at_ns >= oldest) rtts[n++] = calls_[i].rtt_ns;
  }
  count_in_horizon_ = n;
  if (n == 0) {
    p99_ = median_ = std::chrono::nanoseconds{0};
    return;
  }
  // At 128 calls the second largest is the 99th percentile; of fewer, the largest.
  const std::size_t top = n >= kWindow ? n - 2 : n - 1;
  std::nth_element(rtts.begin(), rtts.begin() + top, rtts.begin() + n);
  p99_ = std::chrono::nanoseconds{rtts[top]};
  const std::size_t mid = (n - 1) / 2;
  std::nth_element(rtts.begin(), rtts.begin() + mid, rtts.begin() + top);
  median_ = std::chrono::nanoseconds{mid == top ? rtts[top] : rtts[mid]};
}

std::chrono::nanoseconds RoundTrips::overdue_after(std::chrono::nanoseconds floor,
                                                   double multiple) const noexcept {
  const auto times = [](std::chrono::nanoseconds d, double k) {
    return std::chrono::nanoseconds{static_cast<std::int64_t>(static_cast<double>(d.count()) * k)};
  };
  if (count_in_horizon_ >= kWindow) return std::max(floor, times(p99_, multiple));
  return std::max({floor, kShortRecordFloor, times(median_, multiple * kShortMedianFactor)});
}

bool RoundTrips::overdue(std::chrono::nanoseconds sent, std::chrono::nanoseconds now,
                         std::chrono::nanoseconds floor, double multiple) const noexcept {
  if (!answered_once_ || sent < first_answer_) return false;  // the connection's set-up
  if (now - first_answer_ < kSettle) return false;            // the start
  const std::chrono::nanoseconds after = overdue_after(floor, multiple);
  return now - sent > after && now - last_answer_ > after;
}

}  // namespace tollgate::core
