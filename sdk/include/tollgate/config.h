#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tollgate/breaker_config.h"
#include "tollgate/clock.h"
#include "tollgate/export.h"

namespace tollgate {

enum class PolicyKind : std::uint8_t {
  kTokenBucket = 0,    // rate tokens/s, up to burst at once
  kFixedWindow = 1,    // limit per window, windows aligned to the store's clock
  kSlidingWindow = 2,  // sliding-window counter: previous window weighted by overlap
  kConcurrency = 3,    // limit permits held at once; release returns them
};
TOLLGATE_API std::string_view to_string(PolicyKind kind) noexcept;

// A key denied `denials` times within `within` is refused for `duration` without
// asking the store. Disabled when denials == 0.
struct PenaltyBox {
  std::uint32_t denials = 0;
  Nanos within{0};
  Nanos duration{0};
  bool enabled() const noexcept { return denials > 0; }
  friend bool operator==(const PenaltyBox&, const PenaltyBox&) = default;
};

// What a key decides while its shard is unavailable (store failing, breaker open) and
// its lease is spent or expired (docs/resilience.md).
enum class FallbackMode : std::uint8_t {
  kLocal = 0,  // a local token bucket per key: rate and burst below (concurrency: as deny)
  kDeny = 1,   // refuse (reason fallback_deny)
  kAllow = 2,  // admit everything (reason fallback_allow): no bound while the shard is out
};
TOLLGATE_API std::string_view to_string(FallbackMode mode) noexcept;

struct Fallback {
  FallbackMode mode = FallbackMode::kLocal;
  // 0 (the default), with rate and burst 0: share mode — each instance's local bucket runs
  // at the share of the key's rate it was last granted (an EWMA over kShareTauSeconds of
  // its grants, at most the policy's rate; burst one second of it), so that the instances'
  // buckets sum to about the quota whatever their number. A key this instance was never
  // granted has no share: it is refused (fallback_local) until the shard answers.
  // N >= 1: a static bucket of the policy's refill rate and capacity divided by N.
  std::uint32_t instances = 0;
  double rate = 0;   // tokens per second of the local bucket; 0: refill rate / instances
  double burst = 0;  // most tokens at once; 0: capacity / instances (at least 1)
  static constexpr double kShareTauSeconds = 2.0;
  bool share() const noexcept { return instances == 0 && rate <= 0 && burst <= 0; }
  friend bool operator==(const Fallback&, const Fallback&) = default;
};

// A budget shared by every key (tenant) of the policies that name the group
// (docs/quotas.md). A token bucket: the group as a whole never gets more than burst plus
// rate per second, and under contention each tenant gets its fair share of it.
struct Group {
  std::string name;
  double rate = 0;   // tokens per second for the whole group
  double burst = 0;  // most tokens at once; 0 means one second of rate
  TOLLGATE_API double effective_burst() const noexcept;
};

struct Policy {
  std::string name;   // defaults to `match`
  std::string match;  // "tenant:*" matches by prefix, anything else exactly; "*" matches all
  // Keys of one group share a Redis shard and one hash slot. When Config::groups names the
  // group, they also share its budget. Empty: each key is its own group.
  std::string group;
  PolicyKind kind = PolicyKind::kTokenBucket;
  double rate = 0;          // token bucket: tokens per second
  double burst = 0;         // token bucket: most tokens at once; 0 means one second of rate
  std::uint64_t limit = 0;  // windows: admissions per window; concurrency: permits
  Nanos window{0};          // fixed and sliding windows
  PenaltyBox penalty_box;
  Fallback fallback;
  // In a group with a budget: each key (tenant) of this policy weighs `weight` when the
  // group's rate is shared out, and gets at least `guaranteed_rate` tokens per second
  // when it wants them (docs/quotas.md).
  double weight = 1;
  double guaranteed_rate = 0;
  // Under scarcity a key's refill is split among the instances asking in proportion to
  // their demand, instead of first come, first served. Token buckets only; unset: on for
  // every token bucket (false turns it off).
  std::optional<bool> fair_instances;
  // Shadow mode (envoyproxy/ratelimit's shadow_mode): decisions are computed, counted and
  // reported as if enforced, but always admit. A decision that would have denied admits with
  // the reason it would have denied with (Stats::shadow_admitted counts them).
  bool shadow = false;
  // Reservations (Limiter::reserve): settling charges at most estimate + max_overage; the
  // rest of an actual cost above that is reported (Settlement::uncharged), not charged. It
  // bounds the debt one reservation can leave (docs/architecture.md, "The bound"). Unset:
  // the policy's capacity. Token buckets and windows only; at most 2^32 - 1.
  std::optional<std::uint64_t> max_overage;

  // The most a settle may charge beyond a reservation's estimate (max_overage, defaulted).
  std::uint64_t overage_cap() const noexcept { return max_overage.value_or(capacity()); }
  // The most one acquire may cost: burst for a bucket, limit otherwise.
  TOLLGATE_API std::uint64_t capacity() const noexcept;
  TOLLGATE_API double effective_burst() const noexcept;
  // Tokens per second the global quota refills at: rate, or limit per window.
  TOLLGATE_API double refill_per_second() const noexcept;
  // The local fallback bucket's rate and burst, defaults applied.
  TOLLGATE_API double fallback_rate() const noexcept;
  TOLLGATE_API double fallback_burst() const noexcept;
  // The most `instances` instances' local buckets admit together for one key over an
  // outage of `seconds` (docs/resilience.md, "The declared fallback allowance"): share
  // mode (rate + burst / kShareTauSeconds) x (seconds + 1 s), whatever `instances`;
  // static mode instances x (fallback_burst + fallback_rate x seconds).
  TOLLGATE_API double fallback_allowance(double seconds, std::uint32_t instances) const noexcept;
  friend bool operator==(const Policy&, const Policy&) = default;
};

// A policy as the stores are given it (LeaseRequest::policy): the Policy of the config and
// what is derived for it from the rest of the config (Config::resolved_policies()).
struct ResolvedPolicy : Policy {
  // The budget of `group` from Config::groups; group_rate 0: no group budget.
  double group_rate = 0;
  double group_burst = 0;

