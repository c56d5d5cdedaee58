// The fleet in virtual time: real Limiters (the SDK's own code, each on the shared
// ManualClock, driven by poll() instead of an SDK thread) over modelled shards — the
// in-process store's bucket math behind a latency, service-time and queueing model, under
// the SDK's own GuardedStore (bulkhead, breaker, retries with jitter), exactly as the
// Redis store puts them over Redis. One event loop, one thread, one seed: the same seed
// gives the same figures, byte for byte (all but wall_seconds).
//
// Admissions are counted here, on the application side, in 10 ms bins, and checked
// against the bound docs/architecture.md states for every sliding window of 100 ms, 1 s,
// 10 s and the whole run, per tenant and per group. See --help and docs/performance.md.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../common/duration_arg.h"
#include "faults/faulty_store.h"
#include "model.h"
#include "quota/bucket_math.h"
#include "tollgate/tollgate.hpp"

namespace fleet {
namespace {

using namespace std::chrono_literals;
using tollgate::Decision;
using tollgate::Reason;

constexpr const char* kHelp = R"(tollgate_fleet: the reference fleet in virtual time

usage: tollgate_fleet [options]
  --instances N         instances (Limiters) sharing the quotas          [60]
  --shards N            modelled shards: a count, not URLs (tollgate_sim's
                        --shards takes URLs of real servers)              [7]
  --tenants N           tenants, one token-bucket policy each             [1000]
  --groups N            groups of tenants (a group lives on one shard)    [50]
  --group-budget F      each group's budget as a fraction of the sum of its
                        tenants' rates; 0: groups are shard hints only    [0.8]
  --rate R              every tenant at R tokens/s (default: drawn
                        log-uniformly from 10 to 2000 with the seed)
  --demand X            total offered load, as X x total capacity         [2.0]
  --skew uniform|zipf:S uniform: every tenant offered X x its rate; zipf: the
                        same total spread over tenants as 1/rank^S        [uniform]
  --lb-skew S           requests go to instances as 1/rank^S (0: evenly)  [0]
  --cost N              each request costs 1..N tokens, uniformly         [1]
  --spikes K            K spikes per virtual second, each a random tenant
                        offered --spike-x x its rate for 100 ms           [0]
  --spike-x M                                                             [100]
  --idle T@START+DUR    tenant T offers nothing for DUR (repeatable)
  --ramp T@START        tenant T's offered load rises 10x over one second
  --spike T@START       tenant T offered --spike-x x its rate for 100 ms
  --virtual-seconds S   length of the run in virtual time                 [600]
  --seed N              one seed for everything random                    [1]
  --fault KIND:TARGET@START+DURATION   (repeatable), times like 30s or 500ms:
      stop:SHARD     the shard serves nothing (calls wait, as SIGSTOP)
      kill:SHARD     connections refused; restarted empty at the end
      slow:SHARD     each reply delayed by up to --slow-ms
      drop:SHARD     half the replies lost after the call ran
      failover:SHARD@START   the shard's primary dies (calls in flight lost, new
                     ones refused) and its replica is promoted after
                     --node-timeout-ms, holding the buckets as of
                     --replication-lag-ms before the death (no +DURATION)
      reshard:SHARD@START+DURATION   a slot move: every call to the shard is
                     redirected once (one more round trip), nothing lost [+1s]
      stall:INST     the instance runs nothing (GC pause, throttled pod); its
                     requests wait and run when it resumes, before its poll
      restart:INST   the instance dies (its leases lost, nothing given back);
                     its traffic goes to the next instance; it comes back with
                     a new instance id after DURATION
  --slow-ms MS                                                            [500]
  --replication-lag-ms MS   a failover's replica lag, as the allowance states it [10]
  --node-timeout-ms MS  a failover's detection time, death to promotion  [1000]
  --fallback-instances N   policies' fallback.instances (the local fallback
                        bucket is rate / N per instance)   [SDK default, 0: share]
  --fair-instances on|off   policies' fair_instances      [SDK default: on for
                        every token bucket]
  --require-strength X  exit 4 unless, at every window length, some tenant or
                        group was offered >= X times what the bound allows
                        there (a check that offers less cannot fail)
  --require-utilization X        exit 5 unless utilization >= X
  --require-tail-utilization X   exit 5 unless tail_utilization_p10 >= X
  --require-admitted-per-call X  exit 5 unless admitted_per_store_call >= X
                        (floors on the figures: a limiter that wastes capacity or
                        calls fails them)
  --ttl-ms, --horizon-ms, --max-fraction, --min-tokens, --refresh-ms
                        lease settings (default: the SDK's defaults, LeaseOptions)
  --rtt-us, --call-us, --script-us, --lease-us, --shared-lease-us, --give-back-us,
  --keys-per-script     the cost model: per round trip, per script run, per key
                        (docs/performance.md, calibration)
  --inject-fault double-grant|tenfold-grant|spend-expired   a test-only broken store
                        (tools/faults) between every Limiter and its store;
                stale-replica   a failover's replica 5 s behind while the
                        allowance assumes --replication-lag-ms
  --scenario inference  costs known only afterwards (docs/quotas.md, "Estimated
                        costs"): each request reserves an estimate (1..--cost,
                        uniformly, [200] here, at most a quarter of the tenant's
                        burst) and settles its actual cost, the
                        estimate x a lognormal of mean 0.4 and p99 2.5, after
                        holding it open for a lognormal time (median 2 s, p99
                        20 s); --demand is in actual cost; admitted counts the
                        charged actual cost, and the bound adds the overage
                        outstanding (see docs/performance.md). Groups are shard
                        hints unless --group-budget is given.
  --charge settle|estimate   inference: settle the actual cost (Reservation), or
                        charge the estimate (try_acquire(estimate)) [settle]
  --timeline FILE.csv   per 100 ms: admitted, offered and capacity per group
                        and per the first --timeline-tenants tenants, script
                        runs per shard, fault windows (bench/fleet/plot.py)
  --timeline-tenants N                                                    [10]
  --per-tenant FILE.csv one row per tenant: rate, group, offered rate, the steady
                        window's capacity (what it could have had), admitted
                        and offered there, its utilization, denials by reason
  --json                the summary as JSON (one field per line)
  --quiet               no progress line per virtual minute

Names differ from tollgate_sim where the meaning does: over_bound (the largest excess
over the bound of docs/architecture.md at any window size, tokens) vs tollgate_sim's
over_admitted; --shards N a count; --virtual-seconds, not --seconds.
Exit status: 0; 1 when over_bound > 0; 2 on bad arguments; 4 when --require-strength
is not met; 5 when a --require-utilization, --require-tail-utilization or
--require-admitted-per-call floor is not met.
)";

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "tollgate_fleet: %s (--help for the options)\n", why.c_str());
  std::exit(2);
}

using tollgate::bench::seconds_of;

struct FaultSpec {
  std::string kind;
  int target = 0;
  double start = 0, duration = 0;
  bool on_shard() const {
    return kind == "stop" || kind == "kill" || kind == "slow" || kind == "drop" ||
           kind == "failover" || kind == "reshard";
  }
  // A fault whose keys fall back (the fallback allowance): all on a shard but a slot move,
  // whose calls are only redirected.
  bool falls_back() const { return on_shard() && kind != "reshard"; }
};

struct DemandEvent {
  std::string kind;  // idle, ramp, spike
  int tenant = 0;
  double start = 0, duration = 0;
};

