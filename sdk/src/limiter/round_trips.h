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
  static constexpr std::size_t kWindow = 128;  // at most the last this many answered calls
  // ... answered within this long before the newest answer. Anchored at the newest answer,
  // not at now, so that a shard that stops answering keeps its record.
  static constexpr std::chrono::nanoseconds kHorizon = std::chrono::seconds{10};

  static constexpr std::size_t kEnough = 8;  // recorded calls before any call is judged

  // A call sent at `sent` and answered at `at` (the limiter's clock). A call sent before
  // the shard's first answer is not recorded (nor counted towards kEnough): its time is
  // the connection's set-up (connect, script load), not the shard's.
  void add(std::chrono::nanoseconds sent, std::chrono::nanoseconds at) noexcept;
  std::size_t count() const noexcept;  // recorded calls within the window
  // The 99th percentile of the window (its second largest at 128 calls; the largest of
  // fewer); 0 before any call was recorded.
  std::chrono::nanoseconds p99() const noexcept;
  // A call unanswered for longer than this is overdue: `multiple` x p99, at least `floor`
  // (the floor alone before any call was answered).
  std::chrono::nanoseconds overdue_after(std::chrono::nanoseconds floor,
                                         double multiple) const noexcept;
  // Whether a call sent at `sent` is overdue at `now`: unanswered past overdue_after, and
  // the shard answered nothing else for as long (a busy shard that still answers is slow,
  // not gone: its calls wait for their timeout), and kEnough calls were recorded before
  // (a shard with no record yet is not judged).
  bool overdue(std::chrono::nanoseconds sent, std::chrono::nanoseconds now,
               std::chrono::nanoseconds floor, double multiple) const noexcept;

 private:
  struct Call {
    std::int64_t rtt_ns;
    std::int64_t at_ns;
  };
  std::array<Call, kWindow> calls_{};
  std::size_t next_ = 0;
  std::size_t count_ = 0;     // recorded, at most kWindow
  std::size_t recorded_ = 0;  // all recorded calls, saturating at kEnough
  std::chrono::nanoseconds last_answer_{0};
  bool answered_once_ = false;
  std::chrono::nanoseconds first_answer_{0};
};

}  // namespace tollgate::core
