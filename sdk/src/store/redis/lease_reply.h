// What the lease and give-back scripts' replies mean to the store. Pure: a parsed Reply
// in, a LeaseGrant (or a verdict) out; any reply, however malformed, gives an answer.
#pragma once

#include <cstddef>

#include "store/redis/resp.h"
#include "tollgate/quota_store.h"

namespace tollgate::redis {

// {granted, now_us, expires_at_us, remaining, wait_until_us[, limited_by]}; anything else
// is a failed grant saying why. Times out of range are clamped, never overflowed.
LeaseGrant to_grant(const Reply& r);
// The k-th of `keys` grants in the reply to a many-key lease call (six integers a key).
LeaseGrant to_grant(const Reply& r, std::size_t k, std::size_t keys);

// A give-back reply: did the script not run because the server had not loaded it?
inline bool needs_script_load(const Reply& r) noexcept {
  return r.error_code_is("NOSCRIPT");
}

}  // namespace tollgate::redis