struct Options {
  int instances = 60, shards = 7, tenants = 1000, groups = 50;
  double group_budget = 0.8;
  double rate = 0;  // 0: log-uniform 10..2000
  double demand = 2.0, zipf = 0, lb_skew = 0;
  int cost = 1;
  bool cost_given = false, budget_given = false;
  bool inference = false;        // --scenario inference
  bool charge_estimate = false;  // --charge estimate
  double spikes = 0, spike_x = 100;
  std::vector<DemandEvent> demand_events;
  double virtual_seconds = 600;
  std::uint64_t seed = 1;
  std::vector<FaultSpec> faults;
  double slow_ms = 500;
  double replication_lag_ms = 10, node_timeout_ms = 1000;
  bool stale_replica = false;            // --inject-fault stale-replica
  std::uint32_t fallback_instances = 0;  // 0: the SDK's default
  std::optional<bool> fair_instances;    // unset: the SDK's default
  double require_strength = 0;
  double require_utilization = 0, require_tail = 0, require_per_call = 0;
  tollgate::LeaseOptions leases;  // the SDK's defaults unless a flag says otherwise
  CostModel cost_model;
  tollgate::faults::Fault inject = tollgate::faults::Fault::kNone;
  std::string timeline;
  int timeline_tenants = 10;
  std::string per_tenant;
  bool json = false, quiet = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    auto at_spec = [&](const std::string& v, bool with_duration) {
      const auto at = v.find('@'), plus = v.find('+');
      if (at == std::string::npos || (with_duration && plus == std::string::npos)) {
        usage(a + " takes N@START" + (with_duration ? "+DURATION" : ""));
      }
      DemandEvent e;
      e.tenant = std::stoi(v.substr(0, at));
      e.start = seconds_of(v.substr(at + 1, with_duration ? plus - at - 1 : std::string::npos));
      e.duration = with_duration ? seconds_of(v.substr(plus + 1)) : 1.0;
      return e;
    };
    try {
      if (a == "--help" || a == "-h") {
        std::fputs(kHelp, stdout);
        std::exit(0);
      } else if (a == "--instances") {
        o.instances = std::stoi(value());
      } else if (a == "--shards") {
        o.shards = std::stoi(value());
      } else if (a == "--tenants") {
        o.tenants = std::stoi(value());
      } else if (a == "--groups") {
        o.groups = std::stoi(value());
      } else if (a == "--group-budget") {
        o.group_budget = std::stod(value());
        o.budget_given = true;
      } else if (a == "--scenario") {
        if (value() != "inference") usage("--scenario takes inference");
        o.inference = true;
      } else if (a == "--charge") {
        const std::string v = value();
        if (v != "settle" && v != "estimate") usage("--charge takes settle or estimate");
        o.charge_estimate = v == "estimate";
      } else if (a == "--rate") {
        o.rate = std::stod(value());
      } else if (a == "--demand") {
        o.demand = std::stod(value());
      } else if (a == "--skew") {
        const std::string v = value();
        if (v == "uniform") {
          o.zipf = 0;
        } else if (v.rfind("zipf:", 0) == 0) {
          o.zipf = std::stod(v.substr(5));
        } else {
          usage("--skew takes uniform or zipf:S");
        }
      } else if (a == "--lb-skew") {
        o.lb_skew = std::stod(value());
      } else if (a == "--cost") {
        o.cost = std::stoi(value());
        o.cost_given = true;
      } else if (a == "--spikes") {
        o.spikes = std::stod(value());
      } else if (a == "--spike-x") {
        o.spike_x = std::stod(value());
      } else if (a == "--idle") {
        DemandEvent e = at_spec(value(), true);
        e.kind = "idle";
        o.demand_events.push_back(e);
      } else if (a == "--ramp") {
        DemandEvent e = at_spec(value(), false);
        e.kind = "ramp";
        o.demand_events.push_back(e);
      } else if (a == "--spike") {
        DemandEvent e = at_spec(value(), false);
        e.kind = "spike";
        e.duration = 0.1;
        o.demand_events.push_back(e);
      } else if (a == "--fallback-instances") {
        o.fallback_instances = static_cast<std::uint32_t>(std::stoul(value()));
      } else if (a == "--fair-instances") {
        const std::string v = value();
        if (v != "on" && v != "off") usage("--fair-instances takes on or off");
        o.fair_instances = v == "on";
      } else if (a == "--require-strength") {
        o.require_strength = std::stod(value());
      } else if (a == "--require-utilization") {
        o.require_utilization = std::stod(value());
      } else if (a == "--require-tail-utilization") {
        o.require_tail = std::stod(value());
      } else if (a == "--require-admitted-per-call") {
        o.require_per_call = std::stod(value());
      } else if (a == "--virtual-seconds") {
        o.virtual_seconds = seconds_of(value());
      } else if (a == "--seed") {
        o.seed = std::stoull(value());
      } else if (a == "--fault") {
        const std::string v = value();
        const auto colon = v.find(':'), at = v.find('@'), plus = v.find('+');
        // failover takes no duration (its detection is --node-timeout-ms), reshard's is
        // optional.
        const std::string kind = colon == std::string::npos ? "" : v.substr(0, colon);
        const bool cluster = kind == "failover" || kind == "reshard";
        if (colon == std::string::npos || at == std::string::npos ||
            (plus == std::string::npos && !cluster) || !(colon < at && at < plus) ||
            (kind == "failover" && plus != std::string::npos)) {
          usage(
              "--fault takes KIND:TARGET@START+DURATION, e.g. stop:1@60s+30s "
              "(failover:N@START, reshard:N@START[+DURATION])");
        }
        FaultSpec f;
        f.kind = kind;
        f.target = std::stoi(v.substr(colon + 1, at - colon - 1));
        f.start = seconds_of(v.substr(at + 1, plus == std::string::npos ? plus : plus - at - 1));
        // A failover's duration is its detection time, set below from the flag.
        f.duration = plus == std::string::npos ? (kind == "reshard" ? 1.0 : 0.0)
                                               : seconds_of(v.substr(plus + 1));
        if (!f.on_shard() && f.kind != "stall" && f.kind != "restart") {
          usage(
              "--fault kinds: stop, kill, slow, drop, failover, reshard (a shard); stall, "
              "restart (an instance)");
        }
        o.faults.push_back(f);
      } else if (a == "--slow-ms") {
        o.slow_ms = std::stod(value());
      } else if (a == "--replication-lag-ms") {
        o.replication_lag_ms = std::stod(value());
      } else if (a == "--node-timeout-ms") {
        o.node_timeout_ms = std::stod(value());
      } else if (a == "--ttl-ms") {
        o.leases.ttl = std::chrono::milliseconds(std::stoi(value()));
      } else if (a == "--horizon-ms") {
        o.leases.horizon = std::chrono::milliseconds(std::stoi(value()));
      } else if (a == "--max-fraction") {
        o.leases.max_fraction = std::stod(value());
      } else if (a == "--min-tokens") {
        o.leases.min_tokens = std::stoull(value());
      } else if (a == "--refresh-ms") {
        o.leases.refresh = std::chrono::milliseconds(std::stoi(value()));
      } else if (a == "--script-us") {
        o.cost_model.script_us = std::stod(value());
      } else if (a == "--keys-per-script") {
        o.cost_model.keys_per_script = std::stoul(value());
      } else if (a == "--rtt-us") {
        o.cost_model.rtt_us = std::stod(value());
      } else if (a == "--call-us") {
        o.cost_model.call_us = std::stod(value());
      } else if (a == "--lease-us") {
        o.cost_model.lease_us = std::stod(value());
      } else if (a == "--shared-lease-us") {
        o.cost_model.shared_lease_us = std::stod(value());
      } else if (a == "--give-back-us") {
        o.cost_model.give_back_us = std::stod(value());
      } else if (a == "--inject-fault") {
        const std::string v = value();
        auto f = tollgate::faults::parse_fault(v);
        if (v == "stale-replica") {
          o.stale_replica = true;
        } else if (!f) {
          usage(
              "--inject-fault takes none, double-grant, tenfold-grant, spend-expired or "
              "stale-replica");
        } else {
          o.inject = *f;
        }
      } else if (a == "--timeline") {
        o.timeline = value();
      } else if (a == "--timeline-tenants") {
        o.timeline_tenants = std::stoi(value());
      } else if (a == "--per-tenant") {
        o.per_tenant = value();
      } else if (a == "--json") {
        o.json = true;
      } else if (a == "--quiet") {
        o.quiet = true;
      } else {
        usage("unknown argument " + a);
      }
    } catch (const std::invalid_argument&) {
      usage("bad value for " + a);
    } catch (const std::out_of_range&) {
      usage("bad value for " + a);
    }
  }
  if (o.inference) {
    if (!o.cost_given) o.cost = 200;
    // Debts are charged to group budgets too, but the group check adds no overage term yet.
    if (!o.budget_given) o.group_budget = 0;
  } else if (o.charge_estimate) {
    usage("--charge is for --scenario inference");
  }
  if (o.instances < 1 || o.shards < 1 || o.tenants < 1 || o.groups < 1 || o.groups > o.tenants) {
    usage("need instances, shards >= 1 and 1 <= groups <= tenants");
  }
  if (o.tenants > 60000) usage("at most 60000 tenants (one policy each)");
  if (!(o.demand > 0) || !(o.virtual_seconds > 0) || o.zipf < 0 || o.cost < 1 ||
      o.group_budget < 0 || o.rate < 0 || o.spikes < 0 || o.lb_skew < 0) {
    usage("demand, virtual-seconds, cost must be > 0; skews, rates, budgets >= 0");
  }
  if (o.replication_lag_ms < 0 || !(o.node_timeout_ms > 0)) {
    usage("--replication-lag-ms must be >= 0, --node-timeout-ms > 0");
  }
  for (FaultSpec& f : o.faults) {
    if (f.kind == "failover") f.duration = o.node_timeout_ms / 1000;
  }
  for (const FaultSpec& f : o.faults) {
    if (f.kind == "kill" && std::any_of(o.faults.begin(), o.faults.end(), [&](const FaultSpec& g) {
          return g.kind == "failover" && g.target == f.target;
        })) {
      usage("--fault: kill and failover on one shard are not modelled together");
    }
    const int n = f.on_shard() ? o.shards : o.instances;
    if (f.target < 0 || f.target >= n) usage("--fault: no such shard or instance");
    if (f.start < 0 || !(f.duration > 0) || f.start + f.duration >= o.virtual_seconds) {
      usage("--fault must start at >= 0, last > 0 and end before the run does");
    }
  }
  for (const DemandEvent& e : o.demand_events) {
    if (e.tenant < 0 || e.tenant >= o.tenants) usage("--idle/--ramp: no such tenant");
  }
  return o;
}

// Walker's alias method: O(1) draws from a discrete distribution.
class Alias {
 public:
  explicit Alias(const std::vector<double>& w) : prob_(w.size()), alias_(w.size()) {
    const double sum = std::accumulate(w.begin(), w.end(), 0.0);
    const auto n = w.size();
    std::vector<double> p(n);
    std::vector<std::size_t> small, large;
    for (std::size_t i = 0; i < n; ++i) {
      p[i] = w[i] * static_cast<double>(n) / sum;
      (p[i] < 1 ? small : large).push_back(i);
    }
    while (!small.empty() && !large.empty()) {
      const std::size_t s = small.back(), l = large.back();
      small.pop_back();
      prob_[s] = p[s];
      alias_[s] = l;
      p[l] -= 1 - p[s];
      if (p[l] < 1) {
        large.pop_back();
        small.push_back(l);
      }
    }
    for (std::size_t i : large) prob_[i] = 1;
    for (std::size_t i : small) prob_[i] = 1;
  }
  template <typename R>
  std::size_t draw(R& rng) const {
    const std::uint64_t x = rng();
    const std::size_t i = static_cast<std::size_t>((x >> 32) % prob_.size());
    const double u = static_cast<double>(x & 0xffffffffu) / 4294967296.0;
    return u < prob_[i] ? i : alias_[i];
  }

 private:
  std::vector<double> prob_;
  std::vector<std::size_t> alias_;
};

struct Tenant {
  std::string key;
  int group = 0;
  std::size_t shard = 0;
  double rate = 0, burst = 0;  // the policy
  double offered_rate = 0;     // steady offered load, tokens/s
  tollgate::Policy policy;     // as configured: its fallback allowance
};

struct Group {
  std::string name;
  double rate = 0, burst = 0;  // 0: no budget
  std::size_t shard = 0;
  std::vector<int> tenants;
};

// The largest excess over the bound, and over the ideal bucket, at one window length.
struct WindowCheck {
  double seconds = 0;
  int bins = 0;  // 10 ms bins; 0: the whole run
  double over = 0;
  std::string over_who;
  double over_at = 0;
  double excess_pct = -1e300;
  double strength = 0;  // the most offered in a window / its bound: >= 3 makes it a check
};

