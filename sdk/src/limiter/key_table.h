// The bounded table of keys a Limiter tracks. Lookups are lock-free (epoch-protected);
// inserts, erases and growth take a mutex. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>

#include "limiter/entry.h"
#include "limiter/epoch.h"

namespace tollgate::core {

std::uint64_t hash_key(std::string_view key) noexcept;

class KeyTable {
 public:
  explicit KeyTable(std::size_t max_keys);
  ~KeyTable();
  KeyTable(const KeyTable&) = delete;
  KeyTable& operator=(const KeyTable&) = delete;

  // Caller holds an EpochGuard. nullptr when absent.
  Entry* find(std::string_view key, std::uint64_t hash) const noexcept {
    const Slots* s = slots_.load(std::memory_order_acquire);
    std::size_t i = hash & s->mask;
    for (std::size_t n = 0; n <= s->mask; ++n, i = (i + 1) & s->mask) {
      Entry* e = s->at[i].load(std::memory_order_acquire);
      if (e == nullptr) return nullptr;
      if (e != tombstone() && e->hash32 == static_cast<std::uint32_t>(hash) && e->key() == key)
        return e;
    }
    return nullptr;
  }

  enum class Insert { kFound, kInserted, kFull };
  // Caller holds an EpochGuard. `make` builds the entry when the key is absent.
  template <typename Make>
  std::pair<Entry*, Insert> find_or_insert(std::string_view key, std::uint64_t hash, Make&& make) {
    std::lock_guard lock(mu_);
    if (Entry* e = find(key, hash)) return {e, Insert::kFound};
    if (live_ >= max_keys_) return {nullptr, Insert::kFull};
    Entry* e = make();
    if (e == nullptr) return {nullptr, Insert::kFull};
    place(e);
    ++live_;
    grow_if_needed();
    return {e, Insert::kInserted};
  }

  // Unlinks `e` and marks it retired. The caller frees it (Entry::destroy) once no reader,
  // refill queue or timer can still reach it.
  void erase(Entry* e);
  // Frees old slot arrays that no reader can see any more.
  void reclaim();

  // Entries erased so far. A reader (in an EpochGuard) that sees the count it saw when it
  // found an entry knows the entry is still linked, so still safe to use (KeyRef).
  std::uint64_t erasures() const noexcept { return erasures_.load(std::memory_order_acquire); }
  std::size_t size() const noexcept { return live_.load(std::memory_order_relaxed); }
  std::size_t max_keys() const noexcept { return max_keys_; }
  std::size_t slot_count() const noexcept;
  std::size_t bytes_used() const noexcept;
  // Calls f(Entry*) for the entries in slots [from, from + count) of the current array;
  // returns the next position (wrapping to 0). Caller holds an EpochGuard.
  template <typename F>
  std::size_t visit(std::size_t from, std::size_t count, F&& f) const {
    const Slots* s = slots_.load(std::memory_order_acquire);
    std::size_t cap = s->mask + 1;
    if (from >= cap) from = 0;
    for (std::size_t n = 0; n < count && n < cap; ++n) {
      Entry* e = s->at[from].load(std::memory_order_acquire);
      if (e != nullptr && e != tombstone()) f(e);
      from = (from + 1) & s->mask;
    }
    return from;
  }
  template <typename F>
  void for_each(F&& f) const {
    visit(0, slot_count(), f);
  }

 private:
  struct Slots {
    std::size_t mask;
    std::unique_ptr<std::atomic<Entry*>[]> at;
    explicit Slots(std::size_t cap);
  };
  static Entry* tombstone() noexcept { return reinterpret_cast<Entry*>(std::uintptr_t{1}); }
  void place(Entry* e);   // under mu_
  void grow_if_needed();  // under mu_

  const std::size_t max_keys_;
  const std::size_t max_slots_;
  mutable std::mutex mu_;
  std::atomic<Slots*> slots_;
  std::atomic<std::size_t> live_{0};
  std::atomic<std::uint64_t> erasures_{0};  // written under mu_, after the entry is unlinked
  std::size_t tombstones_ = 0;
  std::atomic<std::size_t> entry_bytes_{0};
  RetireList retired_;  // under mu_
};

}  // namespace tollgate::core
