// tollgate::prometheus_text: parsed back as the Prometheus text format by a strict parser
// (and by promtool when Debian's prometheus package is installed), its families checked
// against the metric vocabulary (sdk/src/telemetry/metrics.json), its values against stats().
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tollgate/tollgate.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// ---- A strict parser of the text format 0.0.4 --------------------------------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string help;
  std::string type;
  std::vector<Sample> samples;
};

struct Exposition {
  std::map<std::string, Family> families;
  std::vector<std::string> order;  // families as they came
};

// Throws std::runtime_error naming the line for anything the format does not allow.
Exposition parse(const std::string& text) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex kLabel("[a-zA-Z_][a-zA-Z0-9_]*");
  static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                               "untyped"};
  Exposition e;
  std::set<std::string> series;
  std::string current;  // the family whose lines we are in
  std::istringstream in(text);
  std::string line;
  int n = 0;
  auto fail = [&](const std::string& why) {
    throw std::runtime_error("line " + std::to_string(n) + ": " + why + ": " + line);
  };
  if (!text.empty() && text.back() != '\n') throw std::runtime_error("no final newline");
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) fail("empty line");
    if (line.rfind("# ", 0) == 0) {
      std::istringstream words(line.substr(2));
      std::string keyword, name;
      words >> keyword >> name;
      if (keyword != "HELP" && keyword != "TYPE") fail("a comment");
      if (!std::regex_match(name, kName)) fail("bad metric name");
      std::string rest;
      std::getline(words, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      if (name != current) {
        if (e.families.count(name)) fail("family declared twice or not contiguous");
        e.order.push_back(name);
        current = name;
      }
      Family& f = e.families[name];
      if (keyword == "HELP") {
        if (!f.help.empty()) fail("second HELP");
        if (rest.empty()) fail("empty HELP");
        f.help = rest;
      } else {
        if (!f.type.empty()) fail("second TYPE");
        if (!f.samples.empty()) fail("TYPE after samples");
        if (!kTypes.count(rest)) fail("unknown type");
        f.type = rest;
      }
      continue;
    }
    if (line[0] == '#') fail("a comment");
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!std::regex_match(s.name, kName)) fail("bad sample name");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (true) {
        std::size_t eq = line.find('=', i);
        if (eq == std::string::npos) fail("label without =");
        std::string label = line.substr(i, eq - i);
        if (!std::regex_match(label, kLabel) || label.rfind("__", 0) == 0) fail("bad label name");
        if (eq + 1 >= line.size() || line[eq + 1] != '"') fail("label value not quoted");
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            if (++j >= line.size()) fail("dangling escape");
            if (line[j] == 'n')
              value += '\n';
            else if (line[j] == '\\' || line[j] == '"')
              value += line[j];
            else
              fail("bad escape");
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) fail("unterminated label value");
        if (!s.labels.emplace(label, value).second) fail("label twice");
        i = j + 1;
        if (i < line.size() && line[i] == ',') {
          ++i;
          continue;
        }
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        fail("label list not closed");
      }
    }
    if (i >= line.size() || line[i] != ' ') fail("no space before the value");
    const std::string value = line.substr(i + 1);
    if (value.empty() || value.find(' ') != std::string::npos) fail("value (no timestamps here)");
    std::size_t used = 0;
    try {
      s.value = std::stod(value, &used);
    } catch (...) {
      fail("value not a number");
    }
    if (used != value.size()) fail("value not a number");
    // The sample's family: its name, or for histograms the name without _bucket/_sum/_count.
    std::string family = s.name;
    const Family* f = e.families.count(current) ? &e.families[current] : nullptr;
    if (f && f->type == "histogram") {
      family.clear();
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string sfx = suffix;
        if (s.name.size() > sfx.size() &&
            s.name.compare(s.name.size() - sfx.size(), sfx.size(), sfx) == 0 &&
            s.name.substr(0, s.name.size() - sfx.size()) == current)
          family = current;
      }
      if (family != current) fail("histogram sample without _bucket/_sum/_count");
      if ((s.name == current + "_bucket") != (s.labels.count("le") == 1)) fail("le misplaced");
    }
    if (family != current || f == nullptr || f->type.empty())
      fail("sample outside its family's HELP/TYPE");
    std::string key = s.name;
    for (const auto& [k, v] : s.labels) key += "|" + k + "=" + v;
    if (!series.insert(key).second) fail("duplicate series");
    e.families[current].samples.push_back(std::move(s));
  }
  return e;
}