// Sliding sums of one series (admitted or offered) of one tenant or group over the
// window lengths, from a ring of the last 10 s of 10 ms bins.
constexpr int kRing = 1000;
constexpr int kWindowBins[3] = {10, 100, 1000};
struct Slider {
  std::vector<std::uint32_t> ring = std::vector<std::uint32_t>(kRing, 0);
  double sum[3] = {0, 0, 0};
  double total = 0;
  void push(std::uint64_t pos, std::uint32_t v) {
    for (int w = 0; w < 3; ++w) {
      sum[w] += v;
      if (pos >= static_cast<std::uint64_t>(kWindowBins[w])) {
        sum[w] -= ring[(pos - static_cast<std::uint64_t>(kWindowBins[w])) % kRing];
      }
    }
    ring[pos % kRing] = v;
    total += v;
  }
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::min<double>(
      static_cast<double>(v.size() - 1), std::floor(p * static_cast<double>(v.size() - 1) + 0.5)));
  return v[i];
}

class Fleet {
 public:
  explicit Fleet(Options o) : o_(std::move(o)), rng_(o_.seed) { build(); }
  int run();

 private:
  struct Instance {
    std::unique_ptr<tollgate::Limiter> limiter;
    std::shared_ptr<tollgate::resilience::GuardedStore> store;
    bool stalled = false, down = false;
    int generation = 0;
    std::vector<std::pair<int, int>> deferred;  // (tenant, cost) waiting out a stall
    // Each tenant's key resolved once (Limiter::key_ref): a decision reaches its entry with
    // no hashing and no table probe, a cache miss or two fewer. The same decisions.
    std::vector<tollgate::KeyRef> refs;
  };

  void build();
  void start_instance(std::size_t i);
  void schedule_faults();
  Instance* route(std::size_t& inst);
  void decide(std::size_t inst, int tenant, int cost);
  // --scenario inference: one request of estimate `cost` and actual cost `actual`.
  void reserve(std::size_t inst, int tenant, int cost, std::uint64_t actual);
  void settle_due(Nanos now);
  // The overage outstanding for a tenant now (the bound's term, docs/architecture.md).
  double overage(std::size_t tenant) const { return open_extra_[tenant] + debt_recent_[tenant]; }
  void arrivals(Nanos from, Nanos to);
  void close_bin(std::uint64_t bin);
  double allowance(int tenant, double s, double e) const;
  double group_allowance(int group, double s, double e) const;
  double lag_allowance(int tenant, double s, double e, std::size_t fault) const;
  double group_lag_allowance(int group, double s, double e, std::size_t fault) const;
  double offered_scale(int tenant, double t) const;
  void timeline_row(double t);
  void report(double wall);
  void write_per_tenant(const std::vector<double>& steady) const;

  double vt(Nanos t) const { return static_cast<double>((t - t0_).count()) / 1e9; }

  Options o_;
  std::mt19937_64 rng_;
  std::shared_ptr<tollgate::ManualClock> clock_ = std::make_shared<tollgate::ManualClock>();
  Nanos t0_ = clock_->now();
  Loop loop_{clock_};
  std::shared_ptr<LoopTimers> timers_ = std::make_shared<LoopTimers>(loop_);
  tollgate::Config config_;
  std::vector<Tenant> tenants_;
  std::vector<Group> groups_;
  std::vector<std::unique_ptr<Shard>> shards_;
  Routing routing_;
  std::vector<Instance> instances_;
  std::vector<std::unique_ptr<tollgate::Limiter>> dead_;  // crashed: kept, never run
  std::unique_ptr<Alias> tenant_pick_, instance_pick_;
  double total_offered_rate_ = 0;
  std::vector<std::pair<int, double>> spikes_;  // (tenant, until) active spikes
  std::vector<bool> idle_now_;

  // Application-side counts.
  std::vector<std::uint32_t> bin_admitted_, bin_offered_, bin_fallback_;  // per tenant, this bin
  std::vector<Slider> adm_, off_, gadm_, goff_;
  std::vector<double> adm_steady_, off_steady_, adm_total_, off_total_, fb_total_;
  std::vector<WindowCheck> checks_;
  std::uint64_t decisions_ = 0, admitted_decisions_ = 0;
  std::uint64_t denied_[tollgate::kReasonCount] = {};
  std::vector<std::array<std::uint64_t, tollgate::kReasonCount>> denied_by_tenant_;
  struct Figures {  // what the --require-* floors check, as reported
    double utilization = 0, tail = 0, per_call = 0;
  } figures_;
  std::vector<std::int64_t> first_request_;  // per (instance, tenant): ns, -1 none, -2 done
  std::vector<std::uint8_t> first_done_;     // per (instance, tenant): 1 when first_request_ is -2
  struct Drawn {                             // one arrival of the steady load (arrivals())
    std::size_t inst;
    int tenant, cost;
  };
  std::vector<Drawn> drawn_, sorted_;      // a tick's arrivals as drawn, and by instance
  std::vector<std::size_t> per_instance_;  // the counting sort's offsets
  std::vector<double> first_latency_ms_;
  // Per --fault: its shard's recovery watch and a failover's index on its shard.
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::vector<std::size_t> fault_watch_, fault_failover_;
  // How much of the failovers' lag allowance the windows needed: the most admitted over
  // the bound without it (<= 0: not needed), and the lag allowance of that window.
  struct LagUse {
    double used = -1e300, stated = 0, window_s = 0, at_s = 0;
    std::string who;
    void note(double adm, double bound, double lag, const std::string& w, double win, double at) {
      if (lag <= 0 || adm - (bound - lag) <= used) return;
      used = adm - (bound - lag);
      stated = lag;
      who = w;
      window_s = win;
      at_s = at;
    }
  } lag_use_;
  double lag_total(int id, bool group, double s, double e) const {
    double a = 0;
    for (std::size_t k = 0; k < o_.faults.size(); ++k)
      a += group ? group_lag_allowance(id, s, e, k) : lag_allowance(id, s, e, k);
    return a;
  }
  // --scenario inference: reservations open until their settle time, per tenant the capped
  // extras of the open ones, and the debts their settles left within the last TTL and
  // refresh period (until then the instances' leases pay them or the store counts them).
  struct Open {
    int tenant = 0;
    std::uint64_t actual = 0, extra = 0;
    tollgate::Reservation reservation;
  };
  std::multimap<Nanos, Open> open_;
  std::vector<double> open_extra_, debt_recent_;
  std::vector<std::deque<std::pair<double, double>>> debts_;  // (virtual s, tokens)
  // Refunds whose lease had ended, given to the store's bucket (Settlement::dropped): the
  // bound of a window [t, t+T] adds those of [t - TTL, t+T] (docs/architecture.md).
  std::vector<std::deque<std::pair<double, double>>> late_;
  std::vector<double> late_total_;
  double late_within(std::size_t tenant, double since) const {
    double sum = 0;
    const auto& d = late_[tenant];
    for (auto it = d.rbegin(); it != d.rend() && it->first >= since; ++it) sum += it->second;
    return sum;
  }
  std::lognormal_distribution<double> cost_ratio_{-1.421, 1.005};  // mean 0.4, p99 2.5
  std::lognormal_distribution<double> hold_s_{0.6931, 0.9899};     // median 2 s, p99 20 s
  double uncharged_ = 0, estimates_admitted_ = 0, held_admitted_ = 0, debt_total_ = 0,
         refunded_ = 0, dropped_ = 0;
  std::uint64_t settled_ = 0;
  // Timeline: per 100 ms accumulators.
  std::ofstream timeline_;
  std::vector<std::uint32_t> tl_adm_, tl_off_, tl_gadm_, tl_goff_;
};

