// tg_limiter_stats and tg_limiter_breakers: the versioned C view of tollgate::Stats.
#include "capi/capi_internal.h"

using tollgate::capi::guarded;

extern "C" {

tg_status tg_stats_init(tg_stats* stats, unsigned int version) {
  if (stats == nullptr || version == 0 || version > TG_STATS_VERSION)
    return TG_ERR_INVALID_ARGUMENT;
  *stats = tg_stats{};
  stats->version = version;
  return TG_OK;
}

tg_status tg_limiter_stats(tg_stats* out_stats, tg_limiter* limiter) {
  if (out_stats == nullptr || limiter == nullptr || out_stats->version == 0 ||
      out_stats->version > TG_STATS_VERSION)
    return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    const tollgate::Stats s = limiter->limiter->stats();
    tg_stats& o = *out_stats;  // version 1: every field up to fallback_dropped
    o.admitted = s.admitted;
    o.admitted_tokens = s.admitted_tokens;
    o.denied_total = s.denied_total();
    static_assert(TG_REASON_COUNT == tollgate::kReasonCount, "tg_reason and Reason disagree");
    // A new reason needs a field of its own at the end, and a new version.
    static_assert(TG_REASON_COUNT == TG_STATS_DENIED_SLOTS + 1, "a reason without a stats field");
    for (int i = 0; i < TG_STATS_DENIED_SLOTS; ++i) o.denied[i] = s.denied[i];
    o.leases_asked = s.leases_asked;
    o.leases_granted = s.leases_granted;
    o.tokens_leased = s.tokens_leased;
    o.tokens_given_back = s.tokens_given_back;
    o.tokens_expired = s.tokens_expired;
    o.keys_tracked = s.keys_tracked;
    o.keys_evicted = s.keys_evicted;
    o.bytes_used = s.bytes_used;
    o.lease_failures = s.lease_failures;
    o.breaker_transitions = s.breaker_transitions;
    o.breakers_opened = s.breakers_opened;
    o.fallback_tokens = s.fallback_tokens;
    o.fallback_dropped = s.fallback_dropped;
    if (o.version >= 2) {
      o.denied_over_group_limit = s.denied[static_cast<int>(tollgate::Reason::kOverGroupLimit)];
    }
    o.shards = static_cast<uint32_t>(s.breakers.size());
    o.breakers_closed = o.breakers_open = o.breakers_half_open = 0;
    for (auto b : s.breakers) {
      if (b == tollgate::BreakerState::kOpen)
        ++o.breakers_open;
      else if (b == tollgate::BreakerState::kHalfOpen)
        ++o.breakers_half_open;
      else
        ++o.breakers_closed;
    }
    return TG_OK;
  });
}

tg_status tg_limiter_breakers(tg_breaker_state* out_states, size_t capacity, size_t* out_count,
                              tg_limiter* limiter) {
  if (out_count != nullptr) *out_count = 0;
  if (limiter == nullptr || (out_states == nullptr && capacity != 0))
    return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    const tollgate::Stats s = limiter->limiter->stats();
    for (size_t i = 0; i < s.breakers.size() && i < capacity; ++i)
      out_states[i] = static_cast<tg_breaker_state>(s.breakers[i]);
    if (out_count != nullptr) *out_count = s.breakers.size();
    return TG_OK;
  });
}

}  // extern "C"
