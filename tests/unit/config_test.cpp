// Config: the JSON form, every validation rule (field path and reason), and the names
// of policy kinds and decision reasons.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tollgate/config.h"
#include "tollgate/decision.h"
#include "tollgate/version.h"

namespace tollgate {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr const char* kFullExample = R"({
  "instance_id": "pod-7", "max_keys": 100000, "max_key_length": 512, "max_waiters_per_key": 1024,
  "idle_timeout_ms": 60000,
  "leases": {"ttl_ms": 2000, "horizon_ms": 200, "max_fraction": 0.1, "min_tokens": 1,
             "expiry_margin_ms": 20},
  "cold_keys": {"mode": "optimistic", "allowance": 5},
  "store": {"type": "in_process"},
  "policies": [
    {"name": "tenants", "match": "tenant:*", "type": "token_bucket", "rate": 100, "burst": 200,
     "penalty_box": {"denials": 50, "within_ms": 1000, "duration_ms": 5000}},
    {"match": "tenant:acme", "type": "fixed_window", "limit": 1000, "window_ms": 60000},
    {"match": "report:*", "type": "sliding_window", "limit": 100, "window_ms": 1000},
    {"match": "gpu:*", "type": "concurrency", "limit": 16} ] })";

// A valid document the rule tests break one field at a time.
Json base() {
  return Json::parse(kFullExample);
}

struct Failure {
  std::string field;
  std::string reason;
  std::string what;
};

std::optional<Failure> parse_error(const std::string& json) {
  try {
    Config::from_json(json);
  } catch (const ConfigError& e) {
    return Failure{e.field(), e.reason(), e.what()};
  }
  return std::nullopt;
}

std::optional<Failure> validate_error(const Config& c) {
  try {
    c.validate();
  } catch (const ConfigError& e) {
    return Failure{e.field(), e.reason(), e.what()};
  }
  return std::nullopt;
}

// Expects `json` to be refused for `field`, with a reason containing `reason`.
void expect_refused(const std::string& json, const std::string& field, const std::string& reason) {
  auto f = parse_error(json);
  ASSERT_TRUE(f.has_value()) << "accepted: " << json;
  EXPECT_EQ(f->field, field) << f->what;
  EXPECT_NE(f->reason.find(reason), std::string::npos)
      << "reason \"" << f->reason << "\" lacks \"" << reason << "\"";
  EXPECT_EQ(f->what, f->field + ": " + f->reason);
}

void expect_refused(const std::function<void(Json&)>& edit, const std::string& field,
                    const std::string& reason) {
  Json j = base();
  edit(j);
  expect_refused(j.dump(), field, reason);
}

Config valid_config() {
  Config c;
  Policy p;
  p.match = "tenant:*";
  p.kind = PolicyKind::kTokenBucket;
  p.rate = 100;
  c.policies.push_back(p);
  return c;
}

std::filesystem::path repo_root() {
  // __FILE__ is tests/unit/config_test.cpp.
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

// ---------------------------------------------------------------------------------------
// Valid documents

TEST(ConfigJson, FullExampleParsesToTheExpectedValues) {
  const Config c = Config::from_json(kFullExample);
  EXPECT_EQ(c.instance_id, "pod-7");
  EXPECT_EQ(c.max_keys, 100000u);
  EXPECT_EQ(c.max_key_length, 512u);
  EXPECT_EQ(c.max_waiters_per_key, 1024u);
  EXPECT_EQ(c.idle_timeout, 60s);
  EXPECT_EQ(c.leases.ttl, 2s);
  EXPECT_EQ(c.leases.horizon, 200ms);
  EXPECT_DOUBLE_EQ(c.leases.max_fraction, 0.1);
  EXPECT_EQ(c.leases.min_tokens, 1u);
  EXPECT_EQ(c.leases.expiry_margin, 20ms);
  EXPECT_EQ(c.cold_keys.mode, ColdKeyMode::kOptimistic);
  EXPECT_EQ(c.cold_keys.allowance, 5u);
  EXPECT_EQ(c.store.type, "in_process");
  ASSERT_EQ(c.policies.size(), 4u);

  const Policy& tenants = c.policies[0];
  EXPECT_EQ(tenants.name, "tenants");
  EXPECT_EQ(tenants.match, "tenant:*");
  EXPECT_EQ(tenants.kind, PolicyKind::kTokenBucket);
  EXPECT_DOUBLE_EQ(tenants.rate, 100);
  EXPECT_DOUBLE_EQ(tenants.burst, 200);
  EXPECT_EQ(tenants.limit, 0u);
  EXPECT_EQ(tenants.window, 0ns);
  EXPECT_TRUE(tenants.penalty_box.enabled());
  EXPECT_EQ(tenants.penalty_box.denials, 50u);
  EXPECT_EQ(tenants.penalty_box.within, 1s);
  EXPECT_EQ(tenants.penalty_box.duration, 5s);
  EXPECT_EQ(tenants.capacity(), 200u);
  EXPECT_DOUBLE_EQ(tenants.effective_burst(), 200);

  const Policy& acme = c.policies[1];
  EXPECT_EQ(acme.name, "tenant:acme");  // defaults to match
  EXPECT_EQ(acme.match, "tenant:acme");
  EXPECT_EQ(acme.kind, PolicyKind::kFixedWindow);
  EXPECT_EQ(acme.limit, 1000u);
  EXPECT_EQ(acme.window, 60s);
  EXPECT_FALSE(acme.penalty_box.enabled());
  EXPECT_EQ(acme.capacity(), 1000u);

  const Policy& report = c.policies[2];
  EXPECT_EQ(report.name, "report:*");
  EXPECT_EQ(report.kind, PolicyKind::kSlidingWindow);
  EXPECT_EQ(report.limit, 100u);
  EXPECT_EQ(report.window, 1s);
  EXPECT_EQ(report.capacity(), 100u);

  const Policy& gpu = c.policies[3];
  EXPECT_EQ(gpu.name, "gpu:*");
  EXPECT_EQ(gpu.kind, PolicyKind::kConcurrency);
  EXPECT_EQ(gpu.limit, 16u);
  EXPECT_EQ(gpu.window, 0ns);
  EXPECT_EQ(gpu.capacity(), 16u);
}

TEST(ConfigJson, OmittedFieldsTakeTheDefaults) {
  const Config c =
      Config::from_json(R"({"policies": [{"match": "*", "type": "token_bucket", "rate": 10}]})");
  const Config d;
  EXPECT_EQ(c.instance_id, d.instance_id);
  EXPECT_EQ(c.max_keys, d.max_keys);
  EXPECT_EQ(c.max_key_length, d.max_key_length);
  EXPECT_EQ(c.max_waiters_per_key, d.max_waiters_per_key);
  EXPECT_EQ(c.idle_timeout, d.idle_timeout);
  EXPECT_EQ(c.leases.ttl, d.leases.ttl);
  EXPECT_EQ(c.leases.horizon, d.leases.horizon);
  EXPECT_DOUBLE_EQ(c.leases.max_fraction, d.leases.max_fraction);
  EXPECT_EQ(c.leases.min_tokens, d.leases.min_tokens);
  EXPECT_EQ(c.leases.expiry_margin, d.leases.expiry_margin);
  EXPECT_EQ(c.cold_keys.mode, ColdKeyMode::kDeny);
  EXPECT_EQ(c.cold_keys.allowance, 0u);
  EXPECT_EQ(c.store.type, "in_process");
  ASSERT_EQ(c.policies.size(), 1u);
  EXPECT_EQ(c.policies[0].name, "*");
  EXPECT_DOUBLE_EQ(c.policies[0].burst, 0);
  EXPECT_DOUBLE_EQ(c.policies[0].effective_burst(), 10);  // one second of rate
  EXPECT_EQ(c.policies[0].capacity(), 10u);
  EXPECT_FALSE(c.policies[0].penalty_box.enabled());
}

TEST(ConfigJson, EmptyObjectsAreAllDefaults) {
  const Config c = Config::from_json(R"({"leases": {}, "cold_keys": {}, "store": {},
      "policies": [{"match": "a", "type": "concurrency", "limit": 1, "penalty_box": {}}]})");
  EXPECT_EQ(c.leases.ttl, 16s);  // LeaseOptions' default (docs/architecture.md)
  EXPECT_EQ(c.leases.refresh, 2s);
  EXPECT_EQ(c.cold_keys.mode, ColdKeyMode::kDeny);
  EXPECT_EQ(c.store.type, "in_process");
  EXPECT_FALSE(c.policies[0].penalty_box.enabled());
}

