// The local fallback bucket (fallback = local) a key spends from while its shard is
// unavailable and its leases are spent: it starts full (burst), then refills at the
// fallback rate, keeping the part of a token not yet accrued for the next fill.
// Pure: the caller passes the times (limiter milliseconds) and credits the tokens.
#pragma once

#include <cstdint>

#include "limiter/entry.h"
#include "tollgate/config.h"

namespace tollgate::core {

struct FallbackFill {
  std::int64_t add = 0;  // tokens to credit (0: none)
  Ms filled = 0;         // the time the bucket is now filled up to
};

// `starting`: the bucket is not in use yet (it starts with `start` tokens, at most
// burst); `filled`: the time it was filled up to; `balance`: what the key holds now.
FallbackFill fallback_fill(bool starting, Ms filled, Ms now, double rate, std::int64_t burst,
                           std::int64_t start, std::int64_t balance) noexcept;

// Share mode (fallback.instances 0, the default): the local bucket runs at the share of the
// key's rate this instance was last granted, so that the instances' buckets together sum to
// about the quota, whatever their number (CockroachDB's tenant fallback rate).
// The share is an EWMA over kShareTau of the tokens granted per second, kept in 16 bits.
inline constexpr double kShareTauSeconds = Fallback::kShareTauSeconds;
std::uint16_t encode_share(double tokens_per_second) noexcept;  // bfloat16, rounded
double decode_share(std::uint16_t share) noexcept;
// The share after a grant of `granted` tokens `dt_s` seconds after the previous one.
double next_share(double share, double granted, double dt_s, double ceiling) noexcept;

struct ShareBucket {
  double rate = 0;         // tokens per second: the share, at most the policy's
  std::int64_t burst = 1;  // one second of it (at least 1, at most the policy's)
  std::int64_t start = 0;  // tokens at the start of the outage: one second of it, rounded down
};
ShareBucket share_bucket(double share, double ceiling_rate, std::int64_t ceiling_burst) noexcept;

}  // namespace tollgate::core