  bool has_group_budget() const noexcept { return group_rate > 0; }
  double effective_group_burst() const noexcept {
    return group_burst > 0 ? group_burst : group_rate;
  }
  // Whether instances get proportional parts under scarcity (fair_instances, default applied:
  // on for every token bucket).
  bool shares_instances() const noexcept {
    return kind == PolicyKind::kTokenBucket && fair_instances.value_or(true);
  }
  // Equal policies decide alike: a key keeps its leases across an update that leaves its
  // policy equal (Limiter::update).
  friend bool operator==(const ResolvedPolicy&, const ResolvedPolicy&) = default;
};

enum class ColdKeyMode : std::uint8_t {
  kDeny = 0,        // try_acquire on a key without a lease is denied (reason cold_key)
  kOptimistic = 1,  // admit up to `allowance` tokens; the first lease pays them back
};

TOLLGATE_API std::string_view to_string(ColdKeyMode mode) noexcept;

struct ColdKeys {
  ColdKeyMode mode = ColdKeyMode::kDeny;
  std::uint64_t allowance = 0;
};

// Defaults sized for the reference fleet (60 instances, 7 shards, 1,000 tenants;
// docs/architecture.md "Lease size and when to refill"): a grant lasts about two refresh
// periods of the key's local demand, each instance calls a shard at most once per refresh
// period for refills that can wait, and the bound is burst + rate x (T + ttl).
struct LeaseOptions {
  Nanos ttl =
      std::chrono::seconds{16};  // tokens of a lease expire this long after the store granted them
  Nanos horizon =
      std::chrono::seconds{4};  // a lease covers about this much of the key's local spending
  double max_fraction = 0.5;    // and never more than this fraction of the policy's capacity
  std::uint64_t min_tokens = 1;
  Nanos expiry_margin =
      std::chrono::milliseconds{20};  // local expiry comes this much before the store's
  // Refills that can wait (a balance still above its need, a key paced by scarcity, a cold
  // key nobody waits for) go to a shard at most once per this period, all in one call;
  // a key with waiters, or whose shard is failing, is sent at once.
  Nanos refresh = std::chrono::seconds{2};
  // A refill unanswered for longer than 4 x its shard's p99 lease round trip (of 128 calls in
  // 10 s; of fewer, 8 x their median and >= 30 ms), and at least this long, is overdue: the key
  // decides by its fallback till the answer comes (docs/resilience.md). 0: only a failed call.
  Nanos overdue_floor = std::chrono::milliseconds{20};
};

// Per Redis shard: at most max_in_flight lease requests (keys) on the wire, at most
// max_queue waiting behind them; beyond that a key is refused at once ("bulkhead full").
struct BulkheadConfig {
  std::size_t max_in_flight = 4096;
  std::size_t max_queue = 16384;
  friend bool operator==(const BulkheadConfig&, const BulkheadConfig&) = default;
};

struct StoreConfig {
  std::string type = "in_process";  // or "redis", "redis_cluster"
  // redis: one URL per shard, redis://[user:pass@]host:port[/db] or rediss://…
  std::vector<std::string> shards;
  // redis_cluster: some of the cluster's nodes, redis://[user:pass@]host:port or
  // rediss://…; the rest are discovered (the first node's scheme and user apply to all)
  std::vector<std::string> nodes;
  // redis, redis_cluster: > 0 pipelines WAIT <wait_replicas> <wait_timeout> after each
  // batch of leases; a grant that many replicas do not have in time is not used
  unsigned wait_replicas = 0;
  Nanos wait_timeout = std::chrono::milliseconds{50};
  Nanos connect_timeout = std::chrono::milliseconds{500};
  Nanos command_timeout = std::chrono::milliseconds{500};
  std::string tls_ca_file;  // rediss://: PEM file of the CAs to trust; empty: the system's
  BreakerConfig breaker;    // one breaker per shard
  BulkheadConfig bulkhead;  // one bulkhead per shard
  friend bool operator==(const StoreConfig&, const StoreConfig&) = default;
};

// Immutable once given to a Limiter (it keeps a shared_ptr<const Config>); Limiter::update
// swaps in another one.
struct Config {
  std::vector<Policy> policies;
  std::vector<Group> groups;  // budgets that policies name by `group`
  LeaseOptions leases;
  ColdKeys cold_keys;
  StoreConfig store;
  std::size_t max_keys = 100'000;
  std::size_t max_key_length = 512;
  std::size_t max_waiters_per_key = 1024;
  Nanos idle_timeout = std::chrono::seconds{60};
  std::string instance_id;  // empty: host-pid-random, chosen at start

  // Parses the JSON form (docs/configuration.md) and validates it.
  // Throws ConfigError naming the field: "policies[2].rate: must be > 0".
  TOLLGATE_API static Config from_json(std::string_view json);
  TOLLGATE_API static Config from_json_file(const std::string& path);
  // Throws ConfigError for the first invalid field.
  TOLLGATE_API void validate() const;
  // The policies with their group's budget filled in (ResolvedPolicy::group_rate, group_burst).
  TOLLGATE_API std::vector<ResolvedPolicy> resolved_policies() const;
};

class TOLLGATE_API ConfigError : public std::invalid_argument {
 public:
  ConfigError(std::string field, std::string reason);
  const std::string& field() const noexcept { return field_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string field_;
  std::string reason_;
};

}  // namespace tollgate