TEST(ConfigJson, WholeNumbersMayBeWrittenWithAnExponent) {
  Json j = base();
  j["max_keys"] = 1e5;
  j["leases"]["ttl_ms"] = 3000.0;
  const Config c = Config::from_json(j.dump());
  EXPECT_EQ(c.max_keys, 100000u);
  EXPECT_EQ(c.leases.ttl, 3s);
}

TEST(ConfigJson, ExampleFileParses) {
  const auto path = repo_root() / "docs" / "examples" / "tollgate.json";
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  const Config c = Config::from_json_file(path.string());
  EXPECT_EQ(c.instance_id, "pod-7");
  EXPECT_EQ(c.cold_keys.mode, ColdKeyMode::kDeny);
  ASSERT_EQ(c.policies.size(), 4u);
  EXPECT_EQ(c.policies[0].name, "tenants");
  EXPECT_EQ(c.policies[3].kind, PolicyKind::kConcurrency);
}

TEST(ConfigJson, UnreadableFileIsAConfigFileError) {
  try {
    Config::from_json_file("/nonexistent/tollgate.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.field(), "config_file");
    EXPECT_NE(e.reason().find("/nonexistent/tollgate.json"), std::string::npos) << e.what();
  }
  try {
    Config::from_json_file(repo_root().string());  // a directory
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.field(), "config_file");
  }
}

// ---------------------------------------------------------------------------------------
// Malformed input, unknown fields, wrong types

TEST(ConfigJson, MalformedJsonNamesTheByteOffset) {
  auto f = parse_error(R"({"policies": [})");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->field, "$");
  EXPECT_NE(f->reason.find("byte 15"), std::string::npos) << f->reason;
  EXPECT_NE(f->reason.find("syntax error"), std::string::npos) << f->reason;

  for (const char* bad :
       {"", "{", "{\"policies\": [] x", "{'a': 1}", "{\"a\": 1,}", "nul", "{\"a\": 1e400}"}) {
    auto g = parse_error(bad);
    ASSERT_TRUE(g) << bad;
    EXPECT_EQ(g->field, "$") << bad;
    EXPECT_NE(g->reason.find("byte "), std::string::npos) << g->reason;
  }
}

TEST(ConfigJson, TopLevelMustBeAnObject) {
  expect_refused("[]", "$", "expected an object");
  expect_refused("42", "$", "expected an object");
}

TEST(ConfigJson, DuplicateJsonKeysAreRefused) {
  expect_refused(R"({"policies": [{"match": "a", "type": "token_bucket", "rate": 1, "rate": 9}]})",
                 "policies[0].rate", "duplicate key");
  expect_refused(R"({"max_keys": 1, "max_keys": 2, "policies": []})", "max_keys", "duplicate key");
}

TEST(ConfigJson, DeepNestingIsRefused) {
  std::string deep = R"({"policies": [{"match": "a", "type": "concurrency", "limit": 1}], "x": )";
  deep += std::string(100, '[') + std::string(100, ']') + "}";
  auto f = parse_error(deep);
  ASSERT_TRUE(f);
  EXPECT_NE(f->reason.find("nested deeper"), std::string::npos) << f->what;
}

TEST(ConfigJson, UnknownFieldsAreRefused) {
  expect_refused([](Json& j) { j["policies"][0]["rat"] = 5; }, "policies[0].rat", "unknown field");
  expect_refused([](Json& j) { j["policy"] = Json::array(); }, "policy", "unknown field");
  expect_refused([](Json& j) { j["leases"]["ttl"] = 5; }, "leases.ttl", "unknown field");
  expect_refused([](Json& j) { j["cold_keys"]["allow"] = 1; }, "cold_keys.allow", "unknown field");
  expect_refused([](Json& j) { j["store"]["host"] = "x"; }, "store.host", "unknown field");
  expect_refused([](Json& j) { j["policies"][0]["penalty_box"]["within"] = 1; },
                 "policies[0].penalty_box.within", "unknown field");
  auto f = parse_error([] {
    Json j = base();
    j["policies"][0]["rat"] = 5;
    return j.dump();
  }());
  ASSERT_TRUE(f);
  EXPECT_EQ(f->what, "policies[0].rat: unknown field");
}

