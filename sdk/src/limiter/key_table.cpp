#include "limiter/key_table.h"

#include <bit>
#include <functional>

namespace tollgate::core {

std::uint64_t hash_key(std::string_view key) noexcept {
  std::uint64_t h = std::hash<std::string_view>{}(key);
  // Mix so that the low bits (the slot index) depend on every input bit.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

namespace {
constexpr std::size_t kMinSlots = 64;
}

KeyTable::Slots::Slots(std::size_t cap) : mask(cap - 1), at(new std::atomic<Entry*>[cap]) {
  for (std::size_t i = 0; i < cap; ++i) at[i].store(nullptr, std::memory_order_relaxed);
}

KeyTable::KeyTable(std::size_t max_keys)
    : max_keys_(max_keys),
      max_slots_(std::bit_ceil(std::max<std::size_t>(kMinSlots, max_keys * 2))),
      slots_(new Slots(std::min<std::size_t>(max_slots_, 1024))) {}

KeyTable::~KeyTable() {
  Slots* s = slots_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i <= s->mask; ++i) {
    Entry* e = s->at[i].load(std::memory_order_relaxed);
    if (e != nullptr && e != tombstone()) Entry::destroy(e);
  }
  delete s;
  retired_.drain_all();
}

void KeyTable::place(Entry* e) {
  Slots* s = slots_.load(std::memory_order_relaxed);
  std::uint64_t h = hash_key(e->key());
  std::size_t i = h & s->mask;
  for (;; i = (i + 1) & s->mask) {
    Entry* cur = s->at[i].load(std::memory_order_relaxed);
    if (cur == nullptr || cur == tombstone()) {
      if (cur == tombstone()) --tombstones_;
      s->at[i].store(e, std::memory_order_release);
      entry_bytes_.fetch_add(e->allocated_bytes(), std::memory_order_relaxed);
      return;
    }
  }
}

void KeyTable::grow_if_needed() {
  Slots* s = slots_.load(std::memory_order_relaxed);
  std::size_t cap = s->mask + 1;
  std::size_t live = live_.load(std::memory_order_relaxed);
  bool crowded = (live + tombstones_) * 4 > cap * 3;
  bool grow = live * 2 > cap && cap < max_slots_;
  if (!crowded && !grow) return;
  auto* next = new Slots(grow ? cap * 2 : cap);
  for (std::size_t i = 0; i < cap; ++i) {
    Entry* e = s->at[i].load(std::memory_order_relaxed);
    if (e == nullptr || e == tombstone()) continue;
    std::size_t j = hash_key(e->key()) & next->mask;
    while (next->at[j].load(std::memory_order_relaxed) != nullptr) j = (j + 1) & next->mask;
    next->at[j].store(e, std::memory_order_relaxed);
  }
  slots_.store(next, std::memory_order_release);
  tombstones_ = 0;
  retired_.retire([s] { delete s; });
}

void KeyTable::erase(Entry* e) {
  std::lock_guard lock(mu_);
  Slots* s = slots_.load(std::memory_order_relaxed);
  std::size_t i = hash_key(e->key()) & s->mask;
  for (std::size_t n = 0; n <= s->mask; ++n, i = (i + 1) & s->mask) {
    Entry* cur = s->at[i].load(std::memory_order_relaxed);
    if (cur == nullptr) return;
    if (cur == e) {
      s->at[i].store(tombstone(), std::memory_order_release);
      // Counted after the unlink and before the caller's Epoch::advance(). After the unlink:
      // a KeyRef that reads the new count and then probes cannot find `e` any more (it would
      // publish a pointer to an unlinked entry). Before the advance: a reader that still
      // sees the old count is inside an EpochGuard the reclaimer waits for (limiter/key_ref.cpp).
      erasures_.fetch_add(1, std::memory_order_seq_cst);
      ++tombstones_;
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
  return slots_.load(std::memory_order_acquire)->mask + 1;
}

std::size_t KeyTable::bytes_used() const noexcept {
  return slot_count() * sizeof(std::atomic<Entry*>) + entry_bytes_.load(std::memory_order_relaxed);
}

}  // namespace tollgate::core
