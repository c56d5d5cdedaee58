#include "limiter/eviction.h"

#include <algorithm>

#include "limiter/epoch.h"

namespace tollgate::core {

std::int64_t take_unspent(Entry& e, bool concurrency) noexcept {
  const std::int64_t left = e.balance.exchange(0, std::memory_order_acq_rel);
  if (!concurrency) return left;
  return e.s.lease_count > 0 ? e.s.leases[0].granted : 0;
}

std::vector<Entry*> Eviction::sweep(const KeyTable& table, std::chrono::nanoseconds now,
                                    std::chrono::nanoseconds idle_timeout) {
  std::vector<Entry*> victims;
  const bool pressure = pressure_.exchange(false, std::memory_order_relaxed);
  if (last_sweep_.count() == 0) last_sweep_ = now;
  const std::chrono::nanoseconds elapsed = now - last_sweep_;
  // Every entry is looked at about twice per idle_timeout; under pressure, a batch now.
  const std::size_t slots = table.slot_count();
  const double share =
      static_cast<double>(elapsed.count()) / (static_cast<double>(idle_timeout.count()) / 2.0);
  std::size_t count = static_cast<std::size_t>(static_cast<double>(slots) * std::min(share, 1.0));
  if (pressure) count = std::max<std::size_t>(count, kPressureSlots);
  if (count == 0) return victims;
  last_sweep_ = now;
  EpochGuard g;
  cursor_ = table.visit(cursor_, count, [&](Entry* e) {
    if (e->touched.load(std::memory_order_relaxed)) {
      e->touched.store(false, std::memory_order_relaxed);
      e->s.idle_passes = 0;
      return;
    }
    if (e->s.idle_passes < 63) ++e->s.idle_passes;
    if (e->s.idle_passes >= kIdleLooks || (pressure && e->s.idle_passes >= 1)) victims.push_back(e);
  });
  return victims;
}

void Eviction::bury(Entry* e) {
  graveyard_.emplace_back(Epoch::advance(), e);
}

void Eviction::reclaim() {
  if (graveyard_.empty()) return;
  const std::uint64_t safe = Epoch::safe_epoch();
  auto keep = std::stable_partition(graveyard_.begin(), graveyard_.end(), [&](const auto& g) {
    Entry* e = g.second;
    return g.first > safe || e->queued.load(std::memory_order_acquire) || e->s.timer_refs != 0 ||
           e->permits_out.load(std::memory_order_acquire) != 0;
  });
  for (auto it = keep; it != graveyard_.end(); ++it) Entry::destroy(it->second);
  graveyard_.erase(keep, graveyard_.end());
}

void Eviction::destroy_all() noexcept {
  for (auto& [epoch, e] : graveyard_) Entry::destroy(e);
  graveyard_.clear();
}

}  // namespace tollgate::core