TEST(ConfigJson, WrongJsonTypesAreRefused) {
  auto f = parse_error([] {
    Json j = base();
    j["leases"]["ttl_ms"] = "2000";
    return j.dump();
  }());
  ASSERT_TRUE(f);
  EXPECT_EQ(f->what, "leases.ttl_ms: expected a number");

  expect_refused([](Json& j) { j["policies"][2]["limit"] = true; }, "policies[2].limit",
                 "expected a number");
  expect_refused([](Json& j) { j["policies"][0]["rate"] = nullptr; }, "policies[0].rate",
                 "expected a number");
  expect_refused([](Json& j) { j["policies"][0]["match"] = 7; }, "policies[0].match",
                 "expected a string");
  expect_refused([](Json& j) { j["policies"][0]["type"] = 0; }, "policies[0].type",
                 "expected a string");
  expect_refused([](Json& j) { j["instance_id"] = 7; }, "instance_id", "expected a string");
  expect_refused([](Json& j) { j["policies"] = Json::object(); }, "policies", "expected an array");
  expect_refused([](Json& j) { j["policies"][1] = "tenant:acme"; }, "policies[1]",
                 "expected an object");
  expect_refused([](Json& j) { j["leases"] = 5; }, "leases", "expected an object");
  expect_refused([](Json& j) { j["cold_keys"]["mode"] = 1; }, "cold_keys.mode",
                 "expected a string");
  expect_refused([](Json& j) { j["store"] = "in_process"; }, "store", "expected an object");
  expect_refused([](Json& j) { j["policies"][0]["penalty_box"] = 50; }, "policies[0].penalty_box",
                 "expected an object");
}

TEST(ConfigJson, IntegerFieldsRefuseNegativesAndFractions) {
  expect_refused([](Json& j) { j["max_keys"] = -1; }, "max_keys", "must not be negative");
  expect_refused([](Json& j) { j["max_keys"] = 2.5; }, "max_keys", "whole number");
  expect_refused([](Json& j) { j["max_key_length"] = -0.5; }, "max_key_length", "whole number");
  expect_refused([](Json& j) { j["max_waiters_per_key"] = -3; }, "max_waiters_per_key",
                 "must not be negative");
  expect_refused([](Json& j) { j["idle_timeout_ms"] = 0.5; }, "idle_timeout_ms", "whole number");
  expect_refused([](Json& j) { j["leases"]["ttl_ms"] = -2000; }, "leases.ttl_ms",
                 "must not be negative");
  expect_refused([](Json& j) { j["leases"]["min_tokens"] = 1.5; }, "leases.min_tokens",
                 "whole number");
  expect_refused([](Json& j) { j["cold_keys"]["allowance"] = -1; }, "cold_keys.allowance",
                 "must not be negative");
  expect_refused([](Json& j) { j["policies"][1]["limit"] = 10.5; }, "policies[1].limit",
                 "whole number");
  expect_refused([](Json& j) { j["policies"][1]["window_ms"] = -1000; }, "policies[1].window_ms",
                 "must not be negative");
  expect_refused([](Json& j) { j["policies"][0]["penalty_box"]["denials"] = -1; },
                 "policies[0].penalty_box.denials", "must not be negative");
  expect_refused([](Json& j) { j["policies"][0]["penalty_box"]["denials"] = 5000000000ull; },
                 "policies[0].penalty_box.denials", "must be <= 4294967295");
  expect_refused([](Json& j) { j["max_keys"] = 1e30; }, "max_keys", "must be <=");
}

// ---------------------------------------------------------------------------------------
// Policies

TEST(ConfigPolicies, PoliciesAreRequiredAndNonEmpty) {
  expect_refused([](Json& j) { j.erase("policies"); }, "policies", "required");
  expect_refused([](Json& j) { j["policies"] = Json::array(); }, "policies", "must not be empty");
  auto f = validate_error(Config{});
  ASSERT_TRUE(f);
  EXPECT_EQ(f->field, "policies");
}

TEST(ConfigPolicies, MatchAndTypeAreRequired) {
  expect_refused([](Json& j) { j["policies"][2].erase("match"); }, "policies[2].match", "required");
  expect_refused([](Json& j) { j["policies"][2].erase("type"); }, "policies[2].type", "required");
  expect_refused([](Json& j) { j["policies"][2]["type"] = "leaky_bucket"; }, "policies[2].type",
                 "unknown type \"leaky_bucket\"");
}

TEST(ConfigPolicies, EachTypeNeedsItsNumbers) {
  expect_refused([](Json& j) { j["policies"][0].erase("rate"); }, "policies[0].rate",
                 "required for token_bucket");
  expect_refused([](Json& j) { j["policies"][1].erase("limit"); }, "policies[1].limit",
                 "required for fixed_window");
  expect_refused([](Json& j) { j["policies"][1].erase("window_ms"); }, "policies[1].window_ms",
                 "required for fixed_window");
  expect_refused([](Json& j) { j["policies"][2].erase("window_ms"); }, "policies[2].window_ms",
                 "required for sliding_window");
  expect_refused([](Json& j) { j["policies"][3].erase("limit"); }, "policies[3].limit",
                 "required for concurrency");
  // burst is optional.
  Json j = base();
  j["policies"][0].erase("burst");
  EXPECT_DOUBLE_EQ(Config::from_json(j.dump()).policies[0].effective_burst(), 100);
}

