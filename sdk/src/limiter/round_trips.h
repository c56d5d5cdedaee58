// A shard's recent lease round trips, and when a refill on its way counts as overdue
// (docs/resilience.md, "A refill that is overdue"). Pure: the caller passes durations.
// Scheduler thread only (no locks, no atomics).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace tollgate::core {

class RoundTrips {
 public:
  static constexpr std::size_t kWindow = 128;  // the last this many answered calls

  static constexpr std::size_t kEnough = 8;  // answered calls before any call is judged

  // A call answered at `at` (the limiter's clock) after `rtt`.
  void add(std::chrono::nanoseconds rtt, std::chrono::nanoseconds at) noexcept;
  std::size_t count() const noexcept { return count_; }
  // The 99th percentile of the window (its second largest of 128; the largest of fewer);
  // 0 before any call was answered.
  std::chrono::nanoseconds p99() const noexcept;
  // A call unanswered for longer than this is overdue: `multiple` x p99, at least `floor`
  // (the floor alone before any call was answered).
  std::chrono::nanoseconds overdue_after(std::chrono::nanoseconds floor,
                                         double multiple) const noexcept;
  // Whether a call sent at `sent` is overdue at `now`: unanswered past overdue_after, and
  // the shard answered nothing else for as long (a busy shard that still answers is slow,
  // not gone: its calls wait for their timeout), and kEnough calls were answered before
  // (a shard with no record yet is not judged).
  bool overdue(std::chrono::nanoseconds sent, std::chrono::nanoseconds now,
               std::chrono::nanoseconds floor, double multiple) const noexcept;

 private:
  std::array<std::int64_t, kWindow> ns_{};
  std::size_t next_ = 0;
  std::size_t count_ = 0;
  std::size_t answered_ = 0;  // all calls, saturating at kEnough
  std::chrono::nanoseconds last_answer_{0};
};

}  // namespace tollgate::core
