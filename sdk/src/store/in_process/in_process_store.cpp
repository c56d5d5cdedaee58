// The embedded quota store: every global bucket in one map under one mutex, running the
// arithmetic of quota/bucket_math.h. Answers inline, after unlocking.
#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>

#include "quota/bucket_math.h"
#include "tollgate/quota_store.h"

namespace tollgate {

namespace {

using BucketState = std::variant<core::TokenBucketState, core::WindowState, core::ConcurrencyState,
                                 core::TenantState>;

// A token bucket with a group budget or fair instances keeps the records shares need.
bool has_shares(const ResolvedPolicy& p) {
  return p.kind == PolicyKind::kTokenBucket && (p.has_group_budget() || p.shares_instances());
}

// Idempotency: each instance's latest request for the bucket and its answer, so that a
// retry of it (same request id) gets that answer. One per (bucket, holder), as the lease
// script keeps them (r:<holder>, docs/redis.md): the store's memory follows its buckets
// and their instances, not the leases of 2 TTL (at 60 instances x 1,000 keys and a 16 s
// TTL, about 2 M answers held before).
struct Remembered {
  std::string request_id;
  LeaseGrant grant;
  std::int64_t forget_at = 0;  // kept at least till then: max(1 s, 2 TTL) after the answer
};

struct Bucket {
  PolicyKind kind;
  BucketState state;
  std::shared_ptr<const ResolvedPolicy> policy;  // the last one seen, to tell when it is idle
  std::unordered_map<std::string, Remembered> answers;  // by holder
  std::int64_t answered_until = 0;                      // the latest forget_at of answers
  std::size_t next_prune = 64;  // answers past their time go when the map reaches this
};

// Keeps g in m (b's record of r.holder) as the answer to r, that holder's latest request.
// Answers of holders that stopped asking go once past their time, whenever the map has
// doubled.
void remember(Bucket& b, Remembered& m, const LeaseRequest& r, const LeaseGrant& g,
              std::int64_t now) {
  const std::int64_t forget_at = now + std::max<std::int64_t>(2 * r.ttl.count(), 1'000'000'000);
  m.request_id = r.request_id;
  m.grant = g;
  m.forget_at = forget_at;
  b.answered_until = std::max(b.answered_until, forget_at);
  if (b.answers.size() < b.next_prune) return;
  std::erase_if(b.answers, [now](const auto& kv) { return kv.second.forget_at <= now; });
  b.next_prune = std::max<std::size_t>(64, 2 * b.answers.size());
}

BucketState fresh_state(const ResolvedPolicy& p) {
  switch (p.kind) {
    case PolicyKind::kTokenBucket:
      if (has_shares(p)) return core::TenantState{};
      return core::TokenBucketState{};
    case PolicyKind::kFixedWindow:
    case PolicyKind::kSlidingWindow:
      return core::WindowState{};
    case PolicyKind::kConcurrency:
      return core::ConcurrencyState{};
  }
  return core::TokenBucketState{};
}

// A bucket is named by policy and key; '\0' cannot occur in a policy name, so two
// different (policy, key) pairs never share a name.
std::string bucket_name(const Policy& p, std::string_view key) {
  std::string name;
  name.reserve(p.name.size() + 1 + key.size());
  name.append(p.name).push_back('\0');
  name.append(key);
  return name;
}

}  // namespace

struct InProcessStore::State {
  std::shared_ptr<const Clock> clock;
  mutable std::mutex mu;
  std::unordered_map<std::string, Bucket> buckets;
  struct Group {
    core::GroupState state;
    std::shared_ptr<const ResolvedPolicy> policy;  // the last one seen, for its budget
  };
  std::unordered_map<std::string, Group> groups;
  std::size_t next_sweep = 1024;
  Totals totals;

