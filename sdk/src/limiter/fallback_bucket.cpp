#include "limiter/fallback_bucket.h"

#include <algorithm>
#include <cmath>

namespace tollgate::core {

FallbackFill fallback_fill(bool starting, Ms filled, Ms now, double rate, std::int64_t burst,
                           std::int64_t balance) noexcept {
  const std::int64_t room = std::max<std::int64_t>(0, burst - balance);
  if (starting) return {room, now};
  const auto elapsed = static_cast<std::int32_t>(now - filled);
  if (elapsed <= 0) return {0, filled};
  auto add = static_cast<std::int64_t>(std::floor(rate * elapsed / 1e3));
  if (add >= room) return {room, now};
  if (add > 0) filled += static_cast<Ms>(static_cast<double>(add) * 1e3 / rate);
  return {add, filled};
}

}  // namespace tollgate::core