// ---- The vocabulary -------------------------------------------------------------------------

Json vocabulary() {
  std::ifstream in(TOLLGATE_METRICS_JSON);
  if (!in) throw std::runtime_error("cannot read " TOLLGATE_METRICS_JSON);
  return Json::parse(in);
}

// OpenTelemetry's translation to Prometheus: dots to underscores, a known unit as a suffix
// ({annotations} dropped), _total on counters.
std::string prometheus_name(const Json& m) {
  std::string name = m["name"].get<std::string>();
  for (char& c : name)
    if (c == '.') c = '_';
  const std::string unit = m["unit"].get<std::string>();
  if (unit == "s") name += "_seconds";
  if (unit == "By") name += "_bytes";
  if (m["instrument"] == "counter") name += "_total";
  return name;
}

std::string label_of(std::string attribute) {
  for (char& c : attribute)
    if (c == '.') c = '_';
  return attribute;
}

// ---- Limiters to expose ---------------------------------------------------------------------

// Answers lease calls when the test says, and reports two shards' breakers.
class HeldStore final : public QuotaStore {
 public:
  void lease(std::vector<LeaseRequest> batch, LeaseCallback done) override {
    pending.push_back({std::move(batch), std::move(done)});
  }
  void give_back(std::vector<GiveBack>) override {}
  std::vector<BreakerState> breaker_states() const override {
    return {BreakerState::kClosed, BreakerState::kOpen};
  }
  void answer_all(std::uint64_t tokens, Nanos expires_at) {
    auto calls = std::move(pending);
    pending.clear();
    for (auto& [batch, done] : calls) {
      std::vector<LeaseGrant> grants(batch.size());
      for (auto& g : grants) {
        g.granted = tokens;
        g.expires_at = expires_at;
      }
      done(std::move(grants));
    }
  }
  std::vector<std::pair<std::vector<LeaseRequest>, LeaseCallback>> pending;
};

struct CountingObserver final : Observer {
  std::atomic<int> leases{0};
  void on_lease(const LeaseEvent&) noexcept override { ++leases; }
};

Config tenant_config() {
  Config c;
  Policy p;
  p.name = "tenants";
  p.match = "tenant:*";
  p.rate = 100;
  p.burst = 100;
  c.policies.push_back(p);
  c.cold_keys.mode = ColdKeyMode::kDeny;
  c.leases.refresh = std::chrono::milliseconds{0};  // each cold key's lease goes at once
  return c;
}

class PrometheusText : public ::testing::Test {
 protected:
  PrometheusText() {
    Limiter::Options o;
    o.store = store;
    o.clock = clock;
    o.background_thread = false;
    o.observer = observer;
    limiter = std::make_unique<Limiter>(tenant_config(), o);
  }
  // A cold key is denied and asks for a lease; the store answers 3 ms later.
  void lease_once(const std::string& key) {
    limiter->try_acquire(key, 1);
    limiter->poll();
    clock->advance(3ms);
    store->answer_all(50, clock->now() + 10s);
    limiter->poll();
  }
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::shared_ptr<HeldStore> store = std::make_shared<HeldStore>();
  std::shared_ptr<CountingObserver> observer = std::make_shared<CountingObserver>();
  std::unique_ptr<Limiter> limiter;
};