TEST(ConfigPolicies, EachTypeRefusesTheOthersNumbers) {
  expect_refused([](Json& j) { j["policies"][1]["rate"] = 10; }, "policies[1].rate",
                 "not used by fixed_window");
  expect_refused([](Json& j) { j["policies"][2]["burst"] = 10; }, "policies[2].burst",
                 "not used by sliding_window");
  expect_refused([](Json& j) { j["policies"][0]["limit"] = 10; }, "policies[0].limit",
                 "not used by token_bucket");
  expect_refused([](Json& j) { j["policies"][0]["window_ms"] = 1000; }, "policies[0].window_ms",
                 "not used by token_bucket");
  expect_refused([](Json& j) { j["policies"][3]["window_ms"] = 1000; }, "policies[3].window_ms",
                 "not used by concurrency");
  expect_refused([](Json& j) { j["policies"][3]["rate"] = 1; }, "policies[3].rate",
                 "not used by concurrency");
  // Set to zero still counts as set.
  expect_refused([](Json& j) { j["policies"][0]["limit"] = 0; }, "policies[0].limit",
                 "not used by token_bucket");
}

TEST(ConfigPolicies, TokenBucketRateAndBurst) {
  expect_refused([](Json& j) { j["policies"][0]["rate"] = 0; }, "policies[0].rate", "must be > 0");
  expect_refused([](Json& j) { j["policies"][0]["rate"] = -5; }, "policies[0].rate", "must be > 0");
  expect_refused([](Json& j) { j["policies"][0]["burst"] = -1; }, "policies[0].burst",
                 "must not be negative");
  expect_refused([](Json& j) { j["policies"][0]["burst"] = 0.5; }, "policies[0].burst",
                 "must be >= 1");
  expect_refused([](Json& j) { j["policies"][0]["rate"] = 1e300; }, "policies[0].rate",
                 "must be <= 2^53");
  expect_refused(
      [](Json& j) {
        j["policies"][0]["rate"] = 0.5;
        j["policies"][0].erase("burst");
      },
      "policies[0].rate", "must be >= 1 when burst is 0");
  // A slow bucket with a burst of its own is fine.
  Json j = base();
  j["policies"][0]["rate"] = 0.5;
  j["policies"][0]["burst"] = 1;
  EXPECT_EQ(Config::from_json(j.dump()).policies[0].capacity(), 1u);
}

TEST(ConfigPolicies,
     FallbackDefaultsToALocalBucketAtTheGrantedShareOrSharedByTheDeclaredInstances) {
  Json j = base();
  j["policies"][0]["rate"] = 100;
  j["policies"][0]["burst"] = 200;
  Config c = Config::from_json(j.dump());
  EXPECT_EQ(c.policies[0].fallback.mode, FallbackMode::kLocal);
  EXPECT_TRUE(c.policies[0].fallback.share()) << "share mode by default";
  // Share mode: the policy's rate and burst are the ceilings; all instances together get
  // (rate + burst / tau) x (seconds + 1 s).
  EXPECT_DOUBLE_EQ(c.policies[0].fallback_rate(), 100);
  EXPECT_DOUBLE_EQ(c.policies[0].fallback_burst(), 200);
  EXPECT_DOUBLE_EQ(c.policies[0].fallback_allowance(4.0, 60), (100 + 200 / 2.0) * 5.0);
  j["policies"][0]["fallback"] = {{"mode", "local"}, {"instances", 8}};
  c = Config::from_json(j.dump());
  EXPECT_FALSE(c.policies[0].fallback.share());
  EXPECT_DOUBLE_EQ(c.policies[0].fallback_rate(), 12.5);
  EXPECT_DOUBLE_EQ(c.policies[0].fallback_burst(), 25);
  EXPECT_DOUBLE_EQ(c.policies[0].fallback_allowance(4.0, 8), 8 * (25 + 12.5 * 4.0));
  j["policies"][0]["fallback"] = {{"mode", "local"}, {"rate", 3}, {"burst", 7}};
  c = Config::from_json(j.dump());
  EXPECT_DOUBLE_EQ(c.policies[0].fallback_rate(), 3);
  EXPECT_DOUBLE_EQ(c.policies[0].fallback_burst(), 7);
  j["policies"][0]["fallback"] = {{"mode", "allow"}};
  EXPECT_EQ(Config::from_json(j.dump()).policies[0].fallback.mode, FallbackMode::kAllow);
  j["policies"][0]["fallback"] = {{"mode", "deny"}};
  EXPECT_EQ(Config::from_json(j.dump()).policies[0].fallback.mode, FallbackMode::kDeny);
}

TEST(ConfigPolicies, BadFallbacksNameTheirField) {
  expect_refused(
      [](Json& j) {
        j["policies"][0]["fallback"] = {{"mode", "maybe"}};
      },
      "policies[0].fallback.mode", "expected local, deny or allow");
  expect_refused(
      [](Json& j) {
        j["policies"][0]["fallback"] = {{"rate", -1}};
      },
      "policies[0].fallback.rate", "must not be negative");
  expect_refused(
      [](Json& j) {
        j["policies"][0]["fallback"] = {{"burst", 0.5}};
      },
      "policies[0].fallback.burst", "must be >= 1");
  expect_refused(
      [](Json& j) {
        j["policies"][0]["fallback"] = {{"mood", "local"}};
      },
      "policies[0].fallback.mood", "unknown field");
}

TEST(ConfigPolicies, NonFiniteRatesAreRefusedInCode) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double rate : {nan, inf, -inf, -1.0, 0.0}) {
    Config c = valid_config();
    c.policies[0].rate = rate;
    auto f = validate_error(c);
    ASSERT_TRUE(f) << rate;
    EXPECT_EQ(f->field, "policies[0].rate") << rate;
    EXPECT_FALSE(f->reason.empty());
  }
  for (double burst : {nan, inf, -inf, -1.0, 0.25}) {
    Config c = valid_config();
    c.policies[0].burst = burst;
    auto f = validate_error(c);
    ASSERT_TRUE(f) << burst;
    EXPECT_EQ(f->field, "policies[0].burst") << burst;
  }
  Config c = valid_config();
  c.policies[0].rate = nan;
  EXPECT_THROW(c.validate(), std::invalid_argument);  // ConfigError is an invalid_argument
}

