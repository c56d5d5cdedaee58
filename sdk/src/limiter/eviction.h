// Eviction: the CLOCK sweep that finds idle keys in the key table (docs/architecture.md,
// "Key table and eviction"), and the graveyard that keeps entries taken out of the table
// (evicted, or dropped by an update) until nothing can reach them any more.
// Scheduler thread only (under the Limiter's tick_mu_), except press(), which any thread
// may call (one atomic flag).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "limiter/entry.h"
#include "limiter/key_table.h"

namespace tollgate::core {

// What an entry taken out of the table holds that came from the store, taken out of its
// balance: the tokens left, or for a concurrency key its whole reservation (the permits
// out come back to the entry, not to the store).
std::int64_t take_unspent(Entry& e, bool concurrency) noexcept;

class Eviction {
 public:
  static constexpr std::uint8_t kIdleLooks = 3;       // untouched looks before a key goes
  // Looked at per sweep under pressure: about 100 keys of a full table (5/8 of its slots
  // hold one, limiter/key_table.cpp), as the 256 did when tables were 3/8 full.
  static constexpr std::size_t kPressureSlots = 160;

  // The table is full (or refusing keys): the next sweep looks at kPressureSlots at least
  // and takes keys untouched since one look. True when the flag was not set yet.
  bool press() noexcept {
    return !pressure_.load(std::memory_order_relaxed) && !pressure_.exchange(true);
  }

  // Sweeps the next slice of `table` at `now`: every key is looked at about twice per
  // `idle_timeout`. A key touched since the last look is spared (and its flag cleared); one
  // untouched for kIdleLooks looks in a row (one, under pressure) is a victim. Caller holds
  // no EpochGuard (the sweep takes one).
  std::vector<Entry*> sweep(const KeyTable& table, std::chrono::nanoseconds now,
                            std::chrono::nanoseconds idle_timeout);

  // `e`, out of the table, waits here until reclaim() finds nothing can reach it.
  void bury(Entry* e);
  // Frees the buried entries that no reader (epoch), refill queue, timer or permit can
  // still reach.
  void reclaim();
  // Frees every buried entry (shutdown: nothing runs any more).
  void destroy_all() noexcept;

  bool empty() const noexcept { return graveyard_.empty(); }
  std::size_t buried() const noexcept { return graveyard_.size(); }
  // Whether pred(e) holds for any buried entry.
  template <typename Pred>
  bool any_buried(Pred pred) const {
    for (const auto& [epoch, e] : graveyard_) {
      if (pred(e)) return true;
    }
    return false;
  }

 private:
  std::atomic<bool> pressure_{false};
  std::vector<std::pair<std::uint64_t, Entry*>> graveyard_;  // epoch, unlinked entry
  std::size_t cursor_ = 0;
  std::chrono::nanoseconds last_sweep_{0};
};

}  // namespace tollgate::core