// The value of the first sample of `f` (named `name`, when given) that has all `labels`.
double value(const Family& f, const std::map<std::string, std::string>& labels,
             const std::string& name = "") {
  for (const Sample& s : f.samples) {
    if (!name.empty() && s.name != name) continue;
    bool all = true;
    for (const auto& [k, v] : labels) all = all && s.labels.count(k) && s.labels.at(k) == v;
    if (all) return s.value;
  }
  std::string what = name;
  for (const auto& [k, v] : labels) what += " " + k + "=" + v;
  ADD_FAILURE() << "no sample " << what;
  return -1;
}

TEST(PrometheusParser, RefusesWhatTheFormatDoesNotAllow) {
  // The parser must be able to fail, or its passing says nothing.
  EXPECT_THROW(parse("x_total 1\n"), std::runtime_error);  // no TYPE
  EXPECT_THROW(parse("# TYPE x counter\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n"), std::runtime_error);
  EXPECT_THROW(parse("# TYPE x counter\nx{a=1} 1\n"), std::runtime_error);
  EXPECT_THROW(parse("# TYPE x counter\nx{a.b=\"1\"} 1\n"), std::runtime_error);
  EXPECT_THROW(parse("# TYPE x counter\nx one\n"), std::runtime_error);
  EXPECT_THROW(parse("# TYPE x counter\nx 1"), std::runtime_error);
  EXPECT_THROW(parse("# TYPE x counter\n# TYPE y gauge\n# TYPE x counter\n"), std::runtime_error);
  EXPECT_THROW(parse("# TYPE h histogram\nh 1\n"), std::runtime_error);
  EXPECT_NO_THROW(parse("# HELP x X.\n# TYPE x counter\nx{a=\"\\\"q\\\"\"} 1.5e3\n"));
}

TEST_F(PrometheusText, ParsesAsTheTextFormat) {
  lease_once("tenant:acme");
  const std::string text = prometheus_text(*limiter);
  Exposition e;
  ASSERT_NO_THROW(e = parse(text)) << text;
  for (const auto& [name, f] : e.families) {
    EXPECT_FALSE(f.help.empty()) << name;
    EXPECT_FALSE(f.type.empty()) << name;
    if (f.type == "counter") {
      EXPECT_EQ(name.substr(name.size() - 6), "_total") << name;
      for (const Sample& s : f.samples) EXPECT_GE(s.value, 0) << name;
    }
  }
}

TEST_F(PrometheusText, HasEveryMetricOfTheVocabularyAndNothingElse) {
  const Json v = vocabulary();
  const Exposition e = parse(prometheus_text(*limiter));
  std::set<std::string> expected;
  for (const Json& m : v["metrics"]) {
    const std::string name = m["prometheus"];
    expected.insert(name);
    EXPECT_EQ(name, prometheus_name(m)) << "metrics.json: the Prometheus name of " << m["name"];
    ASSERT_EQ(e.families.count(name), 1u) << name;
    const Family& f = e.families.at(name);
    EXPECT_EQ(f.help, m["description"].get<std::string>()) << name;
    const std::string instrument = m["instrument"];
    EXPECT_EQ(f.type, instrument == "counter"     ? "counter"
                      : instrument == "histogram" ? "histogram"
                                                  : "gauge")
        << name;
    std::set<std::string> labels;
    for (const Json& a : m["attributes"]) labels.insert(label_of(a));
    for (const Sample& s : f.samples) {
      std::set<std::string> got;
      for (const auto& [k, _] : s.labels)
        if (k != "le") got.insert(k);
      EXPECT_EQ(got, labels) << s.name;
    }
  }
  std::set<std::string> got(e.order.begin(), e.order.end());
  EXPECT_EQ(got, expected);
}