TEST(ConfigPolicies, WindowsAndConcurrencyNeedALimit) {
  expect_refused([](Json& j) { j["policies"][1]["limit"] = 0; }, "policies[1].limit",
                 "must be >= 1");
  expect_refused([](Json& j) { j["policies"][2]["limit"] = 0; }, "policies[2].limit",
                 "must be >= 1");
  expect_refused([](Json& j) { j["policies"][3]["limit"] = 0; }, "policies[3].limit",
                 "must be >= 1");
  expect_refused([](Json& j) { j["policies"][1]["window_ms"] = 0; }, "policies[1].window_ms",
                 "must be > 0");
  expect_refused([](Json& j) { j["policies"][2]["window_ms"] = 0; }, "policies[2].window_ms",
                 "must be > 0");
  expect_refused([](Json& j) { j["policies"][1]["window_ms"] = 604800001; },
                 "policies[1].window_ms", "must be <= 604800000");
}

TEST(ConfigPolicies, CodeBuiltPoliciesMustNotMixTypes) {
  Config c = valid_config();
  c.policies[0].limit = 10;
  EXPECT_EQ(validate_error(c)->field, "policies[0].limit");
  c = valid_config();
  c.policies[0].window = 1s;
  EXPECT_EQ(validate_error(c)->field, "policies[0].window_ms");
  c = valid_config();
  c.policies[0].kind = PolicyKind::kFixedWindow;
  c.policies[0].limit = 10;
  c.policies[0].window = 1s;
  EXPECT_EQ(validate_error(c)->field, "policies[0].rate");
  c.policies[0].rate = 0;
  EXPECT_FALSE(validate_error(c));
  c.policies[0].kind = static_cast<PolicyKind>(42);
  EXPECT_EQ(validate_error(c)->field, "policies[0].type");
}

TEST(ConfigPolicies, MatchRules) {
  expect_refused([](Json& j) { j["policies"][0]["match"] = ""; }, "policies[0].match",
                 "must not be empty");
  expect_refused([](Json& j) { j["policies"][0]["match"] = "tenant:*:x"; }, "policies[0].match",
                 "'*' may only be the last character");
  expect_refused([](Json& j) { j["policies"][0]["match"] = "**"; }, "policies[0].match",
                 "'*' may only be the last character");
  // "tenant:*" needs keys of at least 7 bytes.
  expect_refused([](Json& j) { j["max_key_length"] = 6; }, "policies[0].match",
                 "longer than max_key_length (6)");
  // "*" alone matches every key.
  Json j = base();
  j["policies"][2]["match"] = "*";
  EXPECT_NO_THROW(Config::from_json(j.dump()));
  // A prefix as long as max_key_length still matches a key of that length.
  j["max_key_length"] = 11;  // "tenant:acme"
  EXPECT_NO_THROW(Config::from_json(j.dump()));
}

TEST(ConfigPolicies, NamesAndMatchesAreUnique) {
  expect_refused([](Json& j) { j["policies"][2]["name"] = "tenants"; }, "policies[2].name",
                 "\"tenants\" is already used by policies[0]");
  // A defaulted name collides too.
  expect_refused([](Json& j) { j["policies"][0]["name"] = "gpu:*"; }, "policies[3].name",
                 "already used by policies[0]");
  expect_refused([](Json& j) { j["policies"][2]["match"] = "tenant:*"; }, "policies[2].match",
                 "\"tenant:*\" is already matched by policies[0]");
  expect_refused([](Json& j) { j["policies"][0]["name"] = ""; }, "policies[0].name",
                 "must not be empty");
  // In code an empty name means "use match", for uniqueness as well.
  Config c = valid_config();
  Policy other = c.policies[0];
  other.match = "other";
  other.name = "tenant:*";
  c.policies.push_back(other);
  auto f = validate_error(c);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->field, "policies[1].name");
}

TEST(ConfigPolicies, PenaltyBox) {
  expect_refused([](Json& j) { j["policies"][0]["penalty_box"]["within_ms"] = 0; },
                 "policies[0].penalty_box.within_ms", "must be > 0");
  expect_refused([](Json& j) { j["policies"][0]["penalty_box"].erase("duration_ms"); },
                 "policies[0].penalty_box.duration_ms", "must be > 0");
  // Disabled (denials 0): the durations do not matter.
  Json j = base();
  j["policies"][0]["penalty_box"] = {{"denials", 0}};
  EXPECT_FALSE(Config::from_json(j.dump()).policies[0].penalty_box.enabled());
}

// ---------------------------------------------------------------------------------------
// Leases, cold keys, store, limits

TEST(ConfigLeases, Rules) {
  expect_refused([](Json& j) { j["leases"]["ttl_ms"] = 0; }, "leases.ttl_ms", "must be > 0");
  expect_refused([](Json& j) { j["leases"]["horizon_ms"] = 0; }, "leases.horizon_ms",
                 "must be > 0");
  expect_refused([](Json& j) { j["leases"]["max_fraction"] = 0; }, "leases.max_fraction",
                 "must be > 0 and <= 1");
  expect_refused([](Json& j) { j["leases"]["max_fraction"] = 1.5; }, "leases.max_fraction",
                 "must be > 0 and <= 1");
  expect_refused([](Json& j) { j["leases"]["max_fraction"] = -0.1; }, "leases.max_fraction",
                 "must be > 0 and <= 1");
  expect_refused([](Json& j) { j["leases"]["min_tokens"] = 0; }, "leases.min_tokens",
                 "must be >= 1");
  expect_refused([](Json& j) { j["leases"]["expiry_margin_ms"] = 1000; }, "leases.expiry_margin_ms",
                 "must be < ttl_ms / 2");
  expect_refused([](Json& j) { j["leases"]["ttl_ms"] = 40; }, "leases.expiry_margin_ms",
                 "must be < ttl_ms / 2");
  expect_refused([](Json& j) { j["leases"]["ttl_ms"] = 1e12; }, "leases.ttl_ms",
                 "must be <= 604800000");
  Json j = base();
  j["leases"]["max_fraction"] = 1;
  j["leases"]["expiry_margin_ms"] = 0;
  j["leases"]["ttl_ms"] = 41;
  EXPECT_NO_THROW(Config::from_json(j.dump()));

  Config c = valid_config();
  c.leases.max_fraction = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(validate_error(c)->field, "leases.max_fraction");
  c = valid_config();
  c.leases.expiry_margin = -1ms;
  EXPECT_EQ(validate_error(c)->field, "leases.expiry_margin_ms");
  c = valid_config();
  c.leases.ttl = -1s;
  EXPECT_EQ(validate_error(c)->field, "leases.ttl_ms");
}