void Fleet::build() {
  std::uniform_real_distribution<double> u(0, 1);
  // Tenants: log-uniform rates 10..2000 (or --rate), burst one second of rate.
  tenants_.resize(static_cast<std::size_t>(o_.tenants));
  groups_.resize(static_cast<std::size_t>(o_.groups));
  for (int g = 0; g < o_.groups; ++g) {
    char name[16];
    std::snprintf(name, sizeof name, "g%03d", g);
    groups_[static_cast<std::size_t>(g)].name = name;
  }
  for (int t = 0; t < o_.tenants; ++t) {
    Tenant& x = tenants_[static_cast<std::size_t>(t)];
    char key[32];
    std::snprintf(key, sizeof key, "t:%05d", t);
    x.key = key;
    x.group = t % o_.groups;
    x.rate = o_.rate > 0 ? o_.rate : std::round(10 * std::pow(200.0, u(rng_)));
    x.burst = x.rate;
    groups_[static_cast<std::size_t>(x.group)].tenants.push_back(t);
  }
  for (Group& g : groups_) {
    double sum = 0;
    for (int t : g.tenants) sum += tenants_[static_cast<std::size_t>(t)].rate;
    g.rate = std::round(o_.group_budget * sum);
    g.burst = g.rate;
  }
  // Offered load: uniform (X x rate each) or zipf over a seeded ranking of tenants.
  double capacity = 0;
  for (const Tenant& x : tenants_) capacity += x.rate;
  std::vector<double> w(tenants_.size());
  if (o_.zipf > 0) {
    std::vector<int> rank(tenants_.size());
    std::iota(rank.begin(), rank.end(), 0);
    std::shuffle(rank.begin(), rank.end(), rng_);
    double sum = 0;
    for (std::size_t i = 0; i < rank.size(); ++i) {
      w[static_cast<std::size_t>(rank[i])] = 1.0 / std::pow(static_cast<double>(i + 1), o_.zipf);
      sum += w[static_cast<std::size_t>(rank[i])];
    }
    for (std::size_t t = 0; t < w.size(); ++t) {
      tenants_[t].offered_rate = o_.demand * capacity * w[t] / sum;
    }
  } else {
    for (Tenant& x : tenants_) x.offered_rate = o_.demand * x.rate;
  }
  for (std::size_t t = 0; t < w.size(); ++t) w[t] = tenants_[t].offered_rate;
  total_offered_rate_ = std::accumulate(w.begin(), w.end(), 0.0);
  // Mean cost (1..N uniform) divides the request rate.
  for (double& x : w) x /= (1.0 + o_.cost) / 2.0;
  tenant_pick_ = std::make_unique<Alias>(w);
  std::vector<double> iw(static_cast<std::size_t>(o_.instances));
  for (std::size_t i = 0; i < iw.size(); ++i) {
    iw[i] = 1.0 / std::pow(static_cast<double>(i + 1), o_.lb_skew);
  }
  instance_pick_ = std::make_unique<Alias>(iw);

  // The config every instance runs: one exact-match policy per tenant, the SDK's defaults
  // for everything the flags do not set.
  config_.leases = o_.leases;
  for (const Group& g : groups_) {
    if (o_.group_budget > 0) config_.groups.push_back(tollgate::Group{g.name, g.rate, g.burst});
  }
  for (const Tenant& x : tenants_) {
    tollgate::Policy p;
    p.match = x.key;
    p.group = groups_[static_cast<std::size_t>(x.group)].name;
    p.kind = tollgate::PolicyKind::kTokenBucket;
    p.rate = x.rate;
    p.burst = x.burst;
    if (o_.fallback_instances > 0) p.fallback.instances = o_.fallback_instances;
    p.fair_instances = o_.fair_instances;
    config_.policies.push_back(p);
  }
  config_.max_keys = std::max<std::size_t>(config_.max_keys, tenants_.size() * 2);
  config_.validate();
  const auto resolved = config_.resolved_policies();
  for (std::size_t t = 0; t < tenants_.size(); ++t) {
    tenants_[t].policy = resolved[t];
  }

  for (int s = 0; s < o_.shards; ++s) {
    shards_.push_back(std::make_unique<Shard>(static_cast<std::size_t>(s), loop_, clock_,
                                              o_.cost_model, t0_, o_.seed * 1000003 + s));
  }
  for (int s = 0; s < o_.shards; ++s) {
    routing_.index_of.push_back(static_cast<std::size_t>(s));
    routing_.shard_at.push_back(static_cast<std::size_t>(s));
  }
  for (const FaultSpec& f : o_.faults) {  // an index for each promoted replica
    if (f.kind == "failover") routing_.shard_at.push_back(static_cast<std::size_t>(f.target));
  }
  Transport probe(shards_, routing_, loop_, config_.store.command_timeout);
  for (Tenant& x : tenants_) {
    tollgate::Policy p;
    p.group = groups_[static_cast<std::size_t>(x.group)].name;
    x.shard = probe.shard_of(p, x.key);
  }
  for (Group& g : groups_) g.shard = tenants_[static_cast<std::size_t>(g.tenants[0])].shard;

  instances_.resize(static_cast<std::size_t>(o_.instances));
  for (std::size_t i = 0; i < instances_.size(); ++i) start_instance(i);

  const std::size_t nt = tenants_.size(), ng = groups_.size();
  bin_admitted_.assign(nt, 0);
  bin_offered_.assign(nt, 0);
  bin_fallback_.assign(nt, 0);
  open_extra_.assign(nt, 0);
  debt_recent_.assign(nt, 0);
  debts_.resize(nt);
  late_.resize(nt);
  late_total_.assign(nt, 0);
  adm_.resize(nt);
  off_.resize(nt);
  gadm_.resize(ng);
  goff_.resize(ng);
  adm_steady_.assign(nt, 0);
  off_steady_.assign(nt, 0);
  adm_total_.assign(nt, 0);
  off_total_.assign(nt, 0);
  fb_total_.assign(nt, 0);
  if (!o_.per_tenant.empty()) denied_by_tenant_.assign(nt, {});
  idle_now_.assign(nt, false);
  first_request_.assign(nt * instances_.size(), -1);
  first_done_.assign(nt * instances_.size(), 0);
  for (int w : kWindowBins) {
    WindowCheck c;
    c.seconds = w / 100.0;
    c.bins = w;
    checks_.push_back(c);
  }
  WindowCheck whole;
  whole.seconds = o_.virtual_seconds;
  checks_.push_back(whole);
  if (!o_.timeline.empty()) {
    timeline_.open(o_.timeline);
    if (!timeline_) usage("cannot write " + o_.timeline);
    timeline_ << "t,kind,id,admitted,offered,capacity,calls\n";
    tl_adm_.assign(nt, 0);
    tl_off_.assign(nt, 0);
    tl_gadm_.assign(ng, 0);
    tl_goff_.assign(ng, 0);
  }
}

void Fleet::start_instance(std::size_t i) {
  Instance& in = instances_[i];
  tollgate::Config c = config_;
  char id[32];
  std::snprintf(id, sizeof id, "i%03zu-%d", i, in.generation);
  c.instance_id = id;
  auto transport = std::make_shared<Transport>(shards_, routing_, loop_, c.store.command_timeout);
  tollgate::resilience::RetryOptions retry;
  retry.seed = o_.seed * 7919 + i * 31 + static_cast<std::uint64_t>(in.generation) + 1;
  in.store = std::make_shared<tollgate::resilience::GuardedStore>(
      transport, c.store.breaker, c.store.bulkhead, retry, clock_, timers_);
  tollgate::Limiter::Options opt;
  opt.store = tollgate::faults::with_fault(in.store, o_.inject);
  opt.clock = clock_;
  opt.background_thread = false;
  in.limiter = std::make_unique<tollgate::Limiter>(c, opt);
  in.refs.clear();
  for (const Tenant& x : tenants_) in.refs.push_back(in.limiter->key_ref(x.key));
  in.stalled = false;
  in.down = false;
}

void Fleet::schedule_faults() {
  fault_watch_.assign(o_.faults.size(), kNone);
  fault_failover_.assign(o_.faults.size(), kNone);
  std::size_t promoted_index = shards_.size();
  for (std::size_t k = 0; k < o_.faults.size(); ++k) {
    const FaultSpec& f = o_.faults[k];
    const Nanos s = t0_ + Nanos{static_cast<std::int64_t>(f.start * 1e9)};
    const Nanos e = s + Nanos{static_cast<std::int64_t>(f.duration * 1e9)};
    if (f.on_shard()) {
      Shard* sh = shards_[static_cast<std::size_t>(f.target)].get();
      fault_watch_[k] = sh->watch(s);
      if (f.kind == "failover") {
        // The replica as of the lag before the death; stale-replica: 5 s behind while the
        // allowance still counts the flag's lag.
        const auto lag = Nanos{static_cast<std::int64_t>(o_.replication_lag_ms * 1e6)};
        const Nanos real_lag = o_.stale_replica ? std::max<Nanos>(lag, 5s) : lag;
        fault_failover_[k] = sh->plan_failover(s, std::max(t0_, s - real_lag), e, s - lag);
        // Every instance routes the shard's keys to the new primary from its promotion
        // (the cluster store follows it within ~0.1-0.2 s; docs/redis.md): after the
        // shard's own promotion event, scheduled first.
        const std::size_t target = static_cast<std::size_t>(f.target), index = promoted_index++;
        loop_.at(e, [this, target, index] { routing_.index_of[target] = index; });
      } else if (f.kind == "reshard") {
        loop_.at(s, [sh] { sh->moving = true; });
        loop_.at(e, [sh] { sh->moving = false; });
      } else if (f.kind == "stop") {
        loop_.at(s, [sh] { sh->stopped = true; });
        loop_.at(e, [sh] { sh->resume(); });
      } else if (f.kind == "kill") {
        loop_.at(s, [sh] { sh->killed = true; });
        loop_.at(e, [sh] {
          sh->wipe();
          sh->killed = false;
        });
      } else if (f.kind == "slow") {
        const double ms = o_.slow_ms;
        loop_.at(s, [sh, ms] { sh->slow_ms = ms; });
        loop_.at(e, [sh] { sh->slow_ms = 0; });
      } else {
        loop_.at(s, [sh] { sh->dropping = true; });
        loop_.at(e, [sh] { sh->dropping = false; });
      }
      continue;
    }
    const auto i = static_cast<std::size_t>(f.target);
    if (f.kind == "stall") {
      loop_.at(s, [this, i] { instances_[i].stalled = true; });
      loop_.at(e, [this, i] {
        Instance& in = instances_[i];
        in.stalled = false;
        // Its application threads resume with the SDK's: the requests that waited first.
        auto waiting = std::move(in.deferred);
        in.deferred.clear();
        for (auto [t, c] : waiting) decide(i, t, c);
        in.limiter->poll();
      });
    } else {  // restart
      loop_.at(s, [this, i] {
        Instance& in = instances_[i];
        dead_.push_back(std::move(in.limiter));  // crashed: nothing given back
        in.down = true;
        in.deferred.clear();
      });
      loop_.at(e, [this, i] {
        ++instances_[i].generation;
        start_instance(i);
        for (std::size_t t = 0; t < tenants_.size(); ++t) {
          first_request_[i * tenants_.size() + t] = -1;
          first_done_[i * tenants_.size() + t] = 0;
        }
      });
    }
  }
}

double Fleet::offered_scale(int tenant, double t) const {
  double k = 1;
  for (const DemandEvent& e : o_.demand_events) {
    if (e.tenant != tenant) continue;
    if (e.kind == "idle" && t >= e.start && t < e.start + e.duration) return 0;
    if (e.kind == "ramp" && t >= e.start) k *= 1 + 9 * std::min(1.0, (t - e.start) / e.duration);
    if (e.kind == "spike" && t >= e.start && t < e.start + e.duration) {
      k += o_.spike_x * tenants_[static_cast<std::size_t>(tenant)].rate /
           tenants_[static_cast<std::size_t>(tenant)].offered_rate;
    }
  }
  return k;
}

// The instance that takes a request sent to `inst`: the next one when it is down (as the load
// balancer does); null when that one is down too.
Fleet::Instance* Fleet::route(std::size_t& inst) {
  Instance* in = &instances_[inst];
  if (!in->down) return in;
  inst = (inst + 1) % instances_.size();
  in = &instances_[inst];
  return in->down ? nullptr : in;
}

