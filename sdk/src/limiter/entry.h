// One tracked key: its local balance (spent by application threads without locks) and
// the refill scheduler's bookkeeping (touched by the scheduler only). Kept small on
// purpose: a service may track a million keys (docs/performance.md).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

namespace tollgate::core {

// Milliseconds since the limiter started, wrapping after 49 days; compare with ms_before.
using Ms = std::uint32_t;
inline bool ms_before(Ms a, Ms b) noexcept {
  return static_cast<std::int32_t>(a - b) < 0;
}

struct Waiter;

// Entry::fallback: what the key does while its shard is unavailable.
inline constexpr std::uint8_t kFallbackOff = 0;
inline constexpr std::uint8_t kFallbackLocal = 1;  // the balance holds local bucket tokens
inline constexpr std::uint8_t kFallbackDeny = 2;
inline constexpr std::uint8_t kFallbackAllow = 3;

// Entry::exhausted.
inline constexpr std::uint8_t kExhaustedNot = 0;
inline constexpr std::uint8_t kExhaustedKey = 1;    // the key's own quota (over_limit)
inline constexpr std::uint8_t kExhaustedGroup = 2;  // its group's (over_group_limit)
// Its debt went to the store, whose bucket pays it back (in_debt until a grant comes).
inline constexpr std::uint8_t kExhaustedDebt = 3;

// A lease the key holds: tokens credited, and when they stop being spendable.
struct HeldLease {
  std::uint32_t granted = 0;
  Ms local_expiry = 0;  // after this the tokens are taken back (before the store's expiry)
  Ms store_expiry = 0;  // the store's expiry, mapped onto the local clock
};

// Scheduler-only state. No atomics: only the refill scheduler reads or writes it.
struct RefillState {
  HeldLease leases[2];
  std::int64_t baseline_balance = 0;  // balance right after the last credit/expiry
  Ms baseline_time = 0;
  Ms deny_window_start = 0;
  float rate = 0;  // EWMA of local demand, tokens per second
  std::uint32_t baseline_denials = 0;
  std::uint32_t deny_base = 0;
  // Tokens admitted here that no lease has covered yet: a cold key's optimistic allowance.
  // An over-settled reservation's shortfall is the same debt, kept as the balance below
  // zero (application threads settle); both are asked for and paid first out of the next
  // leases (LimiterImpl::debt_to_ask, apply).
  std::uint32_t debt = 0;
  std::uint16_t max_cost = 1;    // largest cost seen (saturating), for the watermark
  std::uint16_t timer_refs = 0;  // timers that still point here
  std::uint8_t lease_count : 2 = 0;
  bool in_flight : 1 = false;
  bool again : 1 = false;            // asked again while in flight
  bool parked : 1 = false;           // and holds `queued` (not on the queue) until the answer
  bool held : 1 = false;             // its request waits in the batch for the partition's next call
  bool rematch : 1 = false;          // an update came while in flight: match it on the answer
  bool owes : 1 = false;             // its debt went to the store: in_debt until the next grant
  std::uint8_t idle_passes : 6 = 0;  // idle scans in a row that found it untouched (to 63)
  // Grants to come that keep its shard's calls within its bucket's fill time: set when a
  // grant found the store's bucket half full or more (filling up unasked, its refill about
  // to be lost), one less for each grant that did not (LimiterImpl::apply, consider).
  std::uint8_t overflowed : 2 = 0;
  // EWMA of the tokens per second this instance was granted for the key (bfloat16,
  // core/fallback_bucket.h): the local fallback's rate in share mode.
  std::uint16_t share = 0;
  Ms last_grant = 0;  // when the last granted ask was sent (0: never); paces asks under scarcity
  Ms next_timer = 0;  // earliest pending timer, when timer_refs > 0
  // While the local fallback bucket is in use no lease is held (lease_count == 0), so the
  // first lease slot keeps the time the bucket was filled up to.
  Ms& fallback_filled() noexcept { return leases[0].local_expiry; }
  // and the tokens the bucket has been given since it started (LimiterImpl::leave_fallback).
  std::uint32_t& fallback_added() noexcept { return leases[0].granted; }
  // Waiters queue in the limiter's map (few keys have any), not here: 8 bytes a key.
};

// Laid out for the hit by string (KeyTable::find, then LimiterImpl::spend): everything it
// reads is the last 24 bytes of the struct, and the key's bytes follow them (this + 1), so
// a short key's hit reads one cache line of its entry, or two adjacent ones, not the three
// of a layout with the hot fields first (docs/performance.md, issue 19).
struct Entry {
  // --- the scheduler's ---
  RefillState s;
  // --- read and written by application threads, off the hit path ---
  std::atomic<std::int64_t> retry_at{0};  // local clock (ns): when asking again makes sense
  std::atomic<Entry*> next_queued{nullptr};
  // The newer lease's tokens while the key holds two (0: one or none), published by the
  // scheduler: a reservation whose tokens all came from it may keep its refund across the
  // older lease's end (spending is first in, first out; LimiterImpl::lease_ending).
  std::atomic<std::uint32_t> newer_granted{0};
  std::uint32_t hash32 = 0;
  std::atomic<std::uint32_t> denials{0};
  std::atomic<std::uint32_t> permits_out{0};
  std::atomic<std::uint32_t> last_denied_cost{0};
  std::atomic<bool> queued{false};  // on the refill queue
  // The store said: nothing left until retry_at (kExhausted*: which bound said so).
  std::atomic<std::uint8_t> exhausted{0};
  std::atomic<bool> leased{false};   // has received a grant at least once
  std::atomic<bool> retired{false};  // unlinked from the table
  // --- what a hit reads: the 24 bytes before the key ---
  std::atomic<std::int64_t> balance{0};    // tokens (or permits) spendable now
  std::atomic<std::int32_t> watermark{0};  // refill when the balance falls below (< a lease)
  std::atomic<std::uint32_t> waiters{0};
  // Slot of the limiter's compiled policies (PolicySlots); the scheduler moves it
  // when an update changes the key's policy.
  std::atomic<std::uint16_t> policy{0};
  std::uint16_t key_len = 0;
  std::atomic<bool> touched{false};  // used since the last idle scan
  std::atomic<bool> penalized{false};
  // The shard is unavailable and the key decides by its policy's fallback (kFallback*).
  std::atomic<std::uint8_t> fallback{0};
  bool unavailable = false;  // scheduler only: the store's last answer was a failure

