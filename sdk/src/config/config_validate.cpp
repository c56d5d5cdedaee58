// Config::validate(): the value rules, for a Config from JSON and one built in code alike.
// Every error names its field as the JSON form spells it ("policies[2].rate").
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <unordered_map>

#include "config/config_rules.h"
#include "config/json_reader.h"
#include "config/store_sections.h"
#include "tollgate/config.h"

namespace tollgate {

namespace core {

constexpr double kMaxTokens = 9007199254740992.0;  // 2^53

void check_duration(const std::string& field, Nanos d, bool positive) {
  if (d.count() < 0) json::fail(field, "must not be negative");
  if (positive && d.count() == 0) json::fail(field, "must be > 0");
  if (d > json::kMaxDuration) json::fail(field, std::string(json::kDurationTooLarge));
}

void check_tokens(const std::string& field, double v) {
  if (!std::isfinite(v)) json::fail(field, "must be a finite number");
  if (v > kMaxTokens) json::fail(field, "must be <= 2^53");
}

}  // namespace core

namespace {

using namespace core::json;
using core::check_duration;
using core::check_tokens;
using core::is_window;

// Bounds that are not in the header. Token counts stay exactly representable as doubles
// (the Redis scripts count in Lua numbers, which are doubles).
constexpr std::uint64_t kMaxTokensInt = 9007199254740992ull;  // 2^53
constexpr std::size_t kMaxPolicies = 65535;                   // policies are indexed by 16 bits
constexpr std::size_t kMaxKeys = 100'000'000;
constexpr std::size_t kMaxKeyLength = 65535;  // Entry::key_len is 16 bits
constexpr std::size_t kMaxWaitersPerKey = 1'000'000;
constexpr std::size_t kMaxInstanceIdLength = 256;

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::string ms_text(Nanos d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

bool known_kind(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kTokenBucket:
    case PolicyKind::kFixedWindow:
    case PolicyKind::kSlidingWindow:
    case PolicyKind::kConcurrency:
      return true;
  }
  return false;
}

void validate_policy(const Policy& p, const std::string& path, std::size_t max_key_length) {
  const auto field = [&](std::string_view k) { return join(path, k); };
  if (p.match.empty()) fail(field("match"), "must not be empty");
  if (p.group.size() > max_key_length) {
    fail(field("group"), "longer than max_key_length (" + std::to_string(max_key_length) + ")");
  }
  const auto star = p.match.find('*');
  if (star != std::string::npos && star + 1 != p.match.size()) {
    fail(field("match"), "'*' may only be the last character");
  }
  // Longer keys are refused (invalid_argument), so such a policy could never apply.
  if (std::min(star, p.match.size()) > max_key_length) {
    fail(field("match"), "longer than max_key_length (" + std::to_string(max_key_length) +
                             "), so no key could match");
  }
  if (!known_kind(p.kind)) fail(field("type"), "unknown policy type");
  const std::string kind(to_string(p.kind));

  if (p.kind == PolicyKind::kTokenBucket) {
    check_tokens(field("rate"), p.rate);
    if (!(p.rate > 0)) fail(field("rate"), "must be > 0");
    check_tokens(field("burst"), p.burst);
    if (p.burst < 0) fail(field("burst"), "must not be negative");
    if (p.burst != 0 && p.burst < 1) {
      fail(field("burst"), "must be >= 1 (or 0 for one second of rate)");
    }
    if (p.effective_burst() < 1) {
      fail(field("rate"), "must be >= 1 when burst is 0 (a bucket must hold one token)");
    }
    if (p.limit != 0) fail(field("limit"), "not used by token_bucket (it takes rate and burst)");
    if (p.window.count() != 0) {
      fail(field("window_ms"), "not used by token_bucket (it takes rate and burst)");
    }
  } else {
    const std::string uses = is_window(p.kind) ? "limit and window_ms" : "limit";
    if (p.rate != 0) fail(field("rate"), "not used by " + kind + " (it takes " + uses + ")");
    if (p.burst != 0) fail(field("burst"), "not used by " + kind + " (it takes " + uses + ")");
    if (p.limit < 1) fail(field("limit"), "must be >= 1");
    if (p.limit > kMaxTokensInt) fail(field("limit"), "must be <= 2^53");
    if (p.kind == PolicyKind::kConcurrency && p.limit > (1ull << 30)) {
      fail(field("limit"), "must be <= 2^30 for concurrency (permits are counted in 32 bits)");
    }
    if (is_window(p.kind)) {
      check_duration(field("window_ms"), p.window, true);
    } else if (p.window.count() != 0) {
      fail(field("window_ms"), "not used by concurrency (it takes limit)");
    }
  }

  const PenaltyBox& box = p.penalty_box;
  check_duration(field("penalty_box.within_ms"), box.within, box.enabled());
  check_duration(field("penalty_box.duration_ms"), box.duration, box.enabled());

  const Fallback& fb = p.fallback;
  if (fb.mode != FallbackMode::kLocal && fb.mode != FallbackMode::kDeny &&
      fb.mode != FallbackMode::kAllow) {
    fail(field("fallback.mode"), "unknown mode");
  }
  check_tokens(field("fallback.rate"), fb.rate);
  if (fb.rate < 0) fail(field("fallback.rate"), "must not be negative (0: the default)");
  check_tokens(field("fallback.burst"), fb.burst);
  if (fb.burst < 0) fail(field("fallback.burst"), "must not be negative (0: the default)");
  if (fb.burst != 0 && fb.burst < 1) fail(field("fallback.burst"), "must be >= 1 (or 0)");

  check_tokens(field("weight"), p.weight);
  if (!(p.weight > 0)) fail(field("weight"), "must be > 0");
  check_tokens(field("guaranteed_rate"), p.guaranteed_rate);
  if (p.guaranteed_rate < 0) fail(field("guaranteed_rate"), "must not be negative");
  if (p.fair_instances.value_or(false) && p.kind != PolicyKind::kTokenBucket) {
    fail(field("fair_instances"), "only for token_bucket (type is " + kind + ")");
  }
  if (p.max_overage && p.kind == PolicyKind::kConcurrency) {
    fail(field("max_overage"), "not used by concurrency (permits are not reserved)");
  }
  if (p.max_overage && *p.max_overage > std::numeric_limits<std::uint32_t>::max()) {
    fail(field("max_overage"), "must be <= 4294967295 (a key's debt is counted in 32 bits)");
  }
}

// The rules between a policy and the group it names (Config::groups).
void validate_shares(const Policy& p, const std::string& path, const Group* group) {
  const auto field = [&](std::string_view k) { return join(path, k); };
  if (group == nullptr) {
    if (p.weight != 1) {
      fail(field("weight"), "only used in a group with a budget (groups[] has no " +
                                in_quotes(p.group.empty() ? "group" : p.group) + ")");
    }
    if (p.guaranteed_rate != 0) {
      fail(field("guaranteed_rate"), "only used in a group with a budget (groups[] has no " +
                                         in_quotes(p.group.empty() ? "group" : p.group) + ")");
    }
    return;
  }
  if (p.kind != PolicyKind::kTokenBucket) {
    fail(field("type"), "group " + in_quotes(group->name) +
                            " has a budget, which takes token_bucket policies only (type is " +
                            std::string(to_string(p.kind)) + ")");
  }
  if (p.guaranteed_rate > group->rate) {
    fail(field("guaranteed_rate"),
         "must be <= the group's rate (" + number_text(group->rate) + ")");
  }
}

}  // namespace

void Config::validate() const {
  if (instance_id.size() > kMaxInstanceIdLength) {
    fail("instance_id", "must be at most " + std::to_string(kMaxInstanceIdLength) + " bytes");
  }
  for (unsigned char ch : instance_id) {
    if (ch < 0x20 || ch == 0x7f) fail("instance_id", "must not contain control characters");
  }
  if (max_keys < 1) fail("max_keys", "must be >= 1");
  if (max_keys > kMaxKeys) fail("max_keys", "must be <= " + std::to_string(kMaxKeys));
  if (max_key_length < 1) fail("max_key_length", "must be >= 1");
  if (max_key_length > kMaxKeyLength) {
    fail("max_key_length", "must be <= " + std::to_string(kMaxKeyLength));
  }
  if (max_waiters_per_key > kMaxWaitersPerKey) {
    fail("max_waiters_per_key", "must be <= " + std::to_string(kMaxWaitersPerKey));
  }
  check_duration("idle_timeout_ms", idle_timeout, true);

  check_duration("leases.ttl_ms", leases.ttl, true);
  check_duration("leases.horizon_ms", leases.horizon, true);
  check_duration("leases.refresh_ms", leases.refresh, false);
  check_duration("leases.overdue_floor_ms", leases.overdue_floor, false);
  if (!(leases.max_fraction > 0 && leases.max_fraction <= 1)) {
    fail("leases.max_fraction", "must be > 0 and <= 1");
  }
  if (leases.min_tokens < 1) fail("leases.min_tokens", "must be >= 1");
  if (leases.min_tokens > kMaxTokensInt) fail("leases.min_tokens", "must be <= 2^53");
  check_duration("leases.expiry_margin_ms", leases.expiry_margin, false);
  if (leases.expiry_margin * 2 >= leases.ttl) {
    fail("leases.expiry_margin_ms", "must be < ttl_ms / 2 (ttl_ms is " + ms_text(leases.ttl) + ")");
  }

  if (cold_keys.mode != ColdKeyMode::kDeny && cold_keys.mode != ColdKeyMode::kOptimistic) {
    fail("cold_keys.mode", "unknown mode (expected deny or optimistic)");
  }
  if (cold_keys.mode == ColdKeyMode::kDeny && cold_keys.allowance != 0) {
    fail("cold_keys.allowance", "only used with mode \"optimistic\" (mode is \"" +
                                    std::string(to_string(cold_keys.mode)) + "\")");
  }
  if (cold_keys.mode == ColdKeyMode::kOptimistic && cold_keys.allowance < 1) {
    fail("cold_keys.allowance", "must be >= 1 with mode \"optimistic\"");
  }
  if (cold_keys.allowance > std::numeric_limits<std::uint32_t>::max()) {
    fail("cold_keys.allowance", "must be <= 4294967295");
  }

  const core::StoreSection* section = nullptr;
  std::string types;
  for (const core::StoreSection& s : core::store_sections()) {
    if (s.type == store.type) section = &s;
    types += (types.empty() ? "" : " or ") + std::string(s.type);
  }
  if (section == nullptr) {
    fail("store.type", "unknown store type " + in_quotes(store.type) + " (expected " + types + ")");
  }
  section->validate(store);

  if (policies.empty()) fail("policies", "must not be empty");
  if (policies.size() > kMaxPolicies) {
    fail("policies", "at most " + std::to_string(kMaxPolicies) + " policies");
  }
  std::unordered_map<std::string_view, const Group*> budgets;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const Group& g = groups[i];
    const std::string path = indexed("groups", i);
    if (g.name.empty()) fail(join(path, "name"), "must not be empty");
    if (g.name.size() > max_key_length) {
      fail(join(path, "name"),
           "longer than max_key_length (" + std::to_string(max_key_length) + ")");
    }
    if (!budgets.emplace(g.name, &g).second) {
      fail(join(path, "name"), in_quotes(g.name) + " is defined twice");
    }
    check_tokens(join(path, "rate"), g.rate);
    if (!(g.rate > 0)) fail(join(path, "rate"), "must be > 0");
    check_tokens(join(path, "burst"), g.burst);
    if (g.burst < 0) fail(join(path, "burst"), "must not be negative");
    if (g.burst != 0 && g.burst < 1) fail(join(path, "burst"), "must be >= 1 (or 0)");
    if (g.effective_burst() < 1) {
      fail(join(path, "rate"), "must be >= 1 when burst is 0 (a bucket must hold one token)");
    }
  }
  std::unordered_map<std::string_view, std::size_t> matches;
  std::unordered_map<std::string_view, std::size_t> names;
  for (std::size_t i = 0; i < policies.size(); ++i) {
    const Policy& p = policies[i];
    const std::string path = indexed("policies", i);
    validate_policy(p, path, max_key_length);
    const auto budget = p.group.empty() ? budgets.end() : budgets.find(p.group);
    validate_shares(p, path, budget == budgets.end() ? nullptr : budget->second);
    if (auto [it, fresh] = matches.emplace(p.match, i); !fresh) {
      fail(join(path, "match"),
           in_quotes(p.match) + " is already matched by " + indexed("policies", it->second));
    }
    const std::string_view name = p.name.empty() ? std::string_view(p.match) : p.name;
    if (auto [it, fresh] = names.emplace(name, i); !fresh) {
      fail(join(path, "name"),
           in_quotes(name) + " is already used by " + indexed("policies", it->second));
    }
  }
}

}  // namespace tollgate