void Fleet::decide(std::size_t inst, int tenant, int cost) {
  const auto t = static_cast<std::size_t>(tenant);
  Instance* in = route(inst);
  if (in == nullptr) return;
  if (in->stalled) {
    in->deferred.emplace_back(tenant, cost);
    return;
  }
  ++decisions_;
  const Decision d = in->limiter->try_acquire(in->refs[t], static_cast<std::uint64_t>(cost));
  const std::size_t pair = inst * tenants_.size() + t;
  // first_done_ (a byte a pair, in cache) spares most decisions a look at first_request_.
  if (first_done_[pair] == 0) {
    std::int64_t& first = first_request_[pair];
    if (first == -1) first = clock_->now().count();
    if (d.allowed) {
      first_latency_ms_.push_back(static_cast<double>(clock_->now().count() - first) / 1e6);
      first = -2;
      first_done_[pair] = 1;
    }
  }
  if (d.allowed) {
    ++admitted_decisions_;
    bin_admitted_[t] += static_cast<std::uint32_t>(cost);
    if (d.reason != Reason::kOk) bin_fallback_[t] += static_cast<std::uint32_t>(cost);
  } else {
    ++denied_[static_cast<int>(d.reason)];
    if (!denied_by_tenant_.empty()) ++denied_by_tenant_[t][static_cast<std::size_t>(d.reason)];
  }
}

void Fleet::reserve(std::size_t inst, int tenant, int cost, std::uint64_t actual) {
  const auto t = static_cast<std::size_t>(tenant);
  Instance* in = route(inst);
  if (in == nullptr || in->stalled) return;  // a stalled instance's requests: not modelled here
  ++decisions_;
  const auto estimate = static_cast<std::uint64_t>(cost);
  if (o_.charge_estimate) {  // the baseline: the estimate is charged, the actual cost runs
    const Decision d = in->limiter->try_acquire(tenants_[t].key, estimate);
    if (!d.allowed) {
      ++denied_[static_cast<int>(d.reason)];
      return;
    }
    ++admitted_decisions_;
    estimates_admitted_ += static_cast<double>(estimate);
    bin_admitted_[t] += static_cast<std::uint32_t>(actual);
    return;
  }
  tollgate::Reservation r = in->limiter->reserve(tenants_[t].key, estimate);
  if (!r) {
    ++denied_[static_cast<int>(r.decision().reason)];
    return;
  }
  ++admitted_decisions_;
  estimates_admitted_ += static_cast<double>(estimate);
  held_admitted_ += static_cast<double>(r.held());
  // What the settle will charge: at most the estimate plus max_overage.
  const std::uint64_t charged = std::min(actual, estimate + tenants_[t].policy.overage_cap());
  uncharged_ += static_cast<double>(actual - charged);
  bin_admitted_[t] += static_cast<std::uint32_t>(charged);
  if (r.decision().reason != Reason::kOk) bin_fallback_[t] += static_cast<std::uint32_t>(charged);
  // The bound's overage: what the settle will charge beyond what the reservation holds.
  const std::uint64_t extra = charged > r.held() ? charged - r.held() : 0;
  open_extra_[t] += static_cast<double>(extra);
  const Nanos at = clock_->now() + Nanos{static_cast<std::int64_t>(hold_s_(rng_) * 1e9)};
  open_.emplace(at, Open{tenant, actual, extra, std::move(r)});
}

void Fleet::settle_due(Nanos now) {
  while (!open_.empty() && open_.begin()->first <= now) {
    Open o = std::move(open_.begin()->second);
    open_.erase(open_.begin());
    const tollgate::Settlement s = o.reservation.settle(o.actual);
    const auto t = static_cast<std::size_t>(o.tenant);
    open_extra_[t] -= static_cast<double>(o.extra);
    ++settled_;
    refunded_ += static_cast<double>(s.refunded);
    dropped_ += static_cast<double>(s.dropped);
    if (s.dropped > 0) {
      late_[t].emplace_back(vt(now), static_cast<double>(s.dropped));
      late_total_[t] += static_cast<double>(s.dropped);
    }
    if (s.debt > 0) {
      debts_[t].emplace_back(vt(now), static_cast<double>(s.debt));
      debt_recent_[t] += static_cast<double>(s.debt);
      debt_total_ += static_cast<double>(s.debt);
    }
  }
}

void Fleet::arrivals(Nanos from, Nanos to) {
  const double dt = static_cast<double>((to - from).count()) / 1e9;
  const double now = vt(from);
  // Inference: --demand is in actual cost, 0.4 of the estimate on average.
  const double mean_cost = (1.0 + o_.cost) / 2.0 * (o_.inference ? 0.4 : 1.0);
  std::uniform_int_distribution<int> cost(1, o_.cost);
  auto add = [&](int tenant, int c) {
    const auto t = static_cast<std::size_t>(tenant);
    if (o_.inference) {
      // A tenant's estimates stay within a quarter of its burst (a larger one is refused).
      const double most = std::max(1.0, std::floor(tenants_[t].burst / 4));
      if (c > most) c = 1 + static_cast<int>(std::fmod(c, most));
      const auto actual =
          static_cast<std::uint64_t>(std::llround(static_cast<double>(c) * cost_ratio_(rng_)));
      bin_offered_[t] += static_cast<std::uint32_t>(actual);
      reserve(instance_pick_->draw(rng_), tenant, c, actual);
      return;
    }
    bin_offered_[t] += static_cast<std::uint32_t>(c);
    decide(instance_pick_->draw(rng_), tenant, c);
  };
  // The steady load: one Poisson count for the whole fleet, tenants drawn by weight;
  // an idle tenant's draws are dropped (thinning), a ramping tenant gets more below.
  std::poisson_distribution<long> base(total_offered_rate_ / mean_cost * dt);
  const long n = base(rng_);
  const bool events = !o_.demand_events.empty();
  if (o_.inference) {
    for (long k = 0; k < n; ++k) {
      const int tenant = static_cast<int>(tenant_pick_->draw(rng_));
      const int c = o_.cost > 1 ? cost(rng_) : 1;
      if (events && idle_now_[static_cast<std::size_t>(tenant)]) continue;
      add(tenant, c);
    }
  } else {
    // Drawn first (rng_ in the same order as one by one: a decision draws nothing from
    // it), then decided instance by instance: each instance's decisions in the order drawn
    // (a stable counting sort on the instance that takes them, after route()), so each
    // limiter sees the same calls in the same order and decides the same. A decision never
    // reaches the store or another limiter within try_acquire (a refill is queued for the
    // next poll), so only the order between instances changes, and what is counted from
    // it (sums, and latencies sorted for their percentiles) does not depend on that order.
    // One instance's entries, stripes and refill stack stay in the cache for its share of
    // the tick instead of 60 instances taking turns at random.
    drawn_.clear();
    per_instance_.assign(instances_.size() + 1, 0);
    for (long k = 0; k < n; ++k) {
      const int tenant = static_cast<int>(tenant_pick_->draw(rng_));
      const int c = o_.cost > 1 ? cost(rng_) : 1;
      if (events && idle_now_[static_cast<std::size_t>(tenant)]) continue;
      bin_offered_[static_cast<std::size_t>(tenant)] += static_cast<std::uint32_t>(c);
      std::size_t inst = instance_pick_->draw(rng_);
      if (route(inst) == nullptr) continue;  // both down: decide() would drop it
      drawn_.push_back(Drawn{inst, tenant, c});
      ++per_instance_[inst + 1];
    }
    for (std::size_t i = 1; i < per_instance_.size(); ++i) per_instance_[i] += per_instance_[i - 1];
    sorted_.resize(drawn_.size());
    for (const Drawn& d : drawn_) sorted_[per_instance_[d.inst]++] = d;
    // Three steps ahead, each a cache miss of its own: the KeyRef 24 decisions ahead, its
    // entry (KeyRef::prefetch) 16 ahead, the entry's compiled policy 8 ahead.
    constexpr std::size_t kRefAhead = 24, kEntryAhead = 16, kPolicyAhead = 8;
    auto ref_of = [&](const Drawn& a) -> const tollgate::KeyRef& {
      return instances_[a.inst].refs[static_cast<std::size_t>(a.tenant)];
    };
    for (std::size_t k = 0; k < sorted_.size(); ++k) {
      if (k + kRefAhead < sorted_.size()) {
        const auto* ref = &ref_of(sorted_[k + kRefAhead]);
        __builtin_prefetch(ref);
        __builtin_prefetch(reinterpret_cast<const char*>(ref + 1) - 1);
      }
      if (k + kEntryAhead < sorted_.size()) ref_of(sorted_[k + kEntryAhead]).prefetch();
      if (k + kPolicyAhead < sorted_.size()) ref_of(sorted_[k + kPolicyAhead]).prefetch_policy();
      decide(sorted_[k].inst, sorted_[k].tenant, sorted_[k].cost);
    }
  }
  auto extra = [&](int tenant, double rate) {
    std::poisson_distribution<long> p(rate / mean_cost * dt);
    for (long k = p(rng_); k > 0; --k) add(tenant, o_.cost > 1 ? cost(rng_) : 1);
  };
  if (events) {
    for (const DemandEvent& e : o_.demand_events) {
      const auto t = static_cast<std::size_t>(e.tenant);
      const double k = offered_scale(e.tenant, now);
      idle_now_[t] = k == 0;
      if (k > 1) extra(e.tenant, (k - 1) * tenants_[t].offered_rate);
    }
  }
  if (o_.spikes > 0) {
    std::poisson_distribution<long> p(o_.spikes * dt);
    std::uniform_int_distribution<int> who(0, o_.tenants - 1);
    for (long k = p(rng_); k > 0; --k) spikes_.emplace_back(who(rng_), now + 0.1);
    std::erase_if(spikes_, [&](const auto& s) { return s.second <= now; });
    for (const auto& [tenant, until] : spikes_) {
      extra(tenant, o_.spike_x * tenants_[static_cast<std::size_t>(tenant)].rate);
    }
  }
}

