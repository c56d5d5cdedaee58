#include "limiter/lease_book.h"

#include <algorithm>

namespace tollgate::core {

void book_credit(RefillState& s, const HeldLease& lease) noexcept {
  if (s.lease_count == 2) {  // fold into the newer one, keeping the earlier expiries
    auto& newer = s.leases[1];
    newer.granted += lease.granted;
    if (ms_before(lease.local_expiry, newer.local_expiry))
      newer = {newer.granted, lease.local_expiry, lease.store_expiry};
  } else {
    s.leases[s.lease_count++] = lease;
  }
}

bool book_oldest_due(const RefillState& s, Ms now) noexcept {
  return s.lease_count > 0 && !ms_before(now, s.leases[0].local_expiry);
}

std::int64_t book_oldest_left(const RefillState& s, std::int64_t balance) noexcept {
  const std::int64_t newer = s.lease_count > 1 ? s.leases[1].granted : 0;
  return std::max<std::int64_t>(0, balance - newer);
}

void book_end_oldest(RefillState& s, std::int64_t taken) noexcept {
  s.leases[0] = s.leases[1];
  --s.lease_count;
  s.baseline_balance -= taken;
}

}  // namespace tollgate::core
