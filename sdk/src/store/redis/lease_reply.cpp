#include "store/redis/lease_reply.h"

#include <algorithm>
#include <limits>

namespace tollgate::redis {
namespace {

Nanos from_micros(long long us) noexcept {
  constexpr long long kMax = std::numeric_limits<long long>::max() / 1000;
  return Nanos{std::clamp(us, -kMax, kMax) * 1000};
}

}  // namespace

LeaseGrant to_grant(const Reply& r) {
  LeaseGrant g;
  if (r.type != Reply::Type::kArray || r.elements.size() < 5 || r.elements.size() > 6) {
    g.ok = false;
    g.error = r.is_error() ? "redis: " + r.str : "redis: unexpected reply to the lease script";
    return g;
  }
  for (const Reply& e : r.elements) {
    if (e.type != Reply::Type::kInteger) {
      g.ok = false;
      g.error = "redis: unexpected reply to the lease script";
      return g;
    }
  }
  auto at = [&](int i) { return r.elements[static_cast<std::size_t>(i)].integer; };
  g.granted = static_cast<std::uint64_t>(std::max<long long>(0, at(0)));
  g.now = from_micros(at(1));
  g.expires_at = from_micros(at(2));
  g.remaining = static_cast<std::uint64_t>(std::max<long long>(0, at(3)));
  g.wait_until = from_micros(at(4));
  if (r.elements.size() == 6 && at(5) >= 0 && at(5) <= 2) {
    g.limited_by = static_cast<LimitLevel>(at(5));
  }
  return g;
}

LeaseGrant to_grant(const Reply& r, std::size_t k, std::size_t keys) {
  if (keys == 1) return to_grant(r);
  if (r.type != Reply::Type::kArray || k >= keys || r.elements.size() != 6 * keys) {
    LeaseGrant g;
    g.ok = false;
    g.error = r.is_error() ? "redis: " + r.str : "redis: unexpected reply to the lease script";
    return g;
  }
  Reply one;
  one.type = Reply::Type::kArray;
  one.elements.assign(r.elements.begin() + static_cast<std::ptrdiff_t>(6 * k),
                      r.elements.begin() + static_cast<std::ptrdiff_t>(6 * k + 6));
  return to_grant(one);
}

}  // namespace tollgate::redis
