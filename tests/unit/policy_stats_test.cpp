// Decisions per policy (Stats::policies, the tollgate.policy attribute): counted per policy
// and reason as the application saw them, under a policy's configured name only — never a
// tenant key — and at most PolicyLabels::kMax values per limiter.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <utility>

#include "limiter/policy_labels.h"
#include "tollgate/manual_clock.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

// "standard" (tenant:*), an unnamed per-tenant override (its name is its match, a tenant
// key), and "batch" (batch:*); cold keys are denied until their first lease.
constexpr const char* kConfig = R"({
  "cold_keys": {"mode": "deny"},
  "leases": {"refresh_ms": 0},
  "policies": [
    {"name": "standard", "match": "tenant:*", "type": "token_bucket", "rate": 20, "burst": 20},
    {"match": "tenant:acme-secret", "type": "token_bucket", "rate": 10, "burst": 10},
    {"name": "batch", "match": "batch:*", "type": "token_bucket", "rate": 5, "burst": 5}
  ]
})";

class PolicyStatsTest : public ::testing::Test {
 protected:
  void make(const std::string& json) {
    clock = std::make_shared<ManualClock>();
    Limiter::Options o;
    o.store = std::make_shared<InProcessStore>(clock);
    o.clock = clock;
    o.background_thread = false;
    limiter = std::make_unique<Limiter>(Config::from_json(json), o);
  }
  // One decision, tallied by the test itself: (policy value, reason) -> decisions.
  void decide(const std::string& key, const std::string& policy, std::uint64_t cost = 1) {
    const Decision d = limiter->try_acquire(key, cost);
    ++seen[{policy, d.allowed ? Reason::kOk : d.reason}];
  }
  const PolicyStats* find(const Stats& s, const std::string& name) {
    for (const PolicyStats& p : s.policies)
      if (p.name == name) return &p;
    return nullptr;
  }

  std::shared_ptr<ManualClock> clock;
  std::unique_ptr<Limiter> limiter;
  std::map<std::pair<std::string, Reason>, std::uint64_t> seen;
  std::uint64_t seen_of(const std::string& policy, Reason r) { return seen[{policy, r}]; }
};

TEST_F(PolicyStatsTest, CountsDecisionsPerPolicyAndReason) {
  make(kConfig);
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 9; ++i) decide("tenant:t" + std::to_string(i % 3), "standard");
    for (int i = 0; i < 7; ++i) decide("tenant:acme-secret", "other");
    for (int i = 0; i < 4; ++i) decide("batch:nightly", "batch", 2);
    decide("nobody:x", "other");  // no policy
    decide("", "other");          // a bad key: no policy decided it
    limiter->poll();
    clock->advance(100ms);
    limiter->poll();
  }
  const Stats s = limiter->stats();
  ASSERT_EQ(s.policies.size(), 3u);
  EXPECT_EQ(s.policies[0].name, "other");
  std::map<std::pair<std::string, Reason>, std::uint64_t> counted;
  for (const PolicyStats& p : s.policies) {
    if (p.admitted != 0) counted[{p.name, Reason::kOk}] = p.admitted;
    for (int r = 1; r < kReasonCount; ++r)
      if (p.denied[r] != 0) counted[{p.name, static_cast<Reason>(r)}] = p.denied[r];
  }
  EXPECT_EQ(counted, seen);
  // Several reasons and every policy value took part, or the comparison says little.
  EXPECT_GT(seen_of("standard", Reason::kOk), 0u);
  EXPECT_GT(seen_of("standard", Reason::kColdKey), 0u);
  EXPECT_GT(seen_of("batch", Reason::kOk), 0u);
  EXPECT_GT(seen_of("other", Reason::kNoPolicy), 0u);
  EXPECT_GT(seen_of("other", Reason::kInvalidArgument), 0u);
  EXPECT_GT(seen_of("other", Reason::kOk), 0u);
  EXPECT_GT(seen.size(), 8u);
  // The policies sum to the limiter's counters.
  std::uint64_t admitted = 0, tokens = 0, denied = 0;
  for (const PolicyStats& p : s.policies) {
    admitted += p.admitted;
    tokens += p.admitted_tokens;
    for (auto d : p.denied) denied += d;
  }
  EXPECT_EQ(admitted, s.admitted);
  EXPECT_EQ(tokens, s.admitted_tokens);
  EXPECT_EQ(denied, s.denied_total());
  EXPECT_EQ(find(s, "batch")->admitted_tokens, 2 * find(s, "batch")->admitted);
}

