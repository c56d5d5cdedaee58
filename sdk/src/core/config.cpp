// Config: the JSON form (docs/configuration.md), its parser and the validation rules.
// Parsing checks shape (types, unknown fields, fields a policy type must or must not
// have); validate() checks values, so a Config built in code obeys the same rules.
#include "tollgate/config.h"

#include "core/shard_url.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace tollgate {

namespace {

using Json = nlohmann::json;

// Bounds that are not in the header. Durations: the key table keeps time in 32-bit
// milliseconds (core/entry.h), so no interval may come near 2^31 ms (~24.8 days).
constexpr std::uint64_t kMaxDurationMs = 7ull * 24 * 3600 * 1000;  // 7 days
constexpr Nanos kMaxDuration = std::chrono::milliseconds(kMaxDurationMs);
constexpr std::string_view kDurationTooLarge = "must be <= 604800000 (7 days)";
// Token counts stay exactly representable as doubles (the Redis scripts count in Lua
// numbers, which are doubles).
constexpr double kMaxTokens = 9007199254740992.0;  // 2^53
constexpr std::uint64_t kMaxTokensInt = 9007199254740992ull;
constexpr std::size_t kMaxPolicies = 65535;  // policies are indexed by 16 bits
constexpr std::size_t kMaxKeys = 100'000'000;
constexpr std::size_t kMaxKeyLength = 65535;  // Entry::key_len is 16 bits
constexpr std::size_t kMaxWaitersPerKey = 1'000'000;
constexpr std::size_t kMaxInstanceIdLength = 256;
constexpr std::size_t kMaxJsonDepth = 32;
constexpr std::uintmax_t kMaxConfigFileBytes = 16u << 20;

// Store types known to this build. A new store adds its name here and its fields in
// parse_store().
constexpr std::array<std::string_view, 2> kStoreTypes = {"in_process", "redis"};
constexpr std::size_t kMaxShards = 1024;

[[noreturn]] void fail(std::string field, std::string reason) {
  throw ConfigError(std::move(field), std::move(reason));
}

std::string in_quotes(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out += '"';
  return out;
}

std::string join(std::string_view parent, std::string_view child) {
  if (parent.empty()) return std::string(child);
  std::string out(parent);
  out += '.';
  out.append(child);
  return out;
}

std::string indexed(std::string_view parent, std::size_t i) {
  return std::string(parent) + "[" + std::to_string(i) + "]";
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::string ms_text(Nanos d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

std::string_view to_string(ColdKeyMode mode) noexcept {
  switch (mode) {
    case ColdKeyMode::kDeny:
      return "deny";
    case ColdKeyMode::kOptimistic:
      return "optimistic";
  }
  return "unknown";
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

bool is_window(PolicyKind kind) {
  return kind == PolicyKind::kFixedWindow || kind == PolicyKind::kSlidingWindow;
}

// ---------------------------------------------------------------------------------------
// Syntax pass. nlohmann keeps the last of duplicate keys silently; here a duplicate key
// is an error (`{"rate": 1, "rate": 1000}` is a typo, not a choice). It also bounds
// nesting and reports malformed input with the parser's message and byte offset.

class SyntaxCheck final : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }

  bool start_object(std::size_t) override { return open(false); }
  bool key(string_t& k) override {
    Frame& f = frames_.back();
    if (!f.keys.insert(k).second) {
      error_ = {join(path(frames_.size() - 1), k), "duplicate key"};
      return false;
    }
    f.key = k;
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(true); }
  bool end_array() override { return close(); }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::json::exception& ex) override {
    std::string message = ex.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep the rest.
    if (!message.empty() && message.front() == '[') {
      if (auto end = message.find("] "); end != std::string::npos) message.erase(0, end + 2);
    }
    error_ = {"$", "invalid JSON at byte " + std::to_string(position) + ": " + message};
    return false;
  }

  // Throws the first error found, if any.
  void check(std::string_view text) {
    const bool ok = Json::sax_parse(text, this);
    if (!ok || !error_.first.empty()) {
      if (error_.first.empty()) error_ = {"$", "invalid JSON"};
      fail(error_.first, error_.second);
    }
  }

 private:
  struct Frame {
    bool array = false;
    std::size_t next_index = 0;  // arrays: index of the next element
    std::string key;             // objects: the key being read
    std::unordered_set<std::string> keys;
  };

  // Marks the start of a value inside the innermost array.
  void element() {
    if (!frames_.empty() && frames_.back().array)
      frames_.back().key = std::to_string(frames_.back().next_index++);
  }
  bool value() {
    element();
    return true;
  }
  bool open(bool array) {
    element();
    if (frames_.size() >= kMaxJsonDepth) {
      error_ = {or_root(path(frames_.size())),
                "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
      return false;
    }
    frames_.push_back(Frame{array, 0, {}, {}});
    return true;
  }
  bool close() {
    frames_.pop_back();
    return true;
  }
  // Path through the first n open containers, in the form of the error messages; the
  // innermost open container is path(frames_.size() - 1), a child it is reading path(size).
  std::string path(std::size_t n) const {
    std::string out;
    for (std::size_t i = 0; i < n && i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      out = f.array ? out + "[" + f.key + "]" : join(out, f.key);
    }
    return out;
  }
  static std::string or_root(std::string p) { return p.empty() || p[0] == '[' ? "$" + p : p; }

  std::vector<Frame> frames_;
  std::pair<std::string, std::string> error_;
};

// ---------------------------------------------------------------------------------------
// Shape pass: JSON values to Config fields.

// An object being read: rejects fields it does not know, reads the ones it does.
class Fields {
 public:
  Fields(const Json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) fail(path_.empty() ? "$" : path_, "expected an object");
  }

  // Every field present must be one of `known`.
  void allow_only(std::initializer_list<std::string_view> known) const {
    for (const auto& [k, v] : j_.items()) {
      if (std::find(known.begin(), known.end(), k) == known.end()) {
        fail(join(path_, k), "unknown field");
      }
    }
  }

  bool has(std::string_view k) const { return j_.contains(k); }
  const Json& at(std::string_view k) const { return j_.at(std::string(k)); }
  std::string path(std::string_view k) const { return join(path_, k); }

  void read(std::string_view k, std::string& out) const {
    if (!has(k)) return;
    const Json& v = at(k);
    if (!v.is_string()) fail(path(k), "expected a string");
    out = v.get<std::string>();
  }

  void read(std::string_view k, double& out) const {
    if (!has(k)) return;
    const Json& v = at(k);
    if (!v.is_number()) fail(path(k), "expected a number");
    out = v.get<double>();
  }

  // A whole number >= 0 (100 and 1e2 are both fine; 2.5 and -1 are not).
  std::uint64_t whole(std::string_view k, std::uint64_t max, std::string_view too_large) const {
    const Json& v = at(k);
    if (!v.is_number()) fail(path(k), "expected a number");
    if (v.is_number_unsigned()) {
      const auto n = v.get<std::uint64_t>();
      if (n > max) fail(path(k), std::string(too_large));
      return n;
    }
    if (v.is_number_integer()) fail(path(k), "must not be negative");
    const double d = v.get<double>();
    if (d != std::floor(d)) fail(path(k), "must be a whole number");
    if (d < 0) fail(path(k), "must not be negative");
    if (d > static_cast<double>(max)) fail(path(k), std::string(too_large));
    return static_cast<std::uint64_t>(d);
  }

  template <typename Int>
  void read(std::string_view k, Int& out) const {
    static_assert(std::is_unsigned_v<Int>);
    if (!has(k)) return;
    constexpr auto kMax = std::numeric_limits<Int>::max();
    out = static_cast<Int>(whole(k, kMax, "must be <= " + std::to_string(kMax)));
  }

  // Milliseconds in JSON, nanoseconds in Config.
  void read_ms(std::string_view k, Nanos& out) const {
    if (!has(k)) return;
    const std::uint64_t ms = whole(k, kMaxDurationMs, kDurationTooLarge);
    out = std::chrono::milliseconds(static_cast<std::int64_t>(ms));
  }

 private:
  const Json& j_;
  std::string path_;
};

PolicyKind parse_kind(const Fields& f) {
  if (!f.has("type")) fail(f.path("type"), "required");
  std::string type;
  f.read("type", type);
  for (auto kind : {PolicyKind::kTokenBucket, PolicyKind::kFixedWindow, PolicyKind::kSlidingWindow,
                    PolicyKind::kConcurrency}) {
    if (type == to_string(kind)) return kind;
  }
  fail(f.path("type"), "unknown type " + in_quotes(type) +
                           " (expected token_bucket, fixed_window, sliding_window or concurrency)");
}

PenaltyBox parse_penalty_box(const Json& j, const std::string& path) {
  Fields f(j, path);
  f.allow_only({"denials", "within_ms", "duration_ms"});
  PenaltyBox box;
  f.read("denials", box.denials);
  f.read_ms("within_ms", box.within);
  f.read_ms("duration_ms", box.duration);
  return box;
}

Fallback parse_fallback(const Json& j, const std::string& path) {
  Fields f(j, path);
  f.allow_only({"mode", "instances", "rate", "burst"});
  Fallback fb;
  if (f.has("mode")) {
    std::string mode;
    f.read("mode", mode);
    bool known = false;
    for (auto m : {FallbackMode::kLocal, FallbackMode::kDeny, FallbackMode::kAllow}) {
      if (mode == to_string(m)) {
        fb.mode = m;
        known = true;
      }
    }
    if (!known) {
      fail(f.path("mode"), "unknown mode " + in_quotes(mode) + " (expected local, deny or allow)");
    }
  }
  f.read("instances", fb.instances);
  f.read("rate", fb.rate);
  f.read("burst", fb.burst);
  return fb;
}

Policy parse_policy(const Json& j, const std::string& path) {
  Fields f(j, path);
  f.allow_only({"name", "match", "group", "type", "rate", "burst", "limit", "window_ms",
                "penalty_box", "fallback", "weight", "guaranteed_rate", "fair_instances"});
  Policy p;
  if (!f.has("match")) fail(f.path("match"), "required");
  f.read("match", p.match);
  p.kind = parse_kind(f);
  const std::string_view kind = to_string(p.kind);

  // Which numbers each type takes; the others must not be set.
  struct Need {
    std::string_view field;
    bool required;
    bool allowed;
  };
  const bool bucket = p.kind == PolicyKind::kTokenBucket;
  const bool window = is_window(p.kind);
  const std::array<Need, 4> needs = {{
      {"rate", bucket, bucket},
      {"burst", false, bucket},
      {"limit", !bucket, !bucket},
      {"window_ms", window, window},
  }};
  for (const Need& n : needs) {
    if (n.required && !f.has(n.field)) fail(f.path(n.field), "required for " + std::string(kind));
    if (!n.allowed && f.has(n.field)) {
      std::string uses = bucket ? "rate and burst" : window ? "limit and window_ms" : "limit";
      fail(f.path(n.field), "not used by " + std::string(kind) + " (it takes " + uses + ")");
    }
  }

  if (f.has("name")) {
    f.read("name", p.name);
    if (p.name.empty()) fail(f.path("name"), "must not be empty (omit it to use match)");
  } else {
    p.name = p.match;
  }
  if (f.has("group")) {
    f.read("group", p.group);
    if (p.group.empty())
      fail(f.path("group"), "must not be empty (omit it: each key its own group)");
  }
  f.read("rate", p.rate);
  f.read("burst", p.burst);
  f.read("limit", p.limit);
  f.read_ms("window_ms", p.window);
  if (f.has("penalty_box"))
    p.penalty_box = parse_penalty_box(f.at("penalty_box"), f.path("penalty_box"));
  if (f.has("fallback")) p.fallback = parse_fallback(f.at("fallback"), f.path("fallback"));
  f.read("weight", p.weight);
  f.read("guaranteed_rate", p.guaranteed_rate);
  if (f.has("fair_instances")) {
    if (!f.at("fair_instances").is_boolean())
      fail(f.path("fair_instances"), "expected true or false");
    p.fair_instances = f.at("fair_instances").get<bool>();
  }
  return p;
}

Group parse_group(const Json& j, const std::string& path) {
  Fields f(j, path);
  f.allow_only({"name", "rate", "burst"});
  Group g;
  if (!f.has("name")) fail(f.path("name"), "required");
  if (!f.has("rate")) fail(f.path("rate"), "required");
  f.read("name", g.name);
  f.read("rate", g.rate);
  f.read("burst", g.burst);
  return g;
}

LeaseOptions parse_leases(const Json& j) {
  Fields f(j, "leases");
  f.allow_only(
      {"ttl_ms", "horizon_ms", "max_fraction", "min_tokens", "expiry_margin_ms", "refresh_ms"});
  LeaseOptions l;
  f.read_ms("ttl_ms", l.ttl);
  f.read_ms("horizon_ms", l.horizon);
  f.read("max_fraction", l.max_fraction);
  f.read("min_tokens", l.min_tokens);
  f.read_ms("expiry_margin_ms", l.expiry_margin);
  f.read_ms("refresh_ms", l.refresh);
  return l;
}

ColdKeys parse_cold_keys(const Json& j) {
  Fields f(j, "cold_keys");
  f.allow_only({"mode", "allowance"});
  ColdKeys c;
  if (f.has("mode")) {
    std::string mode;
    f.read("mode", mode);
    if (mode == "deny") {
      c.mode = ColdKeyMode::kDeny;
    } else if (mode == "optimistic") {
      c.mode = ColdKeyMode::kOptimistic;
    } else {
      fail(f.path("mode"), "unknown mode " + in_quotes(mode) + " (expected deny or optimistic)");
    }
  }
  f.read("allowance", c.allowance);
  return c;
}

StoreConfig parse_store(const Json& j) {
  Fields f(j, "store");
  StoreConfig s;
  f.read("type", s.type);
  // Each store type takes its own fields; a new store lists them here by its type.
  // validate() names a type that is not known.
  if (s.type == "redis") {
    f.allow_only({"type", "shards", "connect_timeout_ms", "command_timeout_ms", "tls_ca_file",
                  "breaker", "bulkhead"});
  } else {
    f.allow_only({"type"});
  }
  if (f.has("shards")) {
    const Json& arr = f.at("shards");
    if (!arr.is_array()) fail(f.path("shards"), "must be an array of redis:// URLs");
    for (std::size_t i = 0; i < arr.size(); ++i) {
      if (!arr[i].is_string()) fail(indexed(f.path("shards"), i), "must be a string");
      s.shards.push_back(arr[i].get<std::string>());
    }
  }
  f.read_ms("connect_timeout_ms", s.connect_timeout);
  f.read_ms("command_timeout_ms", s.command_timeout);
  f.read("tls_ca_file", s.tls_ca_file);
  if (f.has("breaker")) {
    Fields b(f.at("breaker"), f.path("breaker"));
    b.allow_only({"failure_ratio", "slow_call_rate_threshold", "slow_call_duration_threshold_ms",
                  "sampling_duration_ms", "sliding_window_size", "minimum_throughput",
                  "break_duration_ms", "permitted_calls_in_half_open"});
    BreakerConfig& c = s.breaker;
    b.read("failure_ratio", c.failure_ratio);
    b.read("slow_call_rate_threshold", c.slow_call_rate_threshold);
    b.read_ms("slow_call_duration_threshold_ms", c.slow_call_duration_threshold);
    b.read_ms("sampling_duration_ms", c.sampling_duration);
    b.read("sliding_window_size", c.sliding_window_size);
    b.read("minimum_throughput", c.minimum_throughput);
    b.read_ms("break_duration_ms", c.break_duration);
    b.read("permitted_calls_in_half_open", c.permitted_calls_in_half_open);
  }
  if (f.has("bulkhead")) {
    Fields b(f.at("bulkhead"), f.path("bulkhead"));
    b.allow_only({"max_in_flight", "max_queue"});
    b.read("max_in_flight", s.bulkhead.max_in_flight);
    b.read("max_queue", s.bulkhead.max_queue);
  }
  return s;
}

Config parse(const Json& root) {
  Fields f(root, "");
  f.allow_only({"instance_id", "max_keys", "max_key_length", "max_waiters_per_key",
                "idle_timeout_ms", "leases", "cold_keys", "store", "groups", "policies"});
  Config c;
  f.read("instance_id", c.instance_id);
  f.read("max_keys", c.max_keys);
  f.read("max_key_length", c.max_key_length);
  f.read("max_waiters_per_key", c.max_waiters_per_key);
  f.read_ms("idle_timeout_ms", c.idle_timeout);
  if (f.has("leases")) c.leases = parse_leases(f.at("leases"));
  if (f.has("cold_keys")) c.cold_keys = parse_cold_keys(f.at("cold_keys"));
  if (f.has("store")) c.store = parse_store(f.at("store"));
  if (!f.has("policies")) fail("policies", "required");
  const Json& policies = f.at("policies");
  if (!policies.is_array()) fail("policies", "expected an array");
  if (policies.size() > kMaxPolicies) {
    fail("policies", "at most " + std::to_string(kMaxPolicies) + " policies");
  }
  c.policies.reserve(policies.size());
  for (std::size_t i = 0; i < policies.size(); ++i) {
    c.policies.push_back(parse_policy(policies[i], indexed("policies", i)));
  }
  if (f.has("groups")) {
    const Json& groups = f.at("groups");
    if (!groups.is_array()) fail("groups", "expected an array");
    for (std::size_t i = 0; i < groups.size(); ++i) {
      c.groups.push_back(parse_group(groups[i], indexed("groups", i)));
    }
  }
  return c;
}

// ---------------------------------------------------------------------------------------
// Value rules (validate()).

void check_duration(const std::string& field, Nanos d, bool positive) {
  if (d.count() < 0) fail(field, "must not be negative");
  if (positive && d.count() == 0) fail(field, "must be > 0");
  if (d > kMaxDuration) fail(field, std::string(kDurationTooLarge));
}

void check_tokens(const std::string& field, double v) {
  if (!std::isfinite(v)) fail(field, "must be a finite number");
  if (v > kMaxTokens) fail(field, "must be <= 2^53");
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
  if (fb.instances < 1) fail(field("fallback.instances"), "must be >= 1");
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

// ---------------------------------------------------------------------------------------

std::string_view to_string(PolicyKind kind) noexcept {
  switch (kind) {
    case PolicyKind::kTokenBucket:
      return "token_bucket";
    case PolicyKind::kFixedWindow:
      return "fixed_window";
    case PolicyKind::kSlidingWindow:
      return "sliding_window";
    case PolicyKind::kConcurrency:
      return "concurrency";
  }
  return "unknown";
}

double Policy::effective_burst() const noexcept {
  return burst == 0 ? rate : burst;
}

double Group::effective_burst() const noexcept {
  return burst == 0 ? rate : burst;
}

std::vector<Policy> Config::resolved_policies() const {
  std::vector<Policy> out = policies;
  for (Policy& p : out) {
    for (const Group& g : groups) {
      if (!p.group.empty() && g.name == p.group) {
        p.group_rate = g.rate;
        p.group_burst = g.effective_burst();
      }
    }
  }
  return out;
}

double Policy::refill_per_second() const noexcept {
  if (kind == PolicyKind::kTokenBucket) return rate;
  if (kind == PolicyKind::kConcurrency || window.count() <= 0) return 0;
  return static_cast<double>(limit) * 1e9 / static_cast<double>(window.count());
}

double Policy::fallback_rate() const noexcept {
  if (fallback.rate > 0) return fallback.rate;
  return refill_per_second() / std::max<std::uint32_t>(1, fallback.instances);
}

double Policy::fallback_burst() const noexcept {
  if (fallback.burst > 0) return fallback.burst;
  return std::max(1.0, std::floor(static_cast<double>(capacity()) /
                                  std::max<std::uint32_t>(1, fallback.instances)));
}

std::string_view to_string(FallbackMode mode) noexcept {
  switch (mode) {
    case FallbackMode::kLocal:
      return "local";
    case FallbackMode::kDeny:
      return "deny";
    case FallbackMode::kAllow:
      return "allow";
  }
  return "unknown";
}

std::uint64_t Policy::capacity() const noexcept {
  if (kind != PolicyKind::kTokenBucket) return limit;
  const double b = std::floor(effective_burst());
  // Saturate instead of converting out of range (a Config built in code may be invalid).
  if (!(b > 0)) return 0;
  if (b >= 18446744073709551616.0) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(b);
}

ConfigError::ConfigError(std::string field, std::string reason)
    : std::invalid_argument(field + ": " + reason),
      field_(std::move(field)),
      reason_(std::move(reason)) {}

Config Config::from_json(std::string_view json) {
  SyntaxCheck syntax;
  syntax.check(json);
  const Json root = Json::parse(json);
  Config config = parse(root);
  config.validate();
  return config;
}

Config Config::from_json_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    fail("config_file", "cannot read " + in_quotes(path) + ": is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("config_file", "cannot read " + in_quotes(path) + ": " + std::strerror(errno));
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigFileBytes) {
      fail("config_file", "cannot read " + in_quotes(path) + ": larger than 16 MiB");
    }
  }
  if (in.bad()) fail("config_file", "cannot read " + in_quotes(path) + ": " + std::strerror(errno));
  return from_json(text);
}

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

  if (std::find(kStoreTypes.begin(), kStoreTypes.end(), store.type) == kStoreTypes.end()) {
    fail("store.type",
         "unknown store type " + in_quotes(store.type) + " (expected in_process or redis)");
  }
  if (store.type == "redis") {
    if (store.shards.empty()) fail("store.shards", "at least one redis:// URL");
    if (store.shards.size() > kMaxShards) {
      fail("store.shards", "at most " + std::to_string(kMaxShards) + " shards");
    }
    for (std::size_t i = 0; i < store.shards.size(); ++i) {
      try {
        (void)core::ShardUrl::parse(store.shards[i]);
      } catch (const std::invalid_argument& ex) {
        fail(indexed("store.shards", i), ex.what());  // the message never holds the password
      }
    }
    if (!store.tls_ca_file.empty()) {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(store.tls_ca_file, ec)) {
        fail("store.tls_ca_file", "no such file " + in_quotes(store.tls_ca_file));
      }
    }
    const BreakerConfig& b = store.breaker;
    if (!(b.failure_ratio > 0 && b.failure_ratio <= 1)) {
      fail("store.breaker.failure_ratio", "must be > 0 and <= 1");
    }
    if (!(b.slow_call_rate_threshold > 0)) {
      fail("store.breaker.slow_call_rate_threshold", "must be > 0 (above 1: off)");
    }
    check_duration("store.breaker.slow_call_duration_threshold_ms", b.slow_call_duration_threshold,
                   true);
    check_duration("store.breaker.sampling_duration_ms", b.sampling_duration, true);
    check_duration("store.breaker.break_duration_ms", b.break_duration, true);
    if (b.minimum_throughput < 1) fail("store.breaker.minimum_throughput", "must be >= 1");
    if (b.permitted_calls_in_half_open < 1) {
      fail("store.breaker.permitted_calls_in_half_open", "must be >= 1");
    }
    if (store.bulkhead.max_in_flight < 1 || store.bulkhead.max_in_flight > 1'000'000) {
      fail("store.bulkhead.max_in_flight", "must be 1 .. 1000000");
    }
    if (store.bulkhead.max_queue > 10'000'000) {
      fail("store.bulkhead.max_queue", "must be <= 10000000");
    }
    if (b.sliding_window_size > 100'000) {
      fail("store.breaker.sliding_window_size", "must be <= 100000");
    }
    check_duration("store.connect_timeout_ms", store.connect_timeout, true);
    check_duration("store.command_timeout_ms", store.command_timeout, true);
  } else if (!store.shards.empty()) {
    fail("store.shards", "only for store type \"redis\"");
  }

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