  Bucket& bucket(const std::shared_ptr<const ResolvedPolicy>& p, std::string_view key) {
    auto [it, inserted] = buckets.try_emplace(bucket_name(*p, key));
    if (inserted || it->second.kind != p->kind ||
        has_shares(*p) != std::holds_alternative<core::TenantState>(it->second.state)) {
      it->second.kind = p->kind;
      it->second.state = fresh_state(*p);
    }
    it->second.policy = p;
    return it->second;
  }

  // The answer to r for bucket b (r.policy's bucket of r.key).
  LeaseGrant decide(const LeaseRequest& r, Bucket& b, std::int64_t now) {
    LeaseGrant g;
    g.now = Nanos{now};
    const ResolvedPolicy& p = *r.policy;
    core::LeaseAsk ask{r.want, r.min, r.ttl.count()};
    core::LeaseAnswer a;
    switch (p.kind) {
      case PolicyKind::kTokenBucket:
        if (auto* t = std::get_if<core::TenantState>(&b.state)) {
          core::GroupState* group = nullptr;
          if (p.has_group_budget()) {
            Group& gr = groups[p.group];
            gr.policy = r.policy;
            group = &gr.state;
          }
          a = core::lease_shared(*t, group, p, bucket_name(p, r.key), r.holder, r.demand, r.held,
                                 ask, now);
        } else {
          a = core::lease_token_bucket(std::get<core::TokenBucketState>(b.state), p, ask, now);
        }
        break;
      case PolicyKind::kFixedWindow:
        a = core::lease_fixed_window(std::get<core::WindowState>(b.state), p, ask, now);
        break;
      case PolicyKind::kSlidingWindow:
        a = core::lease_sliding_window(std::get<core::WindowState>(b.state), p, ask, now);
        break;
      case PolicyKind::kConcurrency:
        a = core::lease_concurrency(std::get<core::ConcurrencyState>(b.state), p, r.holder, ask,
                                    now);
        break;
    }
    g.granted = a.granted;
    g.expires_at = Nanos{a.expires_at};
    g.remaining = a.remaining;
    g.wait_until = Nanos{a.wait_until};
    g.limited_by = static_cast<LimitLevel>(a.limited_by);
    return g;
  }

  // A debt (GiveBack::debt) charged to the key's bucket, made if it has none yet, and to
  // its group's budget when it has one.
  void charge(const GiveBack& gb, std::int64_t now) {
    const ResolvedPolicy& p = *gb.policy;
    Bucket& b = bucket(gb.policy, gb.key);
    if (auto* t = std::get_if<core::TenantState>(&b.state)) {
      core::charge_token_bucket(t->bucket, p, gb.tokens, now);
      if (p.has_group_budget()) {
        Group& gr = groups[p.group];
        gr.policy = gb.policy;
        core::charge_group(gr.state, p, gb.tokens, now);
      }
    } else if (auto* tb = std::get_if<core::TokenBucketState>(&b.state)) {
      core::charge_token_bucket(*tb, p, gb.tokens, now);
    } else if (auto* w = std::get_if<core::WindowState>(&b.state)) {
      core::charge_window(*w, p, gb.tokens, now);
    } else {
      return;  // permits are never owed
    }
    totals.debt_charged += gb.tokens;
  }

  // A bucket is idle when its state is as a new one's and no answer of it must be kept.
  static bool is_idle(const Bucket& b, std::int64_t now) {
    if (now < b.answered_until) return false;
    return std::visit(
        [&](const auto& s) {
          using S = std::decay_t<decltype(s)>;
          if constexpr (std::is_same_v<S, core::ConcurrencyState>) {
            return core::idle(s, now);
          } else {
            return core::idle(s, *b.policy, now);
          }
        },
        b.state);
  }

