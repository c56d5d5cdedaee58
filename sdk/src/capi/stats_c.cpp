// tg_limiter_stats and tg_limiter_breakers: the versioned C view of tollgate::Stats; and
// its Prometheus text.
#include "capi/capi_internal.h"

#include <cstddef>
#include <cstring>
#include <iterator>
#include <string>
#include <type_traits>

#include "tollgate/prometheus.h"

using tollgate::capi::guarded;

namespace {

// Where each version's layout of tg_stats ends (a caller of version v has a struct this long).
constexpr std::size_t kStatsEnd[] = {0,
                                     offsetof(tg_stats, denied_over_group_limit),
                                     offsetof(tg_stats, bulkhead_rejected),
                                     offsetof(tg_stats, refills_overdue),
                                     offsetof(tg_stats, reserved),
                                     sizeof(tg_stats)};
static_assert(std::size(kStatsEnd) == TG_STATS_VERSION + 1, "a tg_stats version without its end");

// Every counter of tollgate/stats_list.h has a uint64_t field of its name in tg_stats, within
// the layout of the version the list gives it.
#define TG_CHECK_FIELD(name, since, help)                                                   \
  static_assert(std::is_same_v<decltype(tg_stats::name), uint64_t>, #name " not uint64_t"); \
  static_assert(since <= TG_STATS_VERSION &&                                                \
                    offsetof(tg_stats, name) + sizeof(uint64_t) <= kStatsEnd[since] &&      \
                    (since == 1 || offsetof(tg_stats, name) >= kStatsEnd[since - 1]),       \
                #name ": not in the layout of its tg_stats version");
TOLLGATE_STATS_COUNTERS(TG_CHECK_FIELD)
#undef TG_CHECK_FIELD

// The fields of tg_stats that are no counter of the list; with the list, all of them.
#define TG_STATS_OTHER_FIELDS(X)                                                       \
  X(version)                                                                           \
  X(denied_total)                                                                      \
  X(denied)                                                                            \
  X(shards)                                                                            \
  X(breakers_closed) X(breakers_open) X(breakers_half_open) X(denied_over_group_limit) \
      X(denied_in_debt)
#define TG_FIELD_SIZE(name) +sizeof(tg_stats::name)
#define TG_COUNTER_SIZE(name, since, help) +sizeof(uint64_t)
constexpr std::size_t kNamedBytes =
    0 TG_STATS_OTHER_FIELDS(TG_FIELD_SIZE) TOLLGATE_STATS_COUNTERS(TG_COUNTER_SIZE);
// Nothing in tg_stats beside them but the padding after `version`: a counter added to the
// struct but not to the list, or the other way round, fails here.
static_assert(sizeof(tg_stats) ==
                  kNamedBytes + offsetof(tg_stats, admitted) - sizeof(tg_stats::version),
              "tg_stats has fields that tollgate/stats_list.h does not name");
#undef TG_FIELD_SIZE
#undef TG_COUNTER_SIZE

struct Field {
  const char* name;
  std::size_t offset;
};
#define TG_OTHER_ENTRY(name) Field{#name, offsetof(tg_stats, name)},
#define TG_COUNTER_ENTRY(name, since, help) Field{#name, offsetof(tg_stats, name)},
constexpr Field kFields[] = {TG_STATS_OTHER_FIELDS(TG_OTHER_ENTRY)
                                 TOLLGATE_STATS_COUNTERS(TG_COUNTER_ENTRY)};
#undef TG_OTHER_ENTRY
#undef TG_COUNTER_ENTRY

// The text-out convention of tg_limiter_policy_name and tg_limiter_prometheus_text: the
// length always, the text with its NUL only when it fits in `capacity`.
tg_status copy_text(const std::string& text, char* out, size_t capacity, size_t* out_length) {
  *out_length = text.size();
  if (text.size() < capacity) std::memcpy(out, text.c_str(), text.size() + 1);
  return TG_OK;
}

}  // namespace

extern "C" {

tg_status tg_stats_init(tg_stats* stats, unsigned int version) {
  if (stats == nullptr || version == 0 || version > TG_STATS_VERSION)
    return TG_ERR_INVALID_ARGUMENT;
  std::memset(stats, 0, kStatsEnd[version]);  // a caller of version v has no more than this
  stats->version = version;
  return TG_OK;
}

const char* tg_stats_field(size_t* out_offset, size_t index) {
  const bool past = index >= std::size(kFields);
  if (out_offset != nullptr) *out_offset = past ? sizeof(tg_stats) : kFields[index].offset;
  return past ? nullptr : kFields[index].name;
}

tg_status tg_limiter_stats(tg_stats* out_stats, tg_limiter* limiter) {
  if (out_stats == nullptr || limiter == nullptr || out_stats->version == 0 ||
      out_stats->version > TG_STATS_VERSION)
    return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    const tollgate::Stats s = limiter->limiter->stats();
    tg_stats& o = *out_stats;  // only the fields of o.version's layout are written
#define TG_COPY(name, since, help) \
  if (o.version >= since) o.name = s.name;
    TOLLGATE_STATS_COUNTERS(TG_COPY)
#undef TG_COPY
    o.denied_total = s.denied_total();
    static_assert(TG_REASON_COUNT == tollgate::kReasonCount, "tg_reason and Reason disagree");
    // A new reason needs a field of its own at the end, and a new version.
    static_assert(TG_REASON_COUNT == TG_STATS_DENIED_SLOTS + 2, "a reason without a stats field");
    for (int i = 0; i < TG_STATS_DENIED_SLOTS; ++i) o.denied[i] = s.denied[i];
    if (o.version >= 2) {
      o.denied_over_group_limit = s.denied[static_cast<int>(tollgate::Reason::kOverGroupLimit)];
    }
    if (o.version >= 5) o.denied_in_debt = s.denied[static_cast<int>(tollgate::Reason::kInDebt)];
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

tg_status tg_limiter_policy_stats(tg_policy_stats* out_stats, size_t capacity, size_t* out_count,
                                  tg_limiter* limiter) {
  if (out_count != nullptr) *out_count = 0;
  if (out_count == nullptr || limiter == nullptr || (out_stats == nullptr && capacity != 0))
    return TG_ERR_INVALID_ARGUMENT;
  static_assert(TG_REASON_COUNT <= TG_POLICY_STATS_REASONS, "tg_policy_stats has no room left");
  return guarded([&] {
    const tollgate::Stats s = limiter->limiter->stats();
    for (size_t i = 0; i < s.policies.size() && i < capacity; ++i) {
      const tollgate::PolicyStats& p = s.policies[i];
      tg_policy_stats& o = out_stats[i];
      std::memset(&o, 0, sizeof o);
      o.admitted = p.admitted;
      o.admitted_tokens = p.admitted_tokens;
      for (int r = 1; r < tollgate::kReasonCount; ++r) o.denied[r] = p.denied[r];
    }
    *out_count = s.policies.size();
    return TG_OK;
  });
}

tg_status tg_limiter_policy_name(char* out_name, size_t capacity, size_t* out_length,
                                 tg_limiter* limiter, size_t label) {
  if (out_length != nullptr) *out_length = 0;
  if (out_length == nullptr || limiter == nullptr || (out_name == nullptr && capacity != 0))
    return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    const std::vector<tollgate::PolicyStats> policies = limiter->limiter->stats().policies;
    if (label >= policies.size()) return TG_ERR_INVALID_ARGUMENT;
    return copy_text(policies[label].name, out_name, capacity, out_length);
  });
}

tg_status tg_limiter_prometheus_text(char* out_text, size_t capacity, size_t* out_length,
                                     tg_limiter* limiter) {
  if (out_length != nullptr) *out_length = 0;
  if (out_length == nullptr || limiter == nullptr || (out_text == nullptr && capacity != 0))
    return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    return copy_text(tollgate::prometheus_text(*limiter->limiter), out_text, capacity, out_length);
  });
}

}  // extern "C"