TEST_F(PrometheusText, LabelValuesAreTheVocabularysAndNoKeyAppears) {
  lease_once("tenant:acme-secret-tenant");
  limiter->try_acquire("nobody:acme-secret-tenant", 1);  // no policy
  const std::string text = prometheus_text(*limiter);
  EXPECT_EQ(text.find("acme"), std::string::npos) << text;
  const Json v = vocabulary();
  const Exposition e = parse(text);
  for (const Json& m : v["metrics"]) {
    for (const Sample& s : e.families.at(m["prometheus"].get<std::string>()).samples) {
      for (const Json& a : m["attributes"]) {
        // Compared as a std::string: g++ 12 -O3 warns (-Warray-bounds, a false positive)
        // on Json == const char*, and warnings are errors.
        const std::string attribute = a.get<std::string>();
        const Json& values = v["attributes"][attribute]["values"];
        const std::string value = s.labels.at(label_of(a));
        if (attribute == "tollgate.policy") {  // "other", or the name of a policy of the config
          EXPECT_TRUE(value == "other" || value == "tenants") << value;
          continue;
        }
        if (values.empty()) continue;  // tollgate.shard: an index
        // A loop, not std::find over the Json array: g++ 12 -O3 warns (-Warray-bounds, a
        // false positive) on the latter, and warnings are errors.
        bool known = false;
        for (const Json& x : values) known = known || x.get<std::string>() == value;
        EXPECT_TRUE(known) << a << "=" << value;
      }
    }
  }
}

TEST_F(PrometheusText, CountsWhatStatsCount) {
  lease_once("tenant:a");
  for (int i = 0; i < 7; ++i) limiter->try_acquire("tenant:a", 2);
  limiter->try_acquire("nobody:x", 1);
  limiter->try_acquire("tenant:cold", 1);
  const Stats s = limiter->stats();
  ASSERT_EQ(s.admitted, 7u);
  const Exposition e = parse(prometheus_text(*limiter));
  const Family& d = e.families.at("tollgate_decisions_total");
  EXPECT_EQ(value(d, {{"tollgate_result", "admitted"}, {"tollgate_policy", "tenants"}}), 7);
  EXPECT_EQ(value(d, {{"tollgate_result", "admitted"}, {"tollgate_policy", "other"}}), 0);
  EXPECT_EQ(value(d, {{"tollgate_reason", "no_policy"}, {"tollgate_policy", "other"}}), 1);
  EXPECT_EQ(value(d, {{"tollgate_reason", "no_policy"}, {"tollgate_policy", "tenants"}}), 0);
  EXPECT_EQ(value(d, {{"tollgate_reason", "cold_key"}, {"tollgate_policy", "tenants"}}),
            s.denied[static_cast<int>(Reason::kColdKey)]);
  // Each reason for each policy value, "other" and the config's one named policy.
  EXPECT_EQ(d.samples.size(), 2u * kReasonCount);
  const Family& tokens = e.families.at("tollgate_tokens_admitted_total");
  EXPECT_EQ(value(tokens, {{"tollgate_policy", "tenants"}}), 14);
  EXPECT_EQ(value(tokens, {{"tollgate_policy", "other"}}), 0);
  EXPECT_EQ(tokens.samples.size(), 2u);
  EXPECT_EQ(e.families.at("tollgate_lease_tokens_granted_total").samples.at(0).value,
            s.tokens_leased);
  EXPECT_EQ(e.families.at("tollgate_lease_requests_total").samples.at(0).value, s.leases_asked);
  EXPECT_EQ(e.families.at("tollgate_keys_tracked").samples.at(0).value, s.keys_tracked);
  EXPECT_EQ(e.families.at("tollgate_memory_usage_bytes").samples.at(0).value, s.bytes_used);
}