// A per-tenant override's name defaults to its match — a tenant key. Neither that nor an
// explicit name equal to the match reaches the attribute.
TEST_F(PolicyStatsTest, NoTenantIdReachesThePolicyValue) {
  make(R"({"cold_keys": {"mode": "deny"}, "policies": [
    {"name": "standard", "match": "tenant:*", "type": "token_bucket", "rate": 20},
    {"match": "tenant:acme-secret", "type": "token_bucket", "rate": 10},
    {"name": "tenant:globex-secret", "match": "tenant:globex-secret", "type": "token_bucket",
     "rate": 10}
  ]})");
  for (int i = 0; i < 3; ++i) {
    decide("tenant:acme-secret", "other");
    decide("tenant:globex-secret", "other");
    limiter->poll();
  }
  const Stats s = limiter->stats();
  for (const PolicyStats& p : s.policies) {
    EXPECT_EQ(p.name.find("acme"), std::string::npos) << p.name;
    EXPECT_EQ(p.name.find("globex"), std::string::npos) << p.name;
  }
  const std::string text = prometheus_text(s);
  EXPECT_EQ(text.find("acme"), std::string::npos);
  EXPECT_EQ(text.find("globex"), std::string::npos);
  EXPECT_NE(text.find("tollgate_policy=\"standard\""), std::string::npos) << text;
  EXPECT_NE(text.find("tollgate_tokens_admitted_total{tollgate_policy=\"standard\"}"),
            std::string::npos)
      << text;
  ASSERT_NE(find(s, "other"), nullptr);
  EXPECT_EQ(find(s, "other")->denied[static_cast<int>(Reason::kColdKey)], 2u);
}

// 16 values at most: the 15 first names a limiter sees, and "other" for the rest.
TEST_F(PolicyStatsTest, TheNumberOfValuesIsCapped) {
  std::string json = R"({"cold_keys": {"mode": "deny"}, "policies": [)";
  const int n = 3 * static_cast<int>(core::PolicyLabels::kMax);  // 3x what the cap allows
  for (int i = 0; i < n; ++i) {
    json += std::string(i ? "," : "") + R"({"name": "p)" + std::to_string(i) + R"(", "match": "k)" +
            std::to_string(i) + R"(:*", "type": "token_bucket", "rate": 5})";
  }
  make(json + "]}");
  for (int i = 0; i < n; ++i)
    decide("k" + std::to_string(i) + ":x", i < 15 ? "p" + std::to_string(i) : "other");
  const Stats s = limiter->stats();
  ASSERT_EQ(s.policies.size(), core::PolicyLabels::kMax);
  EXPECT_EQ(s.policies[0].name, "other");
  for (int i = 0; i < 15; ++i) EXPECT_EQ(s.policies[i + 1].name, "p" + std::to_string(i));
  EXPECT_EQ(s.policies[0].denied[static_cast<int>(Reason::kColdKey)],
            static_cast<std::uint64_t>(n - 15));
}

// A value keeps its counters across updates (they only grow); a new name takes a new one.
TEST_F(PolicyStatsTest, AValueKeepsItsCountsAcrossUpdates) {
  make(kConfig);
  for (int i = 0; i < 5; ++i) decide("batch:x", "batch");
  limiter->update(std::string_view(R"({"cold_keys": {"mode": "deny"}, "policies": [
    {"name": "bulk", "match": "batch:*", "type": "token_bucket", "rate": 5}]})"));
  limiter->poll();
  decide("batch:y", "bulk");
  const Stats s = limiter->stats();
  ASSERT_NE(find(s, "batch"), nullptr);
  ASSERT_NE(find(s, "bulk"), nullptr);
  EXPECT_EQ(
      find(s, "batch")->denied[static_cast<int>(Reason::kColdKey)] + find(s, "batch")->admitted,
      5u);
  EXPECT_EQ(find(s, "bulk")->denied[static_cast<int>(Reason::kColdKey)], 1u);
}

// A name is configured text: quotes, backslashes and newlines are escaped in the text format.
TEST_F(PolicyStatsTest, ANameIsEscapedInTheText) {
  make(R"({"policies": [{"name": "a\"b\\c\nd", "match": "*", "type": "token_bucket",
                          "rate": 5}]})");
  decide("k", "a\"b\\c\nd");
  const std::string text = prometheus_text(*limiter);
  EXPECT_NE(text.find(R"(tollgate_policy="a\"b\\c\nd")"), std::string::npos) << text;
}

TEST(PolicyLabels, OnlyANameOfItsOwnGetsAValue) {
  core::PolicyLabels labels;
  Policy p;
  p.match = "tenant:acme";
  EXPECT_EQ(labels.label_of(p), core::PolicyLabels::kOther);  // no name
  p.name = "tenant:acme";
  EXPECT_EQ(labels.label_of(p), core::PolicyLabels::kOther);  // the name is the match
  p.name = "gold";
  EXPECT_EQ(labels.label_of(p), 1);
  p.match = "gold:*";
  EXPECT_EQ(labels.label_of(p), 1);  // the same name, the same value
  p.name = "other";
  EXPECT_EQ(labels.label_of(p), core::PolicyLabels::kOther);
  EXPECT_EQ(labels.names(), (std::vector<std::string>{"other", "gold"}));
}

}  // namespace
}  // namespace tollgate
