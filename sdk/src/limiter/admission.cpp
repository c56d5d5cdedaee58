#include "limiter/admission.h"

#include <algorithm>
#include <bit>

namespace tollgate::core {

namespace {
std::uint64_t mix(std::uint64_t z) noexcept {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
constexpr std::uint64_t kSeeds[4] = {0x9e3779b97f4a7c15ULL, 0xc2b2ae3d27d4eb4fULL,
                                     0x165667b19e3779f9ULL, 0x27d4eb2f165667c5ULL};
// A sixteenth of the table, kept for keys that show they come back.
std::size_t reserve_for(std::size_t max_keys) noexcept {
  return max_keys / 16;
}
}  // namespace

AdmissionSketch::AdmissionSketch(std::size_t max_keys)
    : width_(std::bit_ceil(std::max<std::size_t>(max_keys, 64))),
      words_(width_ * kRows / 16),
      open_limit_(max_keys - reserve_for(max_keys)),
      sample_(10 * static_cast<std::uint64_t>(max_keys)),
      table_(new std::atomic<std::uint64_t>[words_]) {
  for (std::size_t i = 0; i < words_; ++i) table_[i].store(0, std::memory_order_relaxed);
}

std::size_t AdmissionSketch::index(std::uint64_t hash, int row) const noexcept {
  return static_cast<std::size_t>(row) * width_ +
         static_cast<std::size_t>(mix(hash ^ kSeeds[row]) & (width_ - 1));
}

void AdmissionSketch::increment(std::size_t i) noexcept {
  std::atomic<std::uint64_t>& word = table_[i / 16];
  const int shift = static_cast<int>(i % 16) * 4;
  std::uint64_t w = word.load(std::memory_order_relaxed);
  while (
      ((w >> shift) & 0xF) < kMaxCount &&
      !word.compare_exchange_weak(w, w + (std::uint64_t{1} << shift), std::memory_order_relaxed)) {
  }
}

std::uint32_t AdmissionSketch::estimate(std::uint64_t hash) const noexcept {
  std::uint32_t m = kMaxCount;
  for (int r = 0; r < kRows; ++r) m = std::min(m, counter(index(hash, r)));
  return m;
}

std::uint32_t AdmissionSketch::record(std::uint64_t hash) noexcept {
  std::size_t at[kRows];
  std::uint32_t v[kRows];
  std::uint32_t m = kMaxCount;
  for (int r = 0; r < kRows; ++r) {
    at[r] = index(hash, r);
    v[r] = counter(at[r]);
    m = std::min(m, v[r]);
  }
  additions_.fetch_add(1, std::memory_order_relaxed);
  if (m == kMaxCount) return m;
  for (int r = 0; r < kRows; ++r) {
    if (v[r] == m) increment(at[r]);
  }
  return m + 1;
}

bool AdmissionSketch::admits(std::uint64_t hash, std::size_t live) noexcept {
  if (live < open_limit_ || !guarded_.load(std::memory_order_relaxed)) return true;
  const std::uint32_t est = record(hash);
  // Racy read-modify-write on purpose: an average, not a count; a lost update is harmless.
  const std::uint32_t noise = noise_x256_.load(std::memory_order_relaxed);
  const auto sample = static_cast<std::int64_t>(est) * 256;
  noise_x256_.store(static_cast<std::uint32_t>(static_cast<std::int64_t>(noise) +
                                               (sample - static_cast<std::int64_t>(noise)) / 64),
                    std::memory_order_relaxed);
  return est * 256 >= noise + kMargin * 256;
}

bool AdmissionSketch::age() noexcept {
  if (additions_.load(std::memory_order_relaxed) < sample_) return false;
  additions_.store(0, std::memory_order_relaxed);
  for (std::size_t i = 0; i < words_; ++i) {
    std::uint64_t w = table_[i].load(std::memory_order_relaxed);
    while (w != 0 && !table_[i].compare_exchange_weak(w, (w >> 1) & 0x7777777777777777ULL,
                                                      std::memory_order_relaxed)) {
    }
  }
  noise_x256_.store(noise_x256_.load(std::memory_order_relaxed) / 2, std::memory_order_relaxed);
  return true;
}

}  // namespace tollgate::core