// The fallback allowance docs/resilience.md states for a shard fault: while a shard is
// out (and until its breaker lets leases flow again: break duration + 2 s), the instances'
// local fallback buckets together (Policy::fallback_allowance: in share mode, the default,
// (rate + burst / 2 s) x (time + 1 s); with fallback.instances N, N x (burst + rate x time)
// of 1/N each); a shard restarted empty forgets what it granted: one more burst.
double Fleet::allowance(int tenant, double s, double e) const {
  const Tenant& x = tenants_[static_cast<std::size_t>(tenant)];
  const double ttl = static_cast<double>(o_.leases.ttl.count()) / 1e9;
  const double settle =
      static_cast<double>(config_.store.breaker.break_duration.count()) / 1e9 + 2.0;
  double a = 0;
  for (const FaultSpec& f : o_.faults) {
    if (!f.falls_back() || static_cast<std::size_t>(f.target) != x.shard) continue;
    const double fs = f.start, fe = f.start + f.duration + settle;
    const double overlap = std::min(e, fe) - std::max(s, fs);
    if (overlap > 0 || (fs <= e && fe >= s)) {
      a += x.policy.fallback_allowance(overlap, static_cast<std::uint32_t>(o_.instances));
    }
    const double end = f.start + f.duration;
    if (f.kind == "kill" && end >= s - ttl && end <= e) a += x.burst;
  }
  for (std::size_t k = 0; k < o_.faults.size(); ++k) a += lag_allowance(tenant, s, e, k);
  return a;
}

// A failover's extra allowance (docs/architecture.md, "Failover and the bound"): the
// promoted replica lacks what the primary granted within the replication lag before its
// death, per key at most those tokens. Like a restart's burst, it counts for a window
// that holds the promotion, or starts within a lease TTL after it (the leases the
// replica grants from them are spent by then).
double Fleet::lag_allowance(int tenant, double s, double e, std::size_t k) const {
  const FaultSpec& f = o_.faults[k];
  const Tenant& x = tenants_[static_cast<std::size_t>(tenant)];
  if (f.kind != "failover" || static_cast<std::size_t>(f.target) != x.shard) return 0;
  const double ttl = static_cast<double>(o_.leases.ttl.count()) / 1e9;
  const double promoted = f.start + f.duration;
  if (promoted < s - ttl || promoted > e || fault_failover_.empty()) return 0;
  const auto& lost = shards_[x.shard]->failover(fault_failover_[k]).granted_in_lag;
  const auto it = lost.find(x.key);
  return it == lost.end() ? 0 : static_cast<double>(it->second);
}

// The group's budget is one more key in the slot: it lacks its tenants' lost grants.
double Fleet::group_lag_allowance(int group, double s, double e, std::size_t k) const {
  double a = 0;
  for (int t : groups_[static_cast<std::size_t>(group)].tenants) a += lag_allowance(t, s, e, k);
  return a;
}

double Fleet::group_allowance(int group, double s, double e) const {
  const Group& g = groups_[static_cast<std::size_t>(group)];
  double a = 0;
  bool faulted = false;
  for (const FaultSpec& f : o_.faults)
    faulted |= f.falls_back() && static_cast<std::size_t>(f.target) == g.shard;
  if (!faulted) return 0;
  for (int t : g.tenants) a += allowance(t, s, e);
  const double ttl = static_cast<double>(o_.leases.ttl.count()) / 1e9;
  for (const FaultSpec& f : o_.faults) {
    const double end = f.start + f.duration;
    if (f.kind == "kill" && static_cast<std::size_t>(f.target) == g.shard && end >= s - ttl &&
        end <= e) {
      a += g.burst;
    }
  }
  return a;
}

void Fleet::close_bin(std::uint64_t bin) {
  const double end = static_cast<double>(bin + 1) / 100.0;  // virtual seconds
  const double ttl = static_cast<double>(o_.leases.ttl.count()) / 1e9;
  const bool steady = end - 0.01 >= ttl && end <= o_.virtual_seconds - ttl;
  const bool faults = std::any_of(o_.faults.begin(), o_.faults.end(),
                                  [](const FaultSpec& f) { return f.on_shard(); });
  const bool failovers = std::any_of(o_.faults.begin(), o_.faults.end(),
                                     [](const FaultSpec& f) { return f.kind == "failover"; });
  // Inference: debts older than a TTL and a refresh period are paid or counted by the store.
  const double paid_after = ttl + static_cast<double>(o_.leases.refresh.count()) / 1e9;
  auto check = [&](const Slider& a, const Slider& off, double rate, double burst,
                   const std::string& who, auto allowance_of, bool group, int id,
                   double outstanding = 0) {
    for (int w = 0; w < 3; ++w) {
      WindowCheck& c = checks_[static_cast<std::size_t>(w)];
      if (static_cast<double>(bin + 1) < kWindowBins[w]) continue;  // not yet a whole window
      const double T = c.seconds;
      double bound = burst + rate * (T + ttl) + outstanding;
      if (o_.inference && !group) bound += late_within(static_cast<std::size_t>(id), end - T - ttl);
      if (faults) bound += allowance_of(end - T, end);
      const double over = a.sum[w] - bound;
      if (failovers)
        lag_use_.note(a.sum[w], bound, lag_total(id, group, end - T, end), who, T, end);
      if (over > c.over) {
        c.over = over;
        c.over_who = who;
        c.over_at = end;
      }
      const double ideal = rate * T + burst;
      c.excess_pct = std::max(c.excess_pct, 100.0 * (a.sum[w] - ideal) / ideal);
      c.strength = std::max(c.strength, off.sum[w] / bound);
    }
  };
  std::vector<std::uint32_t> gbin_adm(groups_.size(), 0), gbin_off(groups_.size(), 0);
  for (std::size_t t = 0; t < tenants_.size(); ++t) {
    const Tenant& x = tenants_[t];
    const std::uint32_t a = bin_admitted_[t], f = bin_offered_[t];
    adm_[t].push(bin, a);
    off_[t].push(bin, f);
    gbin_adm[static_cast<std::size_t>(x.group)] += a;
    gbin_off[static_cast<std::size_t>(x.group)] += f;
    if (steady) {
      adm_steady_[t] += a;
      off_steady_[t] += f;
    }
    adm_total_[t] += a;
    off_total_[t] += f;
    fb_total_[t] += bin_fallback_[t];
    if (!o_.timeline.empty()) {
      tl_adm_[t] += a;
      tl_off_[t] += f;
    }
    if (o_.inference) {
      auto& d = debts_[t];
      while (!d.empty() && d.front().first < end - paid_after) {
        debt_recent_[t] -= d.front().second;
        d.pop_front();
      }
      auto& late = late_[t];  // the longest window's lookback is enough
      while (!late.empty() && late.front().first < end - checks_[2].seconds - ttl) late.pop_front();
    }
    check(
        adm_[t], off_[t], x.rate, x.burst, x.key,
        [&](double s, double e) { return allowance(static_cast<int>(t), s, e); }, false,
        static_cast<int>(t), o_.inference ? overage(t) : 0);
    bin_admitted_[t] = bin_offered_[t] = bin_fallback_[t] = 0;
  }
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    gadm_[g].push(bin, gbin_adm[g]);
    goff_[g].push(bin, gbin_off[g]);
    if (!o_.timeline.empty()) {
      tl_gadm_[g] += gbin_adm[g];
      tl_goff_[g] += gbin_off[g];
    }
    if (groups_[g].rate > 0) {
      check(
          gadm_[g], goff_[g], groups_[g].rate, groups_[g].burst, groups_[g].name,
          [&](double s, double e) { return group_allowance(static_cast<int>(g), s, e); }, true,
          static_cast<int>(g));
    }
  }
  if (!o_.timeline.empty() && (bin + 1) % 10 == 0) timeline_row(end);
}

void Fleet::timeline_row(double t) {
  char buf[160];
  const auto n =
      std::min<std::size_t>(tenants_.size(), static_cast<std::size_t>(o_.timeline_tenants));
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%.1f,tenant,%s,%u,%u,%.1f,\n", t, tenants_[i].key.c_str(),
                  tl_adm_[i], tl_off_[i], tenants_[i].rate * 0.1);
    timeline_ << buf;
  }
  double all_adm = 0, all_off = 0, all_cap = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    double cap = groups_[g].rate;
    if (cap <= 0) {
      for (int x : groups_[g].tenants) cap += tenants_[static_cast<std::size_t>(x)].rate;
    }
    std::snprintf(buf, sizeof buf, "%.1f,group,%s,%u,%u,%.1f,\n", t, groups_[g].name.c_str(),
                  tl_gadm_[g], tl_goff_[g], cap * 0.1);
    timeline_ << buf;
    all_adm += tl_gadm_[g];
    all_off += tl_goff_[g];
    all_cap += cap * 0.1;
  }
  std::snprintf(buf, sizeof buf, "%.1f,fleet,all,%.0f,%.0f,%.1f,\n", t, all_adm, all_off, all_cap);
  timeline_ << buf;
  const auto d = static_cast<std::size_t>(std::lround(t * 10)) - 1;
  for (std::size_t s = 0; s < shards_.size(); ++s) {
    const auto& c = shards_[s]->series.calls_per_100ms;
    std::snprintf(buf, sizeof buf, "%.1f,shard,%zu,,,,%u\n", t, s, d < c.size() ? c[d] : 0u);
    timeline_ << buf;
  }
  for (const FaultSpec& f : o_.faults) {
    if (t > f.start && t <= f.start + f.duration + 0.05) {
      std::snprintf(buf, sizeof buf, "%.1f,fault,%s:%d,,,,\n", t, f.kind.c_str(), f.target);
      timeline_ << buf;
    }
  }
  std::fill(tl_adm_.begin(), tl_adm_.end(), 0);
  std::fill(tl_off_.begin(), tl_off_.end(), 0);
  std::fill(tl_gadm_.begin(), tl_gadm_.end(), 0);
  std::fill(tl_goff_.begin(), tl_goff_.end(), 0);
}