TEST_F(PrometheusText, TheLeaseDurationHistogramHoldsEachRoundTripInItsBucket) {
  lease_once("tenant:a");  // 3 ms
  lease_once("tenant:b");
  ASSERT_EQ(observer->leases.load(), 2);
  const Exposition e = parse(prometheus_text(*limiter));
  const Family& h = e.families.at("tollgate_lease_duration_seconds");
  const std::string b = "tollgate_lease_duration_seconds_bucket";
  const std::map<std::string, std::string> ok = {{"tollgate_outcome", "ok"}};
  EXPECT_EQ(value(h, {{"tollgate_outcome", "ok"}, {"le", "0.0005"}}, b), 0);
  EXPECT_EQ(value(h, {{"tollgate_outcome", "ok"}, {"le", "0.0025"}}, b), 0);
  EXPECT_EQ(value(h, {{"tollgate_outcome", "ok"}, {"le", "0.005"}}, b), 2);
  EXPECT_EQ(value(h, {{"tollgate_outcome", "ok"}, {"le", "+Inf"}}, b), 2);
  EXPECT_EQ(value(h, ok, "tollgate_lease_duration_seconds_count"), 2);
  EXPECT_NEAR(value(h, ok, "tollgate_lease_duration_seconds_sum"), 0.006, 1e-9);
  EXPECT_EQ(value(h, {{"tollgate_outcome", "failed"}}, "tollgate_lease_duration_seconds_count"), 0);
  // Buckets are cumulative.
  double last = 0;
  for (const Sample& s : h.samples) {
    if (s.name != b || s.labels.at("tollgate_outcome") != "ok") continue;
    EXPECT_GE(s.value, last) << s.labels.at("le");
    last = s.value;
  }
}

TEST_F(PrometheusText, GivesEachShardsBreakerState) {
  const Exposition e = parse(prometheus_text(*limiter));
  const Family& f = e.families.at("tollgate_breaker_state");
  EXPECT_EQ(f.samples.size(), 6u);  // 2 shards x 3 states
  EXPECT_EQ(value(f, {{"tollgate_shard", "0"}, {"tollgate_breaker_state", "closed"}}), 1);
  EXPECT_EQ(value(f, {{"tollgate_shard", "0"}, {"tollgate_breaker_state", "open"}}), 0);
  EXPECT_EQ(value(f, {{"tollgate_shard", "1"}, {"tollgate_breaker_state", "open"}}), 1);
  EXPECT_EQ(value(f, {{"tollgate_shard", "1"}, {"tollgate_breaker_state", "closed"}}), 0);
}