TEST(ConfigColdKeys, Rules) {
  expect_refused([](Json& j) { j["cold_keys"]["mode"] = "maybe"; }, "cold_keys.mode",
                 "unknown mode \"maybe\"");
  expect_refused(
      [](Json& j) {
        j["cold_keys"]["mode"] = "deny";
        j["cold_keys"]["allowance"] = 3;
      },
      "cold_keys.allowance", "only used with mode \"optimistic\"");
  expect_refused([](Json& j) { j["cold_keys"]["allowance"] = 0; }, "cold_keys.allowance",
                 "must be >= 1");
  Json j = base();
  j["cold_keys"] = {{"mode", "deny"}, {"allowance", 0}};
  EXPECT_EQ(Config::from_json(j.dump()).cold_keys.mode, ColdKeyMode::kDeny);

  Config c = valid_config();
  c.cold_keys.mode = static_cast<ColdKeyMode>(9);
  EXPECT_EQ(validate_error(c)->field, "cold_keys.mode");
}

TEST(ConfigStore, UnknownTypesAreRefused) {
  expect_refused([](Json& j) { j["store"]["type"] = "memcached"; }, "store.type",
                 "unknown store type \"memcached\"");
  Config c = valid_config();
  c.store.type = "";
  EXPECT_EQ(validate_error(c)->field, "store.type");
}

TEST(ConfigStore, RedisTakesShardUrlsAndTimeouts) {
  Json j = base();
  j["store"] = {{"type", "redis"},
                {"shards", {"redis://127.0.0.1:6379", "rediss://alice:pw@cache:6380/2"}},
                {"connect_timeout_ms", 250},
                {"command_timeout_ms", 100}};
  Config c = Config::from_json(j.dump());
  EXPECT_EQ(c.store.type, "redis");
  ASSERT_EQ(c.store.shards.size(), 2u);
  EXPECT_EQ(c.store.connect_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(c.store.command_timeout, std::chrono::milliseconds(100));
}

TEST(ConfigStore, BadShardsAreNamedWithoutTheirPasswords) {
  expect_refused([](Json& j) { j["store"] = {{"type", "redis"}}; }, "store.shards", "at least one");
  expect_refused(
      [](Json& j) {
        j["store"] = {{"type", "redis"}, {"shards", {"redis://h:1", "http://:hunter2@h:1"}}};
      },
      "store.shards[1]", "redis://");
  try {
    Json j = base();
    j["store"] = {{"type", "redis"}, {"shards", {"redis://:hunter2@h:0"}}};
    Config::from_json(j.dump());
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
  }
  expect_refused(
      [](Json& j) {
        j["store"] = {{"type", "in_process"}, {"shards", {"redis://h"}}};
      },
      "store.shards",
      R"(unknown field for the store type "in_process": it belongs to the "redis" store (set )"
      R"(store.type to "redis"))");
  expect_refused(
      [](Json& j) {
        j["store"] = {{"shards", {"redis://h"}}};
      },
      "store.shards", R"(for the store type "in_process": it belongs to the "redis" store)");
  expect_refused(
      [](Json& j) {
        j["store"] = {{"wait_replicas", 1}};
      },
      "store.wait_replicas",
      R"(it belongs to the "redis" or "redis_cluster" store (set store.type to "redis"))");
  expect_refused(
      [](Json& j) {
        j["store"] = {{"type", "redis"}, {"shards", {"redis://h"}}, {"command_timeout_ms", 0}};
      },
      "store.command_timeout_ms", "must be > 0");
}

TEST(ConfigStore, RedisClusterTakesNodesAndTheShardStoresOptions) {
  Json j = base();
  j["store"] = {{"type", "redis_cluster"},
                {"nodes", {"redis://10.0.0.5:7000", "redis://10.0.0.6:7000"}},
                {"command_timeout_ms", 100},
                {"wait_replicas", 1},
                {"wait_timeout_ms", 20},
                {"breaker", {{"break_duration_ms", 1000}}},
                {"bulkhead", {{"max_in_flight", 10}}}};
  Config c = Config::from_json(j.dump());
  EXPECT_EQ(c.store.type, "redis_cluster");
  ASSERT_EQ(c.store.nodes.size(), 2u);
  EXPECT_EQ(c.store.wait_replicas, 1u);
  EXPECT_EQ(c.store.wait_timeout, std::chrono::milliseconds(20));
  EXPECT_EQ(c.store.breaker.break_duration, std::chrono::seconds(1));
  EXPECT_EQ(c.store.bulkhead.max_in_flight, 10u);
}

TEST(ConfigStore, BadClusterNodesAreNamed) {
  expect_refused(
      [](Json& j) {
        j["store"] = {{"type", "redis_cluster"}};
      },
      "store.nodes", "at least one");
  expect_refused(
      [](Json& j) {
        j["store"] = {{"type", "redis_cluster"}, {"nodes", {"redis://h:1", "http://:hunter2@h:1"}}};
      },
      "store.nodes[1]", "redis://");
  expect_refused(
      [](Json& j) {
        j["store"] = {{"type", "redis_cluster"}, {"nodes", {"redis://h:1/2"}}};
      },
      "store.nodes[0]", "only database 0");
  expect_refused(
      [](Json& j) {
        j["store"] = {{"type", "redis_cluster"}, {"shards", {"redis://h:1"}}};
      },
      "store.shards",
      R"(unknown field for the store type "redis_cluster": it belongs to the "redis")");
  expect_refused(
      [](Json& j) {
        j["store"] = {{"type", "redis"}, {"shards", {"redis://h:1"}}, {"nodes", {"redis://h:1"}}};
      },
      "store.nodes",
      R"(it belongs to the "redis_cluster" store (set store.type to "redis_cluster"))");
  expect_refused(
      [](Json& j) {
        j["store"] = {{"type", "redis"}, {"shards", {"redis://h:1"}}, {"wait_replicas", 17}};
      },
      "store.wait_replicas", "0 .. 16");
}

TEST(ConfigStore, TlsCaFileMustExist) {
  expect_refused(
      [](Json& j) {
        j["store"] = {{"type", "redis"},
                      {"shards", {"rediss://h:6380"}},
                      {"tls_ca_file", "/nonexistent/ca.pem"}};
      },
      "store.tls_ca_file", "no such file");
}

TEST(ConfigPolicy, GroupIsOptionalButNotEmpty) {
  Json j = base();
  j["policies"][0]["group"] = "acme";
  EXPECT_EQ(Config::from_json(j.dump()).policies[0].group, "acme");
  expect_refused([](Json& j2) { j2["policies"][0]["group"] = ""; }, "policies[0].group",
                 "must not be empty");
}

TEST(ConfigLimits, TableAndKeyBounds) {
  expect_refused([](Json& j) { j["max_keys"] = 0; }, "max_keys", "must be >= 1");
  expect_refused([](Json& j) { j["max_keys"] = 100000001; }, "max_keys", "must be <= 100000000");
  expect_refused([](Json& j) { j["max_key_length"] = 0; }, "max_key_length", "must be >= 1");
  expect_refused([](Json& j) { j["max_key_length"] = 65536; }, "max_key_length",
                 "must be <= 65535");
  expect_refused([](Json& j) { j["idle_timeout_ms"] = 0; }, "idle_timeout_ms", "must be > 0");
  expect_refused([](Json& j) { j["max_waiters_per_key"] = 1000001; }, "max_waiters_per_key",
                 "must be <= 1000000");
  expect_refused([](Json& j) { j["instance_id"] = std::string(257, 'x'); }, "instance_id",
                 "at most 256 bytes");
  expect_refused([](Json& j) { j["instance_id"] = "pod\n7"; }, "instance_id", "control characters");

  Json j = base();
  j["max_keys"] = 100000000;
  j["max_key_length"] = 65535;
  j["max_waiters_per_key"] = 0;
  EXPECT_NO_THROW(Config::from_json(j.dump()));
}

// ---------------------------------------------------------------------------------------
// Code-built configs, errors, names

TEST(ConfigValidate, CodeBuiltConfigFollowsTheSameRules) {
  Config c = valid_config();
  EXPECT_NO_THROW(c.validate());
  c.max_keys = 0;
  auto f = validate_error(c);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->what, "max_keys: must be >= 1");
}