  // Forgets idle buckets (an idle bucket is indistinguishable from a new one) whenever the
  // map has doubled since the last sweep, so the store's memory follows the live keys at
  // amortised O(1) per call and without a thread of its own — the way Redis lets such keys
  // expire.
  void purge(std::int64_t now) {
    if (buckets.size() < next_sweep) return;
    std::erase_if(buckets, [now](const auto& kv) { return is_idle(kv.second, now); });
    std::erase_if(groups, [now](const auto& kv) {
      return core::idle(kv.second.state, *kv.second.policy, now);
    });
    next_sweep = std::max<std::size_t>(1024, 2 * buckets.size());
  }
};

InProcessStore::InProcessStore(std::shared_ptr<const Clock> clock)
    : state_(std::make_unique<State>()) {
  state_->clock = clock ? std::move(clock) : SteadyClock::shared();
}

InProcessStore::~InProcessStore() = default;

void InProcessStore::lease(std::vector<LeaseRequest> batch, LeaseCallback done) {
  std::vector<LeaseGrant> grants;
  grants.reserve(batch.size());
  {
    std::lock_guard lk(state_->mu);
    const std::int64_t now = state_->clock->now().count();
    state_->purge(now);
    for (const LeaseRequest& r : batch) {
      if (!r.policy) {
        LeaseGrant g;
        g.now = Nanos{now};
        g.ok = false;
        g.error = "lease request without a policy";
        grants.push_back(std::move(g));
        continue;
      }
      Bucket& b = state_->bucket(r.policy, r.key);
      // The holder's record, looked up once (made empty for a new holder: no id matches it).
      Remembered* held = nullptr;
      if (!r.request_id.empty()) {
        held = &b.answers.try_emplace(r.holder).first->second;
        if (held->request_id == r.request_id && now < held->forget_at) {
          grants.push_back(held->grant);
          continue;
        }
      }
      LeaseGrant g = state_->decide(r, b, now);
      ++state_->totals.leases;
      state_->totals.granted += g.granted;
      if (held != nullptr) remember(b, *held, r, g, now);
      grants.push_back(std::move(g));
    }
  }
  done(std::move(grants));
}

void InProcessStore::give_back(std::vector<GiveBack> batch) {
  std::lock_guard lk(state_->mu);
  const std::int64_t now = state_->clock->now().count();
  for (const GiveBack& gb : batch) {
    if (!gb.policy || gb.tokens == 0) continue;
    const Policy& p = *gb.policy;
    if (gb.debt) {
      state_->charge(gb, now);
      continue;
    }
    auto it = state_->buckets.find(bucket_name(p, gb.key));
    std::uint64_t credited = 0;
    if (it != state_->buckets.end() && it->second.kind == p.kind) {
      auto& s = it->second.state;
      switch (p.kind) {
        case PolicyKind::kTokenBucket: {
          auto* t = std::get_if<core::TenantState>(&s);
          auto& bucket = t != nullptr ? t->bucket : std::get<core::TokenBucketState>(s);
          credited = gb.late ? core::credit_token_bucket(bucket, p, gb.tokens, now)
                             : core::give_back_token_bucket(bucket, p, gb.tokens,
                                                            gb.expires_at.count(), now);
          break;
        }
        case PolicyKind::kFixedWindow:
        case PolicyKind::kSlidingWindow:
          if (gb.late) break;
          credited = core::give_back_window(std::get<core::WindowState>(s), p, gb.tokens,
                                            gb.expires_at.count(), now);
          break;
        case PolicyKind::kConcurrency:
          if (gb.late) break;
          credited = core::give_back_concurrency(std::get<core::ConcurrencyState>(s), gb.holder,
                                                 gb.tokens, now);
          break;
      }
    }
    state_->totals.given_back += credited;
    state_->totals.dropped += gb.tokens - credited;
  }
}

InProcessStore::Totals InProcessStore::totals() const {
  std::lock_guard lk(state_->mu);
  Totals t = state_->totals;
  t.keys = state_->buckets.size();
  for (const auto& [name, b] : state_->buckets) t.answers += b.answers.size();
  return t;
}

}  // namespace tollgate
