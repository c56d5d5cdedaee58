// Who may take one of the key table's last places (W-TinyLFU's admission, as in Caffeine):
// a count-min sketch of 4-bit counters counts how often keys that are not tracked are
// asked for. Until the table has once been full every key gets in. From then on, until it
// has room again below its last sixteenth (the reserve), only a key whose estimated
// frequency stands `kMargin` above what candidates usually show (the flood's own noise,
// an average over recent candidates) takes a place in the reserve. A flood of keys seen
// once therefore fills at most the open part of the table, and a key that keeps coming
// back gets in after a few requests: about kMargin within one sample period, which lasts
// while 10 × max_keys candidates are counted (1 s for a flood of 1M keys/s at the default
// 100k). Residents are not counted here: the idle scan protects keys in use.
//
// Bound: the sketch takes 2 × bit_ceil(max_keys) bytes (at most 4 per key; 2.1 at 1M).
// Thread-safe and lock-free: record() and admits() from any thread; age() from one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace tollgate::core {

class AdmissionSketch {
 public:
  static constexpr std::uint32_t kMargin = 3;  // above the noise, in estimated requests
  static constexpr std::uint32_t kMaxCount = 15;

  explicit AdmissionSketch(std::size_t max_keys);

  // Counts one request for an untracked key (conservative update: only the counters at
  // the minimum grow) and returns its estimated frequency, this request included.
  std::uint32_t record(std::uint64_t hash) noexcept;
  std::uint32_t estimate(std::uint64_t hash) const noexcept;

  // Should an untracked key take a place, with `live` keys tracked? Counts the request
  // when the reserve is guarded.
  bool admits(std::uint64_t hash, std::size_t live) noexcept;
  // The table refused a key for want of room: guard the reserve.
  void table_full() noexcept {
    if (!guarded_.load(std::memory_order_relaxed)) guarded_.store(true, std::memory_order_relaxed);
  }
  // From the scheduler: with room below the reserve, the flood is over (or never was).
  void settle(std::size_t live) noexcept {
    if (live < open_limit_ && guarded_.load(std::memory_order_relaxed))
      guarded_.store(false, std::memory_order_relaxed);
  }
  bool guarded() const noexcept { return guarded_.load(std::memory_order_relaxed); }

  // The estimate a candidate in the reserve usually shows (×1): the bar is this + kMargin.
  double noise() const noexcept {
    return static_cast<double>(noise_x256_.load(std::memory_order_relaxed)) / 256.0;
  }
  // Halves every counter once a sample's worth (10 × max_keys) of requests has been
  // counted, so that the past fades. Returns whether it did. One caller at a time.
  bool age() noexcept;

  std::size_t open_limit() const noexcept { return open_limit_; }
  std::size_t bytes() const noexcept { return words_ * sizeof(std::uint64_t); }

 private:
  static constexpr int kRows = 4;
  std::size_t index(std::uint64_t hash, int row) const noexcept;
  std::uint32_t counter(std::size_t i) const noexcept {
    return static_cast<std::uint32_t>(
        (table_[i / 16].load(std::memory_order_relaxed) >> ((i % 16) * 4)) & 0xF);
  }
  void increment(std::size_t i) noexcept;

  const std::size_t width_;       // counters per row, a power of two
  const std::size_t words_;       // 16 counters a word
  const std::size_t open_limit_;  // below this many live keys, every key gets in
  const std::uint64_t sample_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> table_;
  std::atomic<std::uint64_t> additions_{0};
  std::atomic<std::uint32_t> noise_x256_{0};
  std::atomic<bool> guarded_{false};
};

}  // namespace tollgate::core