TEST(ConfigValidate, ErrorNamesFieldAndReason) {
  const ConfigError e("policies[2].rate", "must be > 0");
  EXPECT_STREQ(e.what(), "policies[2].rate: must be > 0");
  EXPECT_EQ(e.field(), "policies[2].rate");
  EXPECT_EQ(e.reason(), "must be > 0");
}

TEST(ConfigValidate, TheFirstInvalidPolicyIsNamed) {
  expect_refused(
      [](Json& j) {
        j["policies"][2]["rate"] = 1;
        j["policies"][3]["limit"] = 0;
      },
      "policies[2].rate", "not used by sliding_window");
}

TEST(PolicyCapacity, BucketIsFlooredBurstOthersAreLimit) {
  Policy p;
  p.kind = PolicyKind::kTokenBucket;
  p.rate = 7.9;
  EXPECT_DOUBLE_EQ(p.effective_burst(), 7.9);
  EXPECT_EQ(p.capacity(), 7u);
  p.burst = 20.5;
  EXPECT_DOUBLE_EQ(p.effective_burst(), 20.5);
  EXPECT_EQ(p.capacity(), 20u);
  p.burst = std::numeric_limits<double>::quiet_NaN();  // invalid, but capacity() must not UB
  EXPECT_EQ(p.capacity(), 0u);
  p.burst = 1e300;
  EXPECT_EQ(p.capacity(), std::numeric_limits<std::uint64_t>::max());
  p.kind = PolicyKind::kSlidingWindow;
  p.limit = 42;
  EXPECT_EQ(p.capacity(), 42u);
  p.kind = PolicyKind::kConcurrency;
  EXPECT_EQ(p.capacity(), 42u);
}

TEST(Names, PolicyKinds) {
  EXPECT_EQ(to_string(PolicyKind::kTokenBucket), "token_bucket");
  EXPECT_EQ(to_string(PolicyKind::kFixedWindow), "fixed_window");
  EXPECT_EQ(to_string(PolicyKind::kSlidingWindow), "sliding_window");
  EXPECT_EQ(to_string(PolicyKind::kConcurrency), "concurrency");
}

TEST(Names, EveryReasonHasADistinctName) {
  std::set<std::string_view> seen;
  for (int i = 0; i < kReasonCount; ++i) {
    const std::string_view name = to_string(static_cast<Reason>(i));
    EXPECT_FALSE(name.empty()) << i;
    EXPECT_NE(name, "unknown") << i;
    EXPECT_TRUE(seen.insert(name).second) << "duplicate name " << name;
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kReasonCount));
  EXPECT_EQ(to_string(Reason::kOk), "ok");
  EXPECT_EQ(to_string(Reason::kOverLimit), "over_limit");
  EXPECT_EQ(to_string(Reason::kColdKey), "cold_key");
  EXPECT_EQ(to_string(Reason::kLeasePending), "lease_pending");
  EXPECT_EQ(to_string(Reason::kPenaltyBox), "penalty_box");
  EXPECT_EQ(to_string(Reason::kQueueFull), "queue_full");
  EXPECT_EQ(to_string(Reason::kTimeout), "timeout");
  EXPECT_EQ(to_string(Reason::kCancelled), "cancelled");
  EXPECT_EQ(to_string(Reason::kKeyTableFull), "key_table_full");
  EXPECT_EQ(to_string(Reason::kNoPolicy), "no_policy");
  EXPECT_EQ(to_string(Reason::kInvalidArgument), "invalid_argument");
  EXPECT_EQ(to_string(Reason::kFallbackLocal), "fallback_local");
  EXPECT_EQ(to_string(Reason::kFallbackDeny), "fallback_deny");
  EXPECT_EQ(to_string(Reason::kFallbackAllow), "fallback_allow");
  EXPECT_EQ(to_string(Reason::kShutdown), "shutdown");
  EXPECT_EQ(to_string(static_cast<Reason>(kReasonCount)), "unknown");
}

TEST(Names, Version) {
  EXPECT_EQ(version(), TOLLGATE_VERSION_STRING);
  EXPECT_EQ(version(), "0.1.0");
}

}  // namespace
}  // namespace tollgate

