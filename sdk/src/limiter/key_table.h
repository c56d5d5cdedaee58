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

namespace key_bytes {
inline std::uint64_t load64(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline std::uint64_t load32(const char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// a, b = the low and the high half of a × b.
inline void mul128(std::uint64_t& a, std::uint64_t& b) noexcept {
#if defined(__SIZEOF_INT128__)
  __extension__ using U128 = unsigned __int128;  // __extension__: -Wpedantic
  const U128 r = static_cast<U128>(a) * b;
  a = static_cast<std::uint64_t>(r);
  b = static_cast<std::uint64_t>(r >> 64);
#else
  const std::uint64_t ha = a >> 32, hb = b >> 32, la = a & 0xffffffffu, lb = b & 0xffffffffu;
  const std::uint64_t hi = ha * hb, mid1 = ha * lb, mid2 = la * hb, lo = la * lb;
  const std::uint64_t t = (lo >> 32) + (mid1 & 0xffffffffu) + (mid2 & 0xffffffffu);
  a = (lo & 0xffffffffu) | (t << 32);
  b = hi + (mid1 >> 32) + (mid2 >> 32) + (t >> 32);
#endif
}
inline std::uint64_t mum(std::uint64_t a, std::uint64_t b) noexcept {
  mul128(a, b);
  return a ^ b;
}
}  // namespace key_bytes

// wyhash's construction (public domain, github.com/wangyi-fudan/wyhash), inline: a key of
// up to 16 bytes is two multiplies, with no call (std::hash<string_view> was ~70
// instructions of the hit path). Every output bit depends on every input bit: the slot
// index comes from the upper half, the tag from bits 32-35, Entry::hash32 from the lower.
inline std::uint64_t hash_key(std::string_view key) noexcept {
  using key_bytes::load32, key_bytes::load64, key_bytes::mum;
  constexpr std::uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL,
                          k2 = 0x8ebc6af09c88c6e3ULL;
  const char* p = key.data();
  const std::size_t n = key.size();
  std::uint64_t seed = k2, a = 0, b = 0;
  if (n <= 16) {
    if (n >= 4) {
      const std::size_t q = (n >> 3) << 2;
      a = load32(p) << 32 | load32(p + q);
      b = load32(p + n - 4) << 32 | load32(p + n - 4 - q);
    } else if (n > 0) {
      const auto u = [p](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(p[i])}; };
      a = u(0) << 16 | u(n >> 1) << 8 | u(n - 1);
    }
  } else {
    std::size_t i = n;
    for (; i > 16; i -= 16, p += 16) seed = mum(load64(p) ^ k1, load64(p + 8) ^ seed);
    a = load64(p + i - 16);
    b = load64(p + i - 8);
  }
  a ^= k1;
  b ^= seed;
  key_bytes::mul128(a, b);
  return mum(a ^ k0 ^ n, b ^ k1);
}

// n bytes at a and at b are equal: for keys of 4-16 bytes two overlapping loads each, not a
// call to memcmp.
inline bool same_key_bytes(const char* a, const char* b, std::size_t n) noexcept {
  using key_bytes::load32, key_bytes::load64;
  if (n >= 8 && n <= 16)
    return ((load64(a) ^ load64(b)) | (load64(a + n - 8) ^ load64(b + n - 8))) == 0;
  if (n >= 4 && n < 8)
    return ((load32(a) ^ load32(b)) | (load32(a + n - 4) ^ load32(b + n - 4))) == 0;
  return std::memcmp(a, b, n) == 0;
}

class KeyTable {
 public:
  explicit KeyTable(std::size_t max_keys);
  ~KeyTable();
  KeyTable(const KeyTable&) = delete;
  KeyTable& operator=(const KeyTable&) = delete;

  // Caller holds an EpochGuard. nullptr when absent.
  Entry* find(std::string_view key, std::uint64_t hash) const noexcept {
    const Slots* s = slots_.load(std::memory_order_acquire);
    const std::uintptr_t tag = tag_of(hash);
    std::size_t i = s->home(hash);
    for (std::size_t n = 0; n < s->cap; ++n, i = s->next(i)) {
      const std::uintptr_t slot = s->at[i].load(std::memory_order_acquire);
      if (slot == kEmpty) return nullptr;
      // The tag rules out all but 1 in 16 of the other keys without reading their entry.
      if ((slot & kTagMask) != tag || slot == kTombstone) continue;
      // Not hash32: the key's length and bytes share the entry's line with the fields the
      // hit reads next, hash32 does not (entry.h).
      Entry* e = entry_of(slot);
      if (e->key_len == key.size() && same_key_bytes(e->key_data(), key.data(), key.size()))
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
  // Calls f(Entry*) for the entries in `count` slots of the current array from `from` on,
  // in the order of a stride that reaches every slot once per slot_count() (scattered, so
  // that evictions keep the occupancy even: a sweep in slot order left a crowded band ahead
  // of it that grew into runs of thousands of slots); returns the next position. Caller
  // holds an EpochGuard.
  template <typename F>
  std::size_t visit(std::size_t from, std::size_t count, F&& f) const {
    const Slots* s = slots_.load(std::memory_order_acquire);
    if (from >= s->cap) from = 0;
    for (std::size_t n = 0; n < count && n < s->cap; ++n) {
      const std::uintptr_t slot = s->at[from].load(std::memory_order_acquire);
      if (slot != kEmpty && slot != kTombstone) f(entry_of(slot));
      from += s->stride;
      if (from >= s->cap) from -= s->cap;
    }
    return from;
  }
  template <typename F>
  void for_each(F&& f) const {
    visit(0, slot_count(), f);
  }

 private:
  // Any number of slots, not only a power of two (a full table is kept at most 5/8
  // occupied, docs/architecture.md): the home slot is the hash's upper half scaled to cap.
  // A slot holds an entry's address with 4 bits of its hash in the low bits (entries are
  // 16-byte aligned), kEmpty or kTombstone.
  struct Slots {
    std::size_t cap;
    std::size_t stride;  // coprime with cap, about 0.618 × cap (visit)
    std::unique_ptr<std::atomic<std::uintptr_t>[]> at;
    explicit Slots(std::size_t cap);
    std::size_t home(std::uint64_t hash) const noexcept { return ((hash >> 32) * cap) >> 32; }
    std::size_t next(std::size_t i) const noexcept { return i + 1 == cap ? 0 : i + 1; }
    std::size_t prev(std::size_t i) const noexcept { return i == 0 ? cap - 1 : i - 1; }
  };
  static constexpr std::uintptr_t kEmpty = 0, kTombstone = 1, kTagMask = 15;
  static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ > kTagMask, "entries carry a tag in 4 bits");
  // Bits the home slot barely depends on (it is set by the top ones) and hash32 does not hold.
  static std::uintptr_t tag_of(std::uint64_t hash) noexcept { return (hash >> 32) & kTagMask; }
  static std::uintptr_t slot_of(Entry* e, std::uint64_t hash) noexcept {
    return reinterpret_cast<std::uintptr_t>(e) | tag_of(hash);
  }
  static Entry* entry_of(std::uintptr_t slot) noexcept {
    return reinterpret_cast<Entry*>(slot & ~kTagMask);
  }
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
