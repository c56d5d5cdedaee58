#include "limiter/key_table.h"

#include <algorithm>
#include <functional>
#include <numeric>

namespace tollgate::core {

namespace {
constexpr std::size_t kMinSlots = 64;
// A full table has 8 slots for each 5 keys (load 0.625): 12.8 bytes of slots a key at any
// max_keys. Probes stay short (1.8 on average to find a key, linear probing); the
// power of two this replaced put 2-4 slots behind each key (26 bytes at 40,000 keys).
constexpr std::size_t kSlotsPerKeys = 8, kKeysPerSlots = 5;
}  // namespace

KeyTable::Slots::Slots(std::size_t cap)
    : cap(cap), stride(cap * 618 / 1000 | 1), at(new std::atomic<std::uintptr_t>[cap]) {
  while (std::gcd(stride, cap) != 1) ++stride;
  for (std::size_t i = 0; i < cap; ++i) at[i].store(kEmpty, std::memory_order_relaxed);
}

KeyTable::KeyTable(std::size_t max_keys)
    : max_keys_(max_keys),
      max_slots_(std::max<std::size_t>(
          kMinSlots, (max_keys * kSlotsPerKeys + kKeysPerSlots - 1) / kKeysPerSlots)),
      slots_(new Slots(std::min<std::size_t>(max_slots_, 1024))) {}

KeyTable::~KeyTable() {
  Slots* s = slots_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < s->cap; ++i) {
    const std::uintptr_t slot = s->at[i].load(std::memory_order_relaxed);
    if (slot != kEmpty && slot != kTombstone) Entry::destroy(entry_of(slot));
  }
  delete s;
  retired_.drain_all();
}

void KeyTable::place(Entry* e) {
  Slots* s = slots_.load(std::memory_order_relaxed);
  std::uint64_t h = hash_key(e->key());
  for (std::size_t i = s->home(h);; i = s->next(i)) {
    const std::uintptr_t cur = s->at[i].load(std::memory_order_relaxed);
    if (cur == kEmpty || cur == kTombstone) {
      if (cur == kTombstone) --tombstones_;
      s->at[i].store(slot_of(e, h), std::memory_order_release);
      entry_bytes_.fetch_add(e->allocated_bytes(), std::memory_order_relaxed);
      return;
    }
  }
}

void KeyTable::grow_if_needed() {
  Slots* s = slots_.load(std::memory_order_relaxed);
  const std::size_t cap = s->cap;
  std::size_t live = live_.load(std::memory_order_relaxed);
  bool crowded = (live + tombstones_) * 4 > cap * 3;
  bool grow = live * 2 > cap && cap < max_slots_;
  if (!crowded && !grow) return;
  auto* next = new Slots(grow ? std::min(cap * 2, max_slots_) : cap);
  for (std::size_t i = 0; i < cap; ++i) {
    const std::uintptr_t slot = s->at[i].load(std::memory_order_relaxed);
    if (slot == kEmpty || slot == kTombstone) continue;
    std::size_t j = next->home(hash_key(entry_of(slot)->key()));
    while (next->at[j].load(std::memory_order_relaxed) != kEmpty) j = next->next(j);
    next->at[j].store(slot, std::memory_order_relaxed);  // the same hash, the same tag
  }
  slots_.store(next, std::memory_order_release);
  tombstones_ = 0;
  retired_.retire([s] { delete s; });
}

void KeyTable::erase(Entry* e) {
  std::lock_guard lock(mu_);
  Slots* s = slots_.load(std::memory_order_relaxed);
  std::size_t i = s->home(hash_key(e->key()));
  for (std::size_t n = 0; n < s->cap; ++n, i = s->next(i)) {
    const std::uintptr_t cur = s->at[i].load(std::memory_order_relaxed);
    if (cur == kEmpty) return;
    if (cur != kTombstone && entry_of(cur) == e) {
      if (s->at[s->next(i)].load(std::memory_order_relaxed) == kEmpty) {
        // No probe goes past an empty slot, so none needs this one or the tombstones right
        // before it. Without this the sweep's evictions left runs of tombstones thousands
        // of slots long, and a flood's lookups walked them (until the next rehash).
        s->at[i].store(kEmpty, std::memory_order_release);
        for (std::size_t j = s->prev(i); s->at[j].load(std::memory_order_relaxed) == kTombstone;
             j = s->prev(j)) {
          s->at[j].store(kEmpty, std::memory_order_release);
          --tombstones_;
        }
      } else {
        s->at[i].store(kTombstone, std::memory_order_release);
        ++tombstones_;
      }
      // Counted after the unlink and before the caller's Epoch::advance(). After the unlink:
      // a KeyRef that reads the new count and then probes cannot find `e` any more (it would
      // publish a pointer to an unlinked entry). Before the advance: a reader that still
      // sees the old count is inside an EpochGuard the reclaimer waits for (limiter/key_ref.cpp).
      erasures_.fetch_add(1, std::memory_order_seq_cst);
      live_.fetch_sub(1, std::memory_order_relaxed);
      entry_bytes_.fetch_sub(e->allocated_bytes(), std::memory_order_relaxed);
      e->retired.store(true, std::memory_order_release);
      grow_if_needed();
      return;
    }
  }
}

void KeyTable::reclaim() {
  std::lock_guard lock(mu_);
  retired_.reclaim();
}

std::size_t KeyTable::slot_count() const noexcept {
  return slots_.load(std::memory_order_acquire)->cap;
}

std::size_t KeyTable::bytes_used() const noexcept {
  return slot_count() * sizeof(std::atomic<std::uintptr_t>) +
         entry_bytes_.load(std::memory_order_relaxed);
}

}  // namespace tollgate::core