int Fleet::run() {
  const auto wall0 = std::chrono::steady_clock::now();
  schedule_faults();
  const Nanos tick = 1ms;
  const auto ticks = static_cast<std::uint64_t>(std::llround(o_.virtual_seconds * 1000));
  std::uint64_t last_admitted = 0, last_decisions = 0, last_runs = 0;
  for (std::uint64_t k = 0; k < ticks; ++k) {
    const Nanos t = t0_ + tick * static_cast<std::int64_t>(k);
    loop_.run_until(t);
    if (o_.inference) settle_due(t);
    arrivals(t, t + tick);
    for (Instance& in : instances_) {
      if (!in.stalled && !in.down) in.limiter->poll();
    }
    if ((k + 1) % 10 == 0) close_bin((k + 1) / 10 - 1);
    if (!o_.quiet && (k + 1) % 60000 == 0) {
      std::uint64_t runs = 0;
      for (const auto& s : shards_) runs += s->script_runs;
      double adm = 0;
      for (double a : adm_total_) adm += a;
      std::fprintf(stderr,
                   "[%4.0f / %.0f virtual s, %5.1f s wall] decisions %.2fM/s, admitted %.0f/s, "
                   "script runs %.0f/s\n",
                   static_cast<double>(k + 1) / 1000, o_.virtual_seconds,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count(),
                   static_cast<double>(decisions_ - last_decisions) / 60e6,
                   (adm - static_cast<double>(last_admitted)) / 60,
                   static_cast<double>(runs - last_runs) / 60);
      last_admitted = static_cast<std::uint64_t>(adm);
      last_decisions = decisions_;
      last_runs = runs;
    }
  }
  // The whole-run window: totals against the bound over the run's length.
  const double T = o_.virtual_seconds, ttl = static_cast<double>(o_.leases.ttl.count()) / 1e9;
  WindowCheck& whole = checks_.back();
  auto check_whole = [&](double adm, double off, double rate, double burst, double allow,
                         const std::string& who, bool group, int id) {
    const double bound = burst + rate * (T + ttl) + allow;
    lag_use_.note(adm, bound, lag_total(id, group, 0, T), who, T, T);
    if (adm - bound > whole.over) {
      whole.over = adm - bound;
      whole.over_who = who;
      whole.over_at = T;
    }
    whole.excess_pct =
        std::max(whole.excess_pct, 100.0 * (adm - (rate * T + burst)) / (rate * T + burst));
    whole.strength = std::max(whole.strength, off / bound);
  };
  for (std::size_t t = 0; t < tenants_.size(); ++t) {
    check_whole(
        adm_total_[t], off_total_[t], tenants_[t].rate, tenants_[t].burst,
        allowance(static_cast<int>(t), 0, T) + (o_.inference ? overage(t) + late_total_[t] : 0),
        tenants_[t].key, false, static_cast<int>(t));
  }
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    if (groups_[g].rate <= 0) continue;
    check_whole(gadm_[g].total, goff_[g].total, groups_[g].rate, groups_[g].burst,
                group_allowance(static_cast<int>(g), 0, T), groups_[g].name, true,
                static_cast<int>(g));
  }
  report(std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count());
  double over = 0;
  bool weak = false;
  for (const WindowCheck& c : checks_) {
    over = std::max(over, c.over);
    if (o_.require_strength > 0 && c.strength < o_.require_strength) {
      std::fprintf(
          stderr, "tollgate_fleet: the %.1f s check offered at most %.2f x its bound (need %.1f)\n",
          c.seconds, c.strength, o_.require_strength);
      weak = true;
    }
  }
  if (over > 0) return 1;
  if (weak) return 4;
  bool low = false;
  auto floor = [&](const char* name, double got, double need) {
    if (need > 0 && !(got >= need)) {
      std::fprintf(stderr, "tollgate_fleet: %s %.4g is below its floor %.4g\n", name, got, need);
      low = true;
    }
  };
  floor("utilization", figures_.utilization, o_.require_utilization);
  floor("tail_utilization_p10", figures_.tail, o_.require_tail);
  floor("admitted_per_store_call", figures_.per_call, o_.require_per_call);
  return low ? 5 : 0;
}

// What each tenant could have had: its group's capacity water-filled over its tenants'
// wishes (each at most min(offered, its own capacity)); without a budget, that minimum.
std::vector<double> achievable(const std::vector<Tenant>& tenants, const std::vector<Group>& groups,
                               const std::vector<double>& offered, double T, bool with_burst) {
  std::vector<double> out(tenants.size(), 0);
  for (const Group& g : groups) {
    std::vector<tollgate::core::Claim> claims;
    for (int t : g.tenants) {
      const Tenant& x = tenants[static_cast<std::size_t>(t)];
      const double cap = x.rate * T + (with_burst ? x.burst : 0);
      claims.push_back({1, 0, std::min(offered[static_cast<std::size_t>(t)], cap)});
    }
    std::vector<double> share(claims.size());
    if (g.rate > 0) {
      tollgate::core::water_fill(g.rate * T + (with_burst ? g.burst : 0), claims, share);
    } else {
      for (std::size_t i = 0; i < claims.size(); ++i) share[i] = claims[i].ceiling;
    }
    for (std::size_t i = 0; i < g.tenants.size(); ++i) {
      out[static_cast<std::size_t>(g.tenants[i])] = std::min(share[i], claims[i].ceiling);
    }
  }
  return out;
}

void Fleet::write_per_tenant(const std::vector<double>& steady) const {
  std::ofstream out(o_.per_tenant);
  if (!out) usage("cannot write " + o_.per_tenant);
  out << "tenant,group,rate,offered_rate,steady_capacity,steady_admitted,steady_offered,"
         "steady_utilization";
  for (int r = 0; r < tollgate::kReasonCount; ++r)
    out << ",denied_" << tollgate::to_string(static_cast<Reason>(r));
  out << "\n";
  for (std::size_t t = 0; t < tenants_.size(); ++t) {
    const Tenant& x = tenants_[t];
    out << x.key << ',' << groups_[static_cast<std::size_t>(x.group)].name << ',' << x.rate << ','
        << x.offered_rate << ',' << steady[t] << ',' << adm_steady_[t] << ',' << off_steady_[t]
        << ',' << (steady[t] > 0 ? adm_steady_[t] / steady[t] : 0);
    for (int r = 0; r < tollgate::kReasonCount; ++r) out << ',' << denied_by_tenant_[t][r];
    out << '\n';
  }
}

