// The global bucket arithmetic, as pure functions over plain state: the InProcessStore
// runs exactly these, and the Redis Lua scripts (sdk/src/store/redis/) mirror them line by line.
// Times are nanoseconds on the store's clock. Nothing here allocates, locks or reads a clock.
//
// The admission bound rests on two rules that every policy follows:
//  1. A grant carries an expiry; tokens are spent before it or not at all.
//  2. Tokens given back keep the expiry of the lease they came from (a token bucket
//     parks them in a pool that expires with them; a window only takes them back while
//     the window they were counted in is still current). A return never creates a token
//     that could be spent later than the original grant allowed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tollgate/config.h"

namespace tollgate::core {

// What a lease request asks of one key's bucket.
struct LeaseAsk {
  std::uint64_t want = 0;  // tokens wished for (concurrency: the holder's whole reservation)
  std::uint64_t min = 1;   // fewer than this is useless: grant nothing instead
  std::int64_t ttl = 0;    // lease lifetime, ns
};

struct LeaseAnswer {
  std::uint64_t granted = 0;
  std::int64_t expires_at = 0;  // ns, store clock
  std::uint64_t remaining = 0;  // left for others after this grant
  std::int64_t wait_until = 0;  // when granted < min: when `min` should be available
  std::uint8_t limited_by = 0;  // when granted < want: 1 the key's bound, 2 the group's
};

// Token bucket: `level` refills at `rate`/s up to `burst`. Given-back tokens wait in a
// pool that keeps the earliest expiry among them; the pool is handed out first, but
// only while at least a quarter of a TTL is left on it (a shorter lease is not worth a
// round trip).
struct TokenBucketState {
  bool fresh = true;  // a new bucket starts full
  double level = 0;
  std::int64_t ts = 0;  // when `level` was last brought up to date
  std::uint64_t pool = 0;
  std::int64_t pool_expires = 0;
};

// Fixed window: `count` admissions in the window starting at `start` (aligned to
// multiples of the window length on the store's clock).
struct WindowState {
  std::int64_t start = -1;  // -1 = new
  std::uint64_t count = 0;
  std::uint64_t previous = 0;  // sliding window: the count of the window before
};

// Concurrency: each holder (instance) has an absolute reservation that lapses unless
// renewed within a TTL, so a crashed instance's permits come back by themselves.
struct ConcurrencyState {
  struct Hold {
    std::uint64_t reserved = 0;
    std::int64_t expires_at = 0;
  };
  std::map<std::string, Hold, std::less<>> holders;
};

// --- Shares (docs/quotas.md) ---------------------------------------------------------
// A token-bucket key (a tenant) in a group with a budget draws from its own bucket and the
// group's in one step; under contention its grants are paced at its fair share of the
// group's rate. With fair instances, each asking instance's grants are paced at a part of
// the key's rate proportional to its demand. Pacing uses share levels: small buckets that
// refill at the share's current rate and hold at most a quarter of a TTL of it.

// One claimant of a weighted max-min fair allocation.
struct Claim {
  double weight = 1;
  double floor = 0;    // guaranteed: allocated first (up to the demand)
  double ceiling = 0;  // its demand: it never gets more than this while capacity is short
};
// Doorman's FAIR_SHARE with weights and guarantees (water-filling): when the ceilings sum
// to more than `capacity`, each claimant gets clamp(λ·weight, floor, ceiling) for the λ that
// hands out exactly `capacity` (guarantees scaled down if even they do not fit); otherwise
// each gets its ceiling plus the spare by weight (work-conserving). out.size() == in.size().
void water_fill(double capacity, std::span<const Claim> in, std::span<double> out);

// The same, kept as the two numbers that give any claim its share, so that a claim that
// changed (or joined) since can be served without looking at the others again.
struct FairShare {
  enum Mode : std::uint8_t { kAll = 0, kLevel = 1, kGuarantees = 2 };
  Mode mode = kAll;
  double k = 0;  // kAll: spare per unit of weight; kLevel: λ; kGuarantees: scale
  double of(const Claim& c) const noexcept;
};
FairShare fair_share(double capacity, std::span<const Claim> in);

struct ShareLevel {
  double level = -1;  // < 0: new, starts full
  std::int64_t ts = 0;
};

struct InstanceRecord {  // one instance asking for a key
  double demand = 0;     // tokens per second, as it reported
  std::uint64_t held = 0;
  std::int64_t seen = 0;  // live while seen > now - ttl
  ShareLevel share;
};

struct TenantRecord {  // one key of a group, as the group sees it
  double weight = 1;
  double guaranteed = 0;
  double demand = 0;  // its instances' demand, at most its own rate
  std::int64_t seen = 0;
};

// Records by name, in name order, in one array: the order a std::map keeps (so sums over
// them add up in the same order), at a few cache lines a lookup instead of a node per
// level — a key is asked for by every instance (60 in the reference fleet).
template <typename V>
class NamedRecords {
 public:
  using value_type = std::pair<std::string, V>;
  // The record named `name`; made (value-initialised) when there is none, and then `made`.
  V& get(std::string_view name, bool& made) {
    auto it = lower_bound(name);
    made = it == records_.end() || it->first != name;
    if (made) it = records_.emplace(it, std::string(name), V{});
    return it->second;
  }
  V* find(std::string_view name) {
    auto it = lower_bound(name);
    return it == records_.end() || it->first != name ? nullptr : &it->second;
  }
  template <typename Pred>
  void erase_if(Pred pred) {
    std::erase_if(records_, pred);
  }
  auto begin() const { return records_.begin(); }
  auto end() const { return records_.end(); }
  std::size_t size() const noexcept { return records_.size(); }

