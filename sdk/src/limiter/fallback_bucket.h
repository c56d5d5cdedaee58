// The local fallback bucket (fallback = local) a key spends from while its shard is
// unavailable and its leases are spent: it starts full (burst), then refills at the
// fallback rate, keeping the part of a token not yet accrued for the next fill.
// Pure: the caller passes the times (limiter milliseconds) and credits the tokens.
#pragma once

#include <cstdint>

#include "limiter/entry.h"

namespace tollgate::core {

struct FallbackFill {
  std::int64_t add = 0;  // tokens to credit (0: none)
  Ms filled = 0;         // the time the bucket is now filled up to
};

// `starting`: the bucket is not in use yet (it starts full); `filled`: the time it was
// filled up to; `balance`: what the key holds now.
FallbackFill fallback_fill(bool starting, Ms filled, Ms now, double rate, std::int64_t burst,
                           std::int64_t balance) noexcept;

}  // namespace tollgate::core
