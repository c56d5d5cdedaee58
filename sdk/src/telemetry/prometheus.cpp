// The Prometheus text exposition, generated from the metric vocabulary (metrics.json, embedded
// at build time as telemetry/metrics_table.h) over the counters of tollgate/stats_list.h.
#include "tollgate/prometheus.h"

#include <charconv>
#include <cstdint>
#include <string_view>

#include "telemetry/metrics_table.h"
#include "tollgate/decision.h"

namespace tollgate {

namespace {

using telemetry::Instrument;
using telemetry::kMetrics;
using telemetry::MetricSpec;

// A counter by name: of Stats, or of Stats::policies' PolicyStats.
template <typename Of>
struct FieldOf {
  std::string_view name;
  std::uint64_t Of::*member;
};
using Field = FieldOf<Stats>;
using PolicyField = FieldOf<PolicyStats>;
#define TOLLGATE_STATS_ENTRY(name, since, help) Field{#name, &Stats::name},
constexpr Field kFields[] = {TOLLGATE_STATS_COUNTERS(TOLLGATE_STATS_ENTRY)};
#undef TOLLGATE_STATS_ENTRY
// The counters Stats::policies holds per policy value too: a metric of one of them whose one
// attribute is tollgate.policy has a series per value.
#define TOLLGATE_STATS_ENTRY(name, since, help) PolicyField{#name, &PolicyStats::name},
constexpr PolicyField kPolicyFields[] = {TOLLGATE_STATS_DECISIONS(TOLLGATE_STATS_ENTRY)};
#undef TOLLGATE_STATS_ENTRY
constexpr std::string_view kPolicy = "tollgate.policy";

constexpr const PolicyField* per_policy(const MetricSpec& m) {
  if (m.attribute_count != 1 || m.attributes[0] != kPolicy) return nullptr;
  for (const PolicyField& f : kPolicyFields)
    if (f.name == m.stat) return &f;
  return nullptr;
}

// The metrics whose value is not one counter of Stats.
constexpr std::string_view kDecisions = "admitted, denied";
constexpr std::string_view kLeaseDuration = "lease_duration";
constexpr std::string_view kBreakers = "breakers";

constexpr const Field* field_of(std::string_view stat) {
  for (const Field& f : kFields)
    if (f.name == stat) return &f;
  return nullptr;
}

constexpr bool special(std::string_view stat) {
  return stat == kDecisions || stat == kLeaseDuration || stat == kBreakers;
}

// Every metric reads something Stats has, and every counter of Stats is some metric's: a
// counter added to stats_list.h needs its line in metrics.json, or the build fails here.
constexpr bool every_metric_has_a_source() {
  for (const MetricSpec& m : kMetrics)
    if (!special(m.stat) && field_of(m.stat) == nullptr) return false;
  return true;
}
constexpr bool every_counter_is_exposed() {
  for (const Field& f : kFields) {
    bool found = f.name == "admitted";  // part of tollgate.decisions
    for (const MetricSpec& m : kMetrics) found = found || m.stat == f.name;
    if (!found) return false;
  }
  return true;
}
static_assert(every_metric_has_a_source(), "metrics.json names a stat that Stats lacks");
static_assert(every_counter_is_exposed(), "a counter of stats_list.h has no metric");
constexpr bool policy_attribute_only_where_counted() {
  for (const MetricSpec& m : kMetrics)
    for (std::size_t i = 0; i < m.attribute_count; ++i)
      if (m.attributes[i] == kPolicy && m.stat != kDecisions && per_policy(m) == nullptr)
        return false;
  return true;
}
static_assert(policy_attribute_only_where_counted(),
              "metrics.json gives tollgate.policy to a metric Stats::policies does not count");

constexpr bool same_bounds() {
  if (telemetry::kLeaseDurationBounds.size() != kLeaseDurationBounds.size()) return false;
  for (std::size_t i = 0; i < kLeaseDurationBounds.size(); ++i)
    if (telemetry::kLeaseDurationBounds[i] != kLeaseDurationBounds[i]) return false;
  return true;
}
static_assert(same_bounds(), "kLeaseDurationBounds and metrics.json's buckets disagree");

// An attribute's name as a label: tollgate.breaker.state -> tollgate_breaker_state.
void append_label_name(std::string& out, std::string_view attribute) {
  for (char c : attribute) out += c == '.' ? '_' : c;
}

void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_number(std::string& out, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void family(const MetricSpec& m) {
    static constexpr std::string_view kTypes[] = {"counter", "gauge", "histogram"};
    out_ += "# HELP ";
    out_ += m.prometheus;
    out_ += ' ';
    out_ += m.description;  // metrics.json: no backslash, no newline (embed_metrics.cmake)
    out_ += "\n# TYPE ";
    out_ += m.prometheus;
    out_ += ' ';
    out_ += kTypes[static_cast<int>(m.instrument)];
    out_ += '\n';
  }

  // name{label="value",...} value; the values come quoted (escaped()) or need no escaping.
  template <typename V>
  void sample(std::string_view name, std::string_view suffix,
              std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
              V value) {
    out_ += name;
    out_ += suffix;
    if (labels.size() != 0) {
      out_ += '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) out_ += ',';
        first = false;
        append_label_name(out_, k);
        out_ += "=\"";
        out_ += v;
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    append_number(out_, value);
    out_ += '\n';
  }

 private:
  std::string& out_;
};

// A label value as the text format quotes it: backslash, double quote and newline escaped.
// Policy names are configured text; the other values are bounded enums and numbers.
std::string escaped(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// A counter of Stats::policies: a series per policy value, "other" first.
void by_policy(Writer& w, const MetricSpec& m, const PolicyField& f, const Stats& s) {
  for (const PolicyStats& p : s.policies)
    w.sample(m.prometheus, "", {{kPolicy, escaped(p.name)}}, p.*f.member);
}

// Every policy label's series, from the start: "other" first, then the named policies.
void decisions(Writer& w, const MetricSpec& m, const Stats& s) {
  const auto result = m.attributes[0], reason = m.attributes[1], policy = m.attributes[2];
  for (const PolicyStats& p : s.policies) {
    const std::string name = escaped(p.name);
    w.sample(m.prometheus, "",
             {{result, "admitted"}, {reason, to_string(Reason::kOk)}, {policy, name}}, p.admitted);
    for (int r = 1; r < kReasonCount; ++r)
      w.sample(m.prometheus, "",
               {{result, "denied"}, {reason, to_string(static_cast<Reason>(r))}, {policy, name}},
               p.denied[r]);
  }
}

void lease_duration(Writer& w, const MetricSpec& m, const Stats& s) {
  static constexpr std::string_view kOutcomes[] = {"ok", "failed"};
  for (std::size_t o = 0; o < s.lease_duration.size(); ++o) {
    const DurationHistogram& h = s.lease_duration[o];
    const std::pair<std::string_view, std::string_view> outcome{m.attributes[0], kOutcomes[o]};
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kLeaseDurationBounds.size(); ++i) {
      cumulative += h.buckets[i];
      char le[32];
      auto r = std::to_chars(le, le + sizeof le, kLeaseDurationBounds[i], std::chars_format::fixed);
      w.sample(m.prometheus, "_bucket", {outcome, {"le", std::string_view(le, r.ptr - le)}},
               cumulative);
    }
    w.sample(m.prometheus, "_bucket", {outcome, {"le", "+Inf"}}, h.count);
    w.sample(m.prometheus, "_sum", {outcome}, h.sum_seconds);
    w.sample(m.prometheus, "_count", {outcome}, h.count);
  }
}

void breakers(Writer& w, const MetricSpec& m, const Stats& s) {
  static constexpr BreakerState kStates[] = {BreakerState::kClosed, BreakerState::kOpen,
                                             BreakerState::kHalfOpen};
  for (std::size_t shard = 0; shard < s.breakers.size(); ++shard) {
    char id[24];
    auto r = std::to_chars(id, id + sizeof id, shard);
    const std::string_view shard_id(id, r.ptr - id);
    for (BreakerState state : kStates)
      w.sample(m.prometheus, "", {{m.attributes[0], shard_id}, {m.attributes[1], to_string(state)}},
               std::uint64_t{s.breakers[shard] == state ? 1u : 0u});
  }
}

}  // namespace

std::string prometheus_text(const Stats& stats) {
  std::string out;
  out.reserve(8192);
  Writer w(out);
  for (const MetricSpec& m : kMetrics) {
    w.family(m);
    if (m.stat == kDecisions)
      decisions(w, m, stats);
    else if (m.stat == kLeaseDuration)
      lease_duration(w, m, stats);
    else if (m.stat == kBreakers)
      breakers(w, m, stats);
    else if (const PolicyField* f = per_policy(m))
      by_policy(w, m, *f, stats);
    else
      w.sample(m.prometheus, "", {}, stats.*(field_of(m.stat)->member));
  }
  return out;
}

std::string prometheus_text(const Limiter& limiter) {
  return prometheus_text(limiter.stats());
}

}  // namespace tollgate
