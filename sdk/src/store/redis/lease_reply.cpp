#include "store/redis/lease_reply.h"

#include <algorithm>
#include <limits>

namespace tollgate::redis {
namespace {

Nanos from_micros(long long us) noexcept {
  constexpr long long kMax = std::numeric_limits<long long>::max() / 1000;
  return Nanos{std::clamp(us, -kMax, kMax) * 1000};
}

LeaseGrant failed(const Reply& r) {
  LeaseGrant g;
  g.ok = false;
  g.error = r.is_error() ? "redis: " + r.str : "redis: unexpected reply to the lease script";
  return g;
}

// The grant in `n` (5 or 6) integers from `e` onwards.
LeaseGrant grant_of(const Reply& whole, const Reply* e, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (e[i].type != Reply::Type::kInteger) return failed(whole);
  }
  auto at = [&](std::size_t i) { return e[i].integer; };
  LeaseGrant g;
  g.granted = static_cast<std::uint64_t>(std::max<long long>(0, at(0)));
  g.now = from_micros(at(1));
  g.expires_at = from_micros(at(2));
  g.remaining = static_cast<std::uint64_t>(std::max<long long>(0, at(3)));
  g.wait_until = from_micros(at(4));
  if (n == 6 && at(5) >= 0 && at(5) <= 2) g.limited_by = static_cast<LimitLevel>(at(5));
  return g;
}

}  // namespace

LeaseGrant to_grant(const Reply& r) {
  if (r.type != Reply::Type::kArray || r.elements.size() < 5 || r.elements.size() > 6) {
    return failed(r);
  }
  return grant_of(r, r.elements.data(), r.elements.size());
}

// Read in place: a call of 256 keys is not copied into 256 replies of its own.
LeaseGrant to_grant(const Reply& r, std::size_t k, std::size_t keys) {
  if (keys == 1) return to_grant(r);
  if (r.type != Reply::Type::kArray || k >= keys || r.elements.size() != 6 * keys) {
    return failed(r);
  }
  return grant_of(r, r.elements.data() + 6 * k, 6);
}

}  // namespace tollgate::redis
