#include "limiter/fallback_bucket.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace tollgate::core {

FallbackFill fallback_fill(bool starting, Ms filled, Ms now, double rate, std::int64_t burst,
                           std::int64_t start, std::int64_t balance) noexcept {
  const std::int64_t room = std::max<std::int64_t>(0, burst - balance);
  if (starting) return {std::min(room, std::max<std::int64_t>(0, start)), now};
  if (rate <= 0) return {0, now};
  const auto elapsed = static_cast<std::int32_t>(now - filled);
  if (elapsed <= 0) return {0, filled};
  auto add = static_cast<std::int64_t>(std::floor(rate * elapsed / 1e3));
  if (add >= room) return {room, now};
  if (add > 0) filled += static_cast<Ms>(static_cast<double>(add) * 1e3 / rate);
  return {add, filled};
}

std::uint16_t encode_share(double tokens_per_second) noexcept {
  if (!(tokens_per_second > 0)) return 0;
  const float f = static_cast<float>(std::min(tokens_per_second, 3.0e38));
  std::uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<std::uint16_t>(bits >> 16);
}

double decode_share(std::uint16_t share) noexcept {
  const std::uint32_t bits = static_cast<std::uint32_t>(share) << 16;
  float f = 0;
  std::memcpy(&f, &bits, sizeof f);
  return static_cast<double>(f);
}

double next_share(double share, double granted, double dt_s, double ceiling) noexcept {
  if (!(dt_s > 0) || !(granted >= 0)) return share;
  const double sample = granted / dt_s;
  if (share <= 0) return std::clamp(sample, 0.0, std::max(0.0, ceiling));  // the first grant
  const double alpha = 1.0 - std::exp(-dt_s / kShareTauSeconds);
  const double next = share + alpha * (sample - share);
  return std::clamp(next, 0.0, std::max(0.0, ceiling));
}

ShareBucket share_bucket(double share, double ceiling_rate, std::int64_t ceiling_burst) noexcept {
  ShareBucket b;
  b.rate = std::clamp(share, 0.0, std::max(0.0, ceiling_rate));
  const auto second = static_cast<std::int64_t>(std::floor(b.rate));
  b.burst = std::clamp<std::int64_t>(second, 1, std::max<std::int64_t>(1, ceiling_burst));
  b.start = std::min(second, b.burst);
  return b;
}

}  // namespace tollgate::core