TEST_F(PrometheusText, PromtoolAcceptsIt) {
  if (std::system("command -v promtool > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "promtool not installed (Debian's prometheus package; scripts/deps)";
  lease_once("tenant:a");
  const std::string path = ::testing::TempDir() + "/tollgate_metrics.prom";
  std::ofstream(path) << prometheus_text(*limiter);
  const std::string out_path = path + ".out";
  const int rc =
      std::system(("promtool check metrics < " + path + " > " + out_path + " 2>&1").c_str());
  std::ifstream out(out_path);
  const std::string said((std::istreambuf_iterator<char>(out)), {});
  EXPECT_EQ(rc, 0) << said;
  EXPECT_EQ(said, "") << said;  // no lint complaint either
}

// docs/observability.md's metrics table is the vocabulary's, row for row.
TEST(MetricVocabulary, TheDocsTableIsMetricsJson) {
  std::ifstream in(TOLLGATE_OBSERVABILITY_MD);
  ASSERT_TRUE(in) << TOLLGATE_OBSERVABILITY_MD;
  std::vector<std::string> rows;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("<!-- metrics table", 0) == 0) inside = true;
    if (line.rfind("<!-- end of metrics table", 0) == 0) inside = false;
    if (inside && line.rfind("| `", 0) == 0) rows.push_back(line);
  }
  std::vector<std::string> expected;
  const Json v = vocabulary();
  for (const Json& m : v["metrics"]) {
    std::string attrs;
    for (const Json& a : m["attributes"])
      attrs += (attrs.empty() ? "`" : ", `") + a.get<std::string>() + "`";
    expected.push_back(
        "| `" + m["name"].get<std::string>() + "` | " + m["instrument"].get<std::string>() +
        " | `" + m["unit"].get<std::string>() + "` | " + (attrs.empty() ? "—" : attrs) + " | `" +
        m["prometheus"].get<std::string>() + "` | " + m["description"].get<std::string>() + " |");
  }
  EXPECT_EQ(rows, expected);
}

// Every tollgate_* name in `promql` is a metric (or a histogram's series) or a label of the
// vocabulary; returns the names that are neither.
std::set<std::string> unknown_names(const std::string& promql) {
  std::set<std::string> known;
  const Json v = vocabulary();
  for (const Json& m : v["metrics"]) {
    const std::string name = m["prometheus"];
    known.insert(name);
    if (m["instrument"] == "histogram")
      for (const char* suffix : {"_bucket", "_sum", "_count"}) known.insert(name + suffix);
    for (const Json& a : m["attributes"]) known.insert(label_of(a));
  }
  std::set<std::string> unknown;
  static const std::regex kName("tollgate_[a-z_]+");
  for (auto it = std::sregex_iterator(promql.begin(), promql.end(), kName);
       it != std::sregex_iterator(); ++it)
    if (!known.count(it->str())) unknown.insert(it->str());
  return unknown;
}

TEST(MetricVocabulary, TheGrafanaDashboardQueriesOnlyTheVocabulary) {
  std::ifstream in(TOLLGATE_GRAFANA_DASHBOARD);
  ASSERT_TRUE(in) << TOLLGATE_GRAFANA_DASHBOARD;
  const Json dashboard = Json::parse(in);
  std::string all;
  int targets = 0;
  for (const Json& panel : dashboard["panels"])
    for (const Json& t : panel["targets"]) {
      all += t["expr"].get<std::string>() + "\n";
      ++targets;
    }
  EXPECT_GE(targets, 8);
  EXPECT_EQ(unknown_names(all), std::set<std::string>{});
  EXPECT_EQ(unknown_names("tollgate_decision_total{tollgate_reasons=\"x\"}"),
            (std::set<std::string>{"tollgate_decision_total", "tollgate_reasons"}));
}

TEST(MetricVocabulary, ThePromQLInTheDocsQueriesOnlyTheVocabulary) {
  std::ifstream in(TOLLGATE_OBSERVABILITY_MD);
  ASSERT_TRUE(in);
  std::string promql, line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.rfind("```", 0) == 0) {
      inside = line == "```promql";
      continue;
    }
    if (inside) promql += line + "\n";
  }
  EXPECT_NE(promql.find("histogram_quantile"), std::string::npos);
  EXPECT_EQ(unknown_names(promql), std::set<std::string>{});
}

TEST_F(PrometheusText, TheCApiWritesTheSameTextLikeSnprintf) {
  tg_limiter* l = nullptr;
  char err[256];
  ASSERT_EQ(tg_limiter_create(&l,
                              R"({"policies": [{"match": "tenant:*", "type": "token_bucket",
                                  "rate": 10}]})",
                              nullptr, err, sizeof err),
            TG_OK)
      << err;
  size_t needed = 0;
  EXPECT_EQ(tg_limiter_prometheus_text(nullptr, 0, &needed, l), TG_OK);
  ASSERT_GT(needed, 100u);
  std::string small(10, 'x');
  size_t again = 0;
  EXPECT_EQ(tg_limiter_prometheus_text(small.data(), small.size(), &again, l), TG_OK);
  EXPECT_EQ(again, needed);
  EXPECT_EQ(small, std::string(10, 'x'));  // nothing written when it does not fit
  std::vector<char> buf(needed + 1);
  EXPECT_EQ(tg_limiter_prometheus_text(buf.data(), buf.size(), &again, l), TG_OK);
  EXPECT_EQ(std::string(buf.data()).size(), needed);
  EXPECT_NO_THROW(parse(buf.data()));
  EXPECT_EQ(tg_limiter_prometheus_text(buf.data(), buf.size(), nullptr, l),
            TG_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(tg_limiter_prometheus_text(nullptr, 5, &again, l), TG_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(tg_limiter_prometheus_text(buf.data(), buf.size(), &again, nullptr),
            TG_ERR_INVALID_ARGUMENT);
  tg_limiter_destroy(&l);
}

}  // namespace
}  // namespace tollgate
