#pragma once

#include <cstdint>
#include <string_view>

#include "tollgate/clock.h"
#include "tollgate/export.h"

namespace tollgate {

// Why a decision came out the way it did. Stable numeric values: the C API and the
// bindings use them.
enum class Reason : std::uint8_t {
  kOk = 0,                // admitted from a locally held lease
  kOverLimit = 1,         // the global quota is spent; retry_after says when it refills
  kColdKey = 2,           // first sight of the key; no lease yet (cold_keys.mode = deny)
  kLeasePending = 3,      // local lease spent faster than the refill arrived
  kPenaltyBox = 4,        // denied too often recently; refused without asking the store
  kQueueFull = 5,         // acquire(): the key's wait queue is at its bound
  kTimeout = 6,           // acquire(): no tokens within the timeout
  kCancelled = 7,         // acquire(): the wait was cancelled
  kKeyTableFull = 8,      // max_keys reached and nothing could be evicted
  kNoPolicy = 9,          // no policy matches the key
  kInvalidArgument = 10,  // empty or too long key, cost 0, cost above the policy's capacity
  kFallbackLocal = 11,    // store unavailable; decided by the local fallback bucket
  kFallbackDeny = 12,     // store unavailable; fallback = deny
  kFallbackAllow = 13,    // store unavailable; fallback = allow
  kShutdown = 14,         // the limiter is being destroyed
  // The key's group budget is spent, or the key's fair share of it is (docs/quotas.md);
  // kOverLimit is the key's own quota. retry_after says when its share refills.
  kOverGroupLimit = 15,
  // An over-settled Reservation left the key owing more than its local balance held; the
  // debt is paid first out of its next leases. retry_after says when that is expected.
  kInDebt = 16,
};
inline constexpr int kReasonCount = 17;

TOLLGATE_API std::string_view to_string(Reason reason) noexcept;

// The answer to one acquire. Trivially copyable.
struct Decision {
  bool allowed = false;
  Reason reason = Reason::kInvalidArgument;
  // Tokens (or permits) left in the key's local lease after this decision.
  std::int64_t remaining = 0;
  // When denied: how long until a retry may succeed (0 when unknown or allowed).
  Nanos retry_after{0};

  explicit operator bool() const noexcept { return allowed; }
};

}  // namespace tollgate