  const char* key_data() const noexcept { return reinterpret_cast<const char*>(this + 1); }
  std::string_view key() const noexcept { return {key_data(), key_len}; }

  static Entry* create(std::string_view key, std::uint32_t hash32, std::uint16_t policy) {
    void* mem = ::operator new(sizeof(Entry) + key.size());
    auto* e = new (mem) Entry();
    std::memcpy(static_cast<void*>(e + 1), key.data(), key.size());
    e->key_len = static_cast<std::uint16_t>(key.size());
    e->hash32 = hash32;
    e->policy.store(policy, std::memory_order_relaxed);
    return e;
  }
  static void destroy(Entry* e) noexcept {
    std::size_t size = sizeof(Entry) + e->key_len;
    e->~Entry();
    ::operator delete(static_cast<void*>(e), size);
  }
  std::size_t allocated_bytes() const noexcept { return sizeof(Entry) + key_len; }
};

// With a short key an entry fits a 160-byte malloc chunk; docs/performance.md counts on it.
static_assert(sizeof(Entry) <= 136, "Entry grew: check bytes_per_key in docs/performance.md");
static_assert(sizeof(Entry) - offsetof(Entry, balance) == 24 && alignof(Entry) == 8,
              "the hit path's fields end where the key starts");

}  // namespace tollgate::core
