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

  // A short record (fewer than kWindow calls within kHorizon: every lightly used shard, and
  // every shard at first) is judged by its median, not by its largest call: a call is
  // overdue after `multiple` x kShortMedianFactor x the median, and at least
  // kShortRecordFloor (and the caller's floor). One slow call on a loaded machine does not
  // set the overdue time, and a young shard is judged from its first answer on.
  static constexpr double kShortMedianFactor = 2.0;
  static constexpr std::chrono::nanoseconds kShortRecordFloor = std::chrono::milliseconds{30};
  // Nothing is judged within this long of the shard's first answer: the start, when every
  // instance of a fleet sends its keys' first leases at once and a healthy shard queues a
  // lone call past 30 ms (the reference fleet, 0.5 s in: docs/resilience.md).
  static constexpr std::chrono::nanoseconds kSettle = std::chrono::seconds{2};

  // A call sent at `sent` and answered at `at` (the limiter's clock). A call sent before
  // the shard's first answer is not recorded: its time is the connection's set-up (connect,
  // script load), not the shard's.
  void add(std::chrono::nanoseconds sent, std::chrono::nanoseconds at) noexcept;
  std::size_t count() const noexcept { return count_in_horizon_; }  // recorded, within kHorizon
  // The 99th percentile of the window (its second largest at 128 calls; the largest of
  // fewer); 0 before any call was recorded.
  std::chrono::nanoseconds p99() const noexcept { return p99_; }
  // The median of the window (the lower middle of an even count); 0 before any call.
  std::chrono::nanoseconds median() const noexcept { return median_; }
  // A call unanswered for longer than this is overdue: with a full record (kWindow calls)
  // `multiple` x p99, at least `floor`; with a short one, see kShortMedianFactor.
  std::chrono::nanoseconds overdue_after(std::chrono::nanoseconds floor,
                                         double multiple) const noexcept;
  // Whether a call sent at `sent` is overdue at `now`: unanswered past overdue_after, and
  // the shard answered nothing else for as long (a busy shard that still answers is slow,
  // not gone: its calls wait for their timeout). A call sent before the shard's first
  // answer (the connection's set-up) is not judged, nor any call within kSettle of it.
  bool overdue(std::chrono::nanoseconds sent, std::chrono::nanoseconds now,
               std::chrono::nanoseconds floor, double multiple) const noexcept;

 private:
  struct Call {
    std::int64_t rtt_ns;
    std::int64_t at_ns;
  };
  void summarize() noexcept;  // count_in_horizon_, p99_, median_: they change only on add()

  std::array<Call, kWindow> calls_{};
  std::size_t next_ = 0;
  std::size_t count_ = 0;  // recorded, at most kWindow
  std::chrono::nanoseconds last_answer_{0};
  bool answered_once_ = false;
  std::chrono::nanoseconds first_answer_{0};
  std::size_t count_in_horizon_ = 0;
  std::chrono::nanoseconds p99_{0};
  std::chrono::nanoseconds median_{0};
};

}  // namespace tollgate::core