 private:
  typename std::vector<value_type>::iterator lower_bound(std::string_view name) {
    return std::lower_bound(
        records_.begin(), records_.end(), name,
        [](const value_type& r, std::string_view n) { return std::string_view(r.first) < n; });
  }
  std::vector<value_type> records_;
};

// A token-bucket key with shares: its bucket, its pacing at the group's share, its instances.
struct TenantState {
  std::int64_t ttl = 0;  // of the last ask: records live this long
  TokenBucketState bucket;
  bool total_known = false;
  double demand_total = 0;  // over the instances, as of total_at plus the changes since
  std::int64_t total_at = 0;
  ShareLevel group_share;
  NamedRecords<InstanceRecord> instances;
};

struct GroupState {
  std::int64_t ttl = 0;
  TokenBucketState bucket;
  bool fair_known = false;
  FairShare fair;  // as computed at fair_at over every live tenant
  std::int64_t fair_at = 0;
  NamedRecords<TenantRecord> tenants;
};

// Instance parts that the key's own rate sets are lent beyond an instance's part from
// what its bucket holds above this fraction of its burst (the script mirrors it).
inline constexpr double kLentAbove = 0.75;

// A token-bucket lease with shares. `group` is null when the policy has no group budget.
// `tenant` names the key within its group.
LeaseAnswer lease_shared(TenantState& t, GroupState* group, const ResolvedPolicy& p,
                         std::string_view tenant, std::string_view holder, double demand,
                         std::uint64_t held, const LeaseAsk& ask, std::int64_t now);
bool idle(const TenantState& t, const ResolvedPolicy& p, std::int64_t now) noexcept;
bool idle(const GroupState& g, const ResolvedPolicy& p, std::int64_t now) noexcept;

LeaseAnswer lease_token_bucket(TokenBucketState& s, const Policy& p, const LeaseAsk& ask,
                               std::int64_t now) noexcept;
LeaseAnswer lease_fixed_window(WindowState& s, const Policy& p, const LeaseAsk& ask,
                               std::int64_t now) noexcept;
LeaseAnswer lease_sliding_window(WindowState& s, const Policy& p, const LeaseAsk& ask,
                                 std::int64_t now) noexcept;
LeaseAnswer lease_concurrency(ConcurrencyState& s, const Policy& p, std::string_view holder,
                              const LeaseAsk& ask, std::int64_t now);

// Give-backs: return the number of tokens credited (0 when the lease had expired or
// its window has passed; such tokens are simply dropped).
// A late refund (GiveBack::late): `tokens` back into the level, brought up to now first, up
// to the burst; returns what was credited.
std::uint64_t credit_token_bucket(TokenBucketState& s, const Policy& p, std::uint64_t tokens,
                                  std::int64_t now) noexcept;
std::uint64_t give_back_token_bucket(TokenBucketState& s, const Policy& p, std::uint64_t tokens,
                                     std::int64_t expires_at, std::int64_t now) noexcept;
std::uint64_t give_back_window(WindowState& s, const Policy& p, std::uint64_t tokens,
                               std::int64_t expires_at, std::int64_t now) noexcept;
std::uint64_t give_back_concurrency(ConcurrencyState& s, std::string_view holder,
                                    std::uint64_t tokens, std::int64_t now) noexcept;

// Debts (GiveBack::debt): `tokens` admitted beyond any lease, charged to the bucket. A token
// bucket's level goes below zero (refilling from there, so every later grant waits for it); a
// window counts them in its current window (over its limit: nothing more until it passes;
// a sliding window carries them into the next one's estimate).
void charge_token_bucket(TokenBucketState& s, const Policy& p, std::uint64_t tokens,
                         std::int64_t now) noexcept;
void charge_window(WindowState& s, const Policy& p, std::uint64_t tokens,
                   std::int64_t now) noexcept;
// A tenant's debt charged to its group's budget as well (a policy with a group budget): the
// group's level goes below zero, so that every tenant of the group waits for it.
void charge_group(GroupState& g, const ResolvedPolicy& p, std::uint64_t tokens,
                  std::int64_t now) noexcept;

// Sliding-window counter estimate at `now`: previous × (1 − elapsed/window) + current.
double sliding_window_estimate(const WindowState& s, const Policy& p, std::int64_t now) noexcept;

// True when nothing in the state outlives `now` (the store may forget it).
bool idle(const TokenBucketState& s, const Policy& p, std::int64_t now) noexcept;
bool idle(const WindowState& s, const Policy& p, std::int64_t now) noexcept;
bool idle(const ConcurrencyState& s, std::int64_t now) noexcept;

}  // namespace tollgate::core