void Fleet::report(double wall) {
  const double T = o_.virtual_seconds, ttl = static_cast<double>(o_.leases.ttl.count()) / 1e9;
  const double Ts = std::max(0.0, T - 2 * ttl);
  const auto whole = achievable(tenants_, groups_, off_total_, T, true);
  const auto steady = achievable(tenants_, groups_, off_steady_, Ts, false);
  double adm = 0, ach = 0, adm_s = 0, ach_s = 0, fb = 0, offered = 0;
  std::vector<double> per_tenant;
  for (std::size_t t = 0; t < tenants_.size(); ++t) {
    adm += adm_total_[t];
    ach += whole[t];
    adm_s += adm_steady_[t];
    ach_s += steady[t];
    fb += fb_total_[t];
    offered += off_total_[t];
    if (steady[t] > 0) per_tenant.push_back(adm_steady_[t] / steady[t]);
  }
  if (!o_.per_tenant.empty()) write_per_tenant(steady);
  std::uint64_t runs = 0, lease_keys = 0, give_back_runs = 0, give_back_keys = 0;
  double bytes = 0, calls_max = 0, busy_max = 0, calls_steady_max = 0, busy_steady_max = 0;
  for (const auto& s : shards_) {
    runs += s->script_runs;
    lease_keys += s->lease_keys;
    give_back_runs += s->give_back_runs;
    give_back_keys += s->give_back_keys;
    bytes += s->bytes;
    // Whole seconds only: the last, partial second would understate.
    const std::size_t n =
        std::min<std::size_t>(s->series.calls_per_s.size(), static_cast<std::size_t>(T));
    for (std::size_t i = 0; i < n; ++i) {
      calls_max = std::max(calls_max, static_cast<double>(s->series.calls_per_s[i]));
      busy_max = std::max(busy_max, s->series.busy_s_per_s[i]);
      // Seconds in the steady window (after a TTL, before the last): the fleet's start,
      // when every key is cold at once, left out.
      if (static_cast<double>(i) >= ttl && static_cast<double>(i + 1) <= T - ttl) {
        calls_steady_max =
            std::max(calls_steady_max, static_cast<double>(s->series.calls_per_s[i]));
        busy_steady_max = std::max(busy_steady_max, s->series.busy_s_per_s[i]);
      }
    }
  }
  std::uint64_t leases_asked = 0, leases_granted = 0, lease_failures = 0, breakers_opened = 0;
  std::uint64_t tokens_leased = 0, tokens_given_back = 0;
  std::uint64_t retries = 0, short_circuited = 0, bulkhead_rejected = 0;
  auto add_stats = [&](const tollgate::Limiter& l) {
    const tollgate::Stats st = l.stats();
    leases_asked += st.leases_asked;
    leases_granted += st.leases_granted;
    lease_failures += st.lease_failures;
    breakers_opened += st.breakers_opened;
    tokens_leased += st.tokens_leased;
    tokens_given_back += st.tokens_given_back;
  };
  for (const Instance& in : instances_) {
    add_stats(*in.limiter);
    const auto c = in.store->counters();
    retries += c.retries;
    short_circuited += c.short_circuited;
    bulkhead_rejected += c.bulkhead_rejected;
  }
  for (const auto& l : dead_) add_stats(*l);
  double over = 0;
  for (const WindowCheck& c : checks_) over = std::max(over, c.over);
  double excess = -1e300;
  for (const WindowCheck& c : checks_) excess = std::max(excess, c.excess_pct);

  nlohmann::ordered_json j;
  j["seed"] = o_.seed;
  j["virtual_seconds"] = T;
  j["wall_seconds"] = std::round(wall * 100) / 100;
  j["instances"] = o_.instances;
  j["shards"] = o_.shards;
  j["tenants"] = o_.tenants;
  j["groups"] = o_.groups;
  j["settings"] = {
      {"demand", o_.demand},
      {"skew", o_.zipf > 0 ? "zipf:" + std::to_string(o_.zipf) : "uniform"},
      {"group_budget", o_.group_budget},
      {"cost", o_.cost},
      {"spikes_per_s", o_.spikes},
      {"spike_x", o_.spike_x},
      {"ttl_ms", o_.leases.ttl.count() / 1'000'000},
      {"horizon_ms", o_.leases.horizon.count() / 1'000'000},
      {"max_fraction", o_.leases.max_fraction},
      {"min_tokens", o_.leases.min_tokens},
      {"refresh_ms", o_.leases.refresh.count() / 1'000'000},
      {"cold_keys", config_.cold_keys.mode == tollgate::ColdKeyMode::kDeny ? "deny" : "optimistic"},
      {"command_timeout_ms", config_.store.command_timeout.count() / 1'000'000},
      {"fallback_instances", config_.policies[0].fallback.instances},
      {"fair_instances", !o_.fair_instances ? std::string("default")
                                            : std::string(*o_.fair_instances ? "on" : "off")},
      {"rtt_us", o_.cost_model.rtt_us},
      {"lease_us", o_.cost_model.lease_us},
      {"shared_lease_us", o_.cost_model.shared_lease_us},
      {"give_back_us", o_.cost_model.give_back_us},
      {"call_us", o_.cost_model.call_us},
      {"script_us", o_.cost_model.script_us},
      {"keys_per_script", o_.cost_model.keys_per_script},
      {"replication_lag_ms", o_.replication_lag_ms},
      {"node_timeout_ms", o_.node_timeout_ms},
      {"inject_fault", o_.stale_replica ? std::string("stale-replica")
                                        : std::string(tollgate::faults::to_string(o_.inject))}};
  if (o_.inference) {
    j["scenario"] = {{"name", "inference"},
                     {"charge", o_.charge_estimate ? "estimate" : "settle"},
                     {"estimate_max", o_.cost},
                     {"estimates_admitted", estimates_admitted_},
                     {"held_admitted", held_admitted_},
                     {"actual_admitted", adm},
                     {"settled", settled_},
                     {"open_at_end", open_.size()},
                     {"refunded_tokens", refunded_},
                     {"refunds_late_tokens", dropped_},
                     {"debt_tokens", debt_total_},
                     {"uncharged_tokens", uncharged_},
                     {"denied_in_debt", denied_[static_cast<int>(Reason::kInDebt)]}};
  }
  j["utilization"] = ach > 0 ? adm / ach : 0;
  j["steady_utilization"] = ach_s > 0 ? adm_s / ach_s : 0;
  j["tail_utilization_p10"] = percentile(per_tenant, 0.10);
  figures_ = {j["utilization"].get<double>(), j["tail_utilization_p10"].get<double>(),
              runs > 0 ? adm / static_cast<double>(runs) : 0};
  j["over_bound"] = std::ceil(over);
  j["worst_window_excess_pct"] = std::round(excess * 100) / 100;
  j["admitted_per_store_call"] = runs > 0 ? adm / static_cast<double>(runs) : 0;
  j["store_calls_per_shard_max"] = calls_max;
  j["shard_busy_max"] = busy_max;
  j["store_calls_per_shard_steady_max"] = calls_steady_max;
  j["shard_busy_steady_max"] = busy_steady_max;
  j["bytes_per_call"] = runs > 0 ? bytes / static_cast<double>(runs) : 0;
  j["store_calls"] = runs;
  // Where the calls and the shards' per-key work come from: leases and give-backs.
  j["lease_keys"] = lease_keys;
  j["give_back_calls"] = give_back_runs;
  j["give_back_keys"] = give_back_keys;
  j["decisions"] = decisions_;
  j["admitted_tokens"] = adm;
  j["offered_tokens"] = offered;
  j["fallback_admitted_tokens"] = fb;
  j["first_admission_ms"] = {{"p50", percentile(first_latency_ms_, 0.5)},
                             {"p99", percentile(first_latency_ms_, 0.99)},
                             {"max", percentile(first_latency_ms_, 1.0)}};
  nlohmann::ordered_json windows = nlohmann::ordered_json::array();
  for (const WindowCheck& c : checks_) {
    windows.push_back({{"window_s", c.seconds},
                       {"over_bound", std::ceil(c.over)},
                       {"worst", c.over_who},
                       {"at_s", c.over_at},
                       {"excess_pct", std::round(c.excess_pct * 100) / 100},
                       {"offered_over_bound", std::round(c.strength * 100) / 100}});
  }
  j["windows"] = windows;
  nlohmann::ordered_json denied;
  for (int r = 0; r < tollgate::kReasonCount; ++r) {
    if (denied_[r] > 0)
      denied[std::string(tollgate::to_string(static_cast<Reason>(r)))] = denied_[r];
  }
  j["denied"] = denied;
  j["leases_asked"] = leases_asked;
  j["leases_granted"] = leases_granted;
  j["lease_failures"] = lease_failures;
  j["tokens_leased"] = tokens_leased;  // all leases' tokens: those not admitted went back
  j["tokens_given_back"] = tokens_given_back;
  j["breakers_opened"] = breakers_opened;
  j["retries"] = retries;
  j["short_circuited"] = short_circuited;
  j["bulkhead_rejected"] = bulkhead_rejected;
  nlohmann::ordered_json faults = nlohmann::ordered_json::array();
  for (std::size_t k = 0; k < o_.faults.size(); ++k) {
    const FaultSpec& f = o_.faults[k];
    nlohmann::ordered_json e = {
        {"kind", f.kind}, {"target", f.target}, {"start_s", f.start}, {"duration_s", f.duration}};
    // From the fault's start to the first successful lease reply from its shard (a
    // failover's includes its detection time); null when none came, or on an instance.
    if (fault_watch_[k] != kNone) {
      const std::int64_t ns =
          shards_[static_cast<std::size_t>(f.target)]->recovered_ns(fault_watch_[k]);
      e["recovered_after_ms"] =
          ns < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(std::round(ns / 1e4) / 100);
    } else {
      e["recovered_after_ms"] = nullptr;
    }
    if (f.kind == "failover") {
      const auto& fig = shards_[static_cast<std::size_t>(f.target)]->failover(fault_failover_[k]);
      double per_key = 0;
      for (const auto& [key, n] : fig.granted_in_lag)
        per_key = std::max(per_key, static_cast<double>(n));
      e["replication_lag_ms"] = o_.replication_lag_ms;
      e["granted_in_lag"] = fig.granted_in_lag_total;  // the stated allowance, all keys
      e["granted_in_lag_max_per_key"] = per_key;
      e["forgotten"] = fig.forgotten;  // granted, then not on the promoted replica
    }
    if (f.kind == "reshard")
      e["redirects"] = shards_[static_cast<std::size_t>(f.target)]->redirects;
    faults.push_back(e);
  }
  j["faults"] = faults;
  if (lag_use_.used > -1e300) {
    // The failovers' lag allowance (all failovers together) where a window needed the most
    // of it: used = admitted over the bound without it (0: not needed), stated = its size.
    j["failover_lag_allowance"] = {{"used", std::ceil(std::max(0.0, lag_use_.used))},
                                   {"stated", lag_use_.stated},
                                   {"worst", lag_use_.who},
                                   {"window_s", lag_use_.window_s},
                                   {"at_s", lag_use_.at_s}};
  }

  if (o_.json) {
    // One field per line at the top level, so that a diff of two runs is readable and
    // `grep -v wall_seconds` leaves what must be the same for the same seed.
    std::printf("{\n");
    std::size_t i = 0;
    for (auto it = j.begin(); it != j.end(); ++it, ++i) {
      std::printf("  \"%s\": %s%s\n", it.key().c_str(), it.value().dump().c_str(),
                  i + 1 < j.size() ? "," : "");
    }
    std::printf("}\n");
    return;
  }
  std::printf("tollgate_fleet: %d instances, %d shards, %d tenants in %d groups, seed %llu\n",
              o_.instances, o_.shards, o_.tenants, o_.groups,
              static_cast<unsigned long long>(o_.seed));
  std::printf("  settings: %s\n", j["settings"].dump().c_str());
  std::printf("  %.0f virtual s in %.1f s wall; %.3g decisions\n", T, wall,
              static_cast<double>(decisions_));
  std::printf("  %-8s %12s %24s %12s %10s\n", "window", "over_bound", "worst", "excess_pct",
              "offered/bound");
  for (const WindowCheck& c : checks_) {
    std::printf("  %-8.1f %12.0f %24s %12.2f %10.2f\n", c.seconds, std::ceil(c.over),
                c.over_who.empty() ? "-" : c.over_who.c_str(), c.excess_pct, c.strength);
  }
  std::printf("  utilization %.4f, steady %.4f, tail p10 %.4f\n", j["utilization"].get<double>(),
              j["steady_utilization"].get<double>(), j["tail_utilization_p10"].get<double>());
  std::printf(
      "  store: %llu script runs, %.1f admitted per call, max %.0f calls/s on a shard, "
      "busy max %.3f, %.0f bytes per call\n",
      static_cast<unsigned long long>(runs), j["admitted_per_store_call"].get<double>(), calls_max,
      busy_max, j["bytes_per_call"].get<double>());
  std::printf(
      "  leases asked %llu, granted %llu, failed %llu; fallback admitted %.0f; first "
      "admission p50 %.1f ms p99 %.1f ms\n",
      static_cast<unsigned long long>(leases_asked),
      static_cast<unsigned long long>(leases_granted),
      static_cast<unsigned long long>(lease_failures), fb,
      j["first_admission_ms"]["p50"].get<double>(), j["first_admission_ms"]["p99"].get<double>());
  std::printf("  denied: %s\n", denied.dump().c_str());
}

}  // namespace
}  // namespace fleet

int main(int argc, char** argv) {
  try {
    fleet::Fleet f(fleet::parse(argc, argv));
    return f.run();
  } catch (const tollgate::ConfigError& e) {
    std::fprintf(stderr, "tollgate_fleet: config: %s\n", e.what());
    return 2;
  }
}