// ---------------------------------------------------------------------------------------
// Groups with a budget (docs/quotas.md)

namespace tollgate {
namespace {

constexpr const char* kGroups = R"({
  "groups": [{"name": "gpu", "rate": 120, "burst": 240}],
  "policies": [
    {"match": "gpu:acme", "group": "gpu", "type": "token_bucket", "rate": 100, "weight": 2, "guaranteed_rate": 10},
    {"match": "gpu:*", "group": "gpu", "type": "token_bucket", "rate": 60},
    {"match": "free:*", "group": "free", "type": "token_bucket", "rate": 5}
  ]
})";

TEST(ConfigGroups, GroupsAndSharesParseAndReachThePolicies) {
  const Config c = Config::from_json(kGroups);
  ASSERT_EQ(c.groups.size(), 1u);
  EXPECT_EQ(c.groups[0].name, "gpu");
  EXPECT_EQ(c.groups[0].rate, 120);
  EXPECT_EQ(c.groups[0].burst, 240);
  EXPECT_EQ(c.policies[0].weight, 2);
  EXPECT_EQ(c.policies[0].guaranteed_rate, 10);
  EXPECT_EQ(c.policies[1].weight, 1);  // the default
  const auto p = c.resolved_policies();
  EXPECT_EQ(p[0].group_rate, 120);
  EXPECT_EQ(p[0].group_burst, 240);
  EXPECT_TRUE(p[0].shares_instances());  // on by default for every token bucket
  EXPECT_EQ(p[2].group_rate, 0);         // "free" names no budget: a shard hint only
  EXPECT_TRUE(p[2].shares_instances());  // and is fair between instances all the same
}

TEST(ConfigGroups, FairInstancesIsOnForEveryTokenBucketUnlessTurnedOff) {
  const Config c = Config::from_json(R"({"policies": [
    {"match": "a", "type": "token_bucket", "rate": 100},
    {"match": "b", "type": "token_bucket", "rate": 100, "fair_instances": false},
    {"match": "c", "type": "token_bucket", "rate": 100, "fair_instances": true},
    {"match": "d", "type": "fixed_window", "limit": 5, "window_ms": 1000},
    {"match": "e", "type": "concurrency", "limit": 5}
  ]})");
  const auto p = c.resolved_policies();
  EXPECT_TRUE(p[0].shares_instances());
  EXPECT_FALSE(p[1].shares_instances());
  EXPECT_TRUE(p[2].shares_instances());
  EXPECT_FALSE(p[3].shares_instances());  // windows and concurrency have no instance shares
  EXPECT_FALSE(p[4].shares_instances());
}

TEST(ConfigGroups, TheExampleInQuotasMdParses) {
  const auto path = repo_root() / "docs" / "examples" / "groups.json";
  const Config c = Config::from_json_file(path.string());
  ASSERT_EQ(c.groups.size(), 1u);
  EXPECT_EQ(c.policies[0].weight, 2);
  EXPECT_EQ(c.policies[0].guaranteed_rate, 200);
  EXPECT_EQ(c.resolved_policies()[1].group_rate, 1200);
}

TEST(ConfigGroups, AGroupBurstOfZeroIsOneSecondOfRate) {
  const Config c = Config::from_json(
      R"({"groups": [{"name": "g", "rate": 50}], "policies": [{"match": "a", "group": "g", "type": "token_bucket", "rate": 5}]})");
  EXPECT_EQ(c.resolved_policies()[0].group_burst, 50);
}

TEST(ConfigGroups, MistakesNameTheField) {
  const auto with = [](const std::string& groups, const std::string& policy) {
    return R"({"groups": )" + groups + R"(, "policies": [)" + policy + "]}";
  };
  const std::string g = R"([{"name": "g", "rate": 100}])";
  const std::string ok = R"({"match": "a", "group": "g", "type": "token_bucket", "rate": 5})";
  expect_refused(with(R"([{"rate": 100}])", ok), "groups[0].name", "required");
  expect_refused(with(R"([{"name": "g"}])", ok), "groups[0].rate", "required");
  expect_refused(with(R"([{"name": "g", "rate": 0}])", ok), "groups[0].rate", "must be > 0");
  expect_refused(with(R"([{"name": "g", "rate": 9, "burst": 0.5}])", ok), "groups[0].burst",
                 ">= 1");
  expect_refused(with(R"([{"name": "g", "rate": 9}, {"name": "g", "rate": 1}])", ok),
                 "groups[1].name", "defined twice");
  expect_refused(with(R"([{"name": "g", "rate": 9, "size": 1}])", ok), "groups[0].size",
                 "unknown field");
  expect_refused(
      with(g, R"({"match": "a", "group": "g", "type": "token_bucket", "rate": 5, "weight": 0})"),
      "policies[0].weight", "must be > 0");
  expect_refused(
      with(
          g,
          R"({"match": "a", "group": "g", "type": "token_bucket", "rate": 5, "guaranteed_rate": 101})"),
      "policies[0].guaranteed_rate", "<= the group's rate (100)");
  expect_refused(
      with(g, R"({"match": "a", "group": "h", "type": "token_bucket", "rate": 5, "weight": 2})"),
      "policies[0].weight", "only used in a group with a budget");
  expect_refused(
      with(g, R"({"match": "a", "type": "token_bucket", "rate": 5, "guaranteed_rate": 2})"),
      "policies[0].guaranteed_rate", "only used in a group with a budget");
  expect_refused(with(g, R"({"match": "a", "group": "g", "type": "concurrency", "limit": 5})"),
                 "policies[0].type", "token_bucket policies only");
  expect_refused(
      with(g, R"({"match": "a", "type": "concurrency", "limit": 5, "fair_instances": true})"),
      "policies[0].fair_instances", "only for token_bucket");
  expect_refused(
      with(g, R"({"match": "a", "type": "token_bucket", "rate": 5, "fair_instances": 1})"),
      "policies[0].fair_instances", "expected true or false");
  expect_refused(
      R"({"groups": {}, "policies": [{"match": "a", "type": "token_bucket", "rate": 5}]})",
      "groups", "expected an array");
}

}  // namespace
}  // namespace tollgate
