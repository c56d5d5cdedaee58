// The fleet simulator's world in virtual time: one event loop on one thread, modelled
// shards (the in-process store's bucket math behind a latency, service-time and queueing
// model, with faults), and the transport that puts them under the SDK's own GuardedStore.
// Nothing here is thread-safe, on purpose: one thread, one seed, the same figures.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "resilience/guarded_store.h"
#include "tollgate/manual_clock.h"
#include "tollgate/quota_store.h"

namespace fleet {

using tollgate::Nanos;

// Events in time order; equal times in the order they were scheduled.
class Loop {
 public:
  explicit Loop(std::shared_ptr<tollgate::ManualClock> clock) : clock_(std::move(clock)) {}
  Nanos now() const noexcept { return clock_->now(); }
  void at(Nanos when, std::function<void()> fn);
  void after(Nanos delay, std::function<void()> fn) { at(now() + delay, std::move(fn)); }
  // Runs every event due at or before `until`, moving the clock to each; then to `until`.
  void run_until(Nanos until);
  std::size_t pending() const noexcept { return q_.size(); }

 private:
  struct Event {
    Nanos when;
    std::uint64_t seq;
    std::function<void()> fn;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const noexcept {
      return a.when != b.when ? a.when > b.when : a.seq > b.seq;
    }
  };
  std::shared_ptr<tollgate::ManualClock> clock_;
  std::priority_queue<Event, std::vector<Event>, Later> q_;
  std::uint64_t seq_ = 0;
};

// The GuardedStore's timers, on the event loop.
class LoopTimers final : public tollgate::resilience::Timers {
 public:
  explicit LoopTimers(Loop& loop) : loop_(loop) {}
  void after(Nanos delay, std::function<void()> fn) override { loop_.after(delay, std::move(fn)); }

 private:
  Loop& loop_;
};

// What a call costs inside the store, as measured inside Redis (INFO commandstats of the
// lease and give-back scripts; docs/performance.md, "The lease script's cost inside Redis":
// bench/redis/group_script_cost.py, bucket layout 2, per key at 128 keys per call, per run
// the rest of a one-key call), and the network between.
struct CostModel {
  double rtt_us = 100;          // mean round trip on the wire (lognormal, sigma below)
  double rtt_sigma = 0.3;       // of the round trip's log
  double call_us = 5;           // per round trip: read, parse, reply (pipelined batch)
  double script_us = 10;        // per script run (EVALSHA, TIME, the script's functions made)
  double lease_us = 7;          // per key of a lease script run, plain bucket (6.7-8.4)
  double shared_lease_us = 12;  // per key, group budget (10-100 tenants: 12-17) or fair
                                // instances (9-12)
  double give_back_us = 8;      // per key of a give-back script run
  // Keys one script run carries (the Redis store's multi-key scripts); a call of more
  // keys is several runs in one pipelined round trip.
  std::size_t keys_per_script = 256;
  double lease_bytes = 260;      // request + reply of one lease script run (RESP)
  double give_back_bytes = 120;  // of one give-back
};

// Per shard, per virtual second: script runs, busy time (for store_calls_per_shard_max
// and shard_busy_max), and per 100 ms the runs again (for the timeline).
struct ShardSeries {
  std::vector<std::uint64_t> calls_per_s;
  std::vector<double> busy_s_per_s;
  std::vector<std::uint32_t> calls_per_100ms;
};

// One modelled shard: its global buckets (InProcessStore on the virtual clock, the same
// bucket math as the Lua), a single-server queue (Redis runs one command at a time), and
// its faults.
class Shard {
 public:
  Shard(std::size_t index, Loop& loop, std::shared_ptr<tollgate::ManualClock> clock,
        const CostModel& cost, Nanos start, std::uint64_t seed);

  using Reply = std::function<void(tollgate::resilience::ShardOutcome)>;
  // A call written while the shard is stopped: served when it resumes.
  void arrive(std::shared_ptr<std::vector<tollgate::LeaseRequest>> requests, Reply reply);
  // A call that reaches the shard at `arrival`: served when the server is free. false when
  // its reply would come after `deadline` (it still runs; the caller's timeout answers).
  bool serve(std::shared_ptr<std::vector<tollgate::LeaseRequest>> requests, Reply reply,
             Nanos arrival, Nanos deadline);
  void arrive_give_backs(std::vector<tollgate::GiveBack> batch);  // while stopped
  void serve_give_backs(std::vector<tollgate::GiveBack> batch, Nanos arrival);

  // Faults (bench/fleet/README in --help): stop = nothing served until resumed (calls
  // wait, as on a SIGSTOPped Redis); kill = connections refused, restarted empty at the end;
  // slow = each reply delayed by up to slow_ms; drop = half the replies lost after the
  // call ran (the connection dropped), so the client cannot tell.
  bool stopped = false;
  bool killed = false;
  double slow_ms = 0;
  bool dropping = false;
  // A slot move (reshard): every call is redirected once (MOVED/ASK, then the resend), one
  // more round trip; the buckets move with the slot, so nothing is lost.
  bool moving = false;
  std::uint64_t redirects = 0;
  void resume();    // end of stop: serve what waited
  void wipe();      // restarted empty: every bucket forgotten
  Nanos one_way();  // a sampled one-way network delay
  double coin();    // uniform [0, 1)

  // A failover: the primary dies at `death` (calls in flight lost, new ones refused) and
  // its replica is promoted at `promote`. The replica is a second InProcessStore that runs
  // every lease and give-back the primary runs, at the same virtual time (so it decides
  // the same), until `cutoff`: death - the replication lag. What the primary ran from then
  // to its death is on no surviving node. Grants made from `stated_from` (death - the lag
  // the allowance assumes) to the death are counted per key: the stated allowance.
  // Returns its index for the figures below. Not combined with kill on one shard.
  std::size_t plan_failover(Nanos death, Nanos cutoff, Nanos promote, Nanos stated_from);
  struct FailoverFigures {
    std::map<std::string, std::uint64_t> granted_in_lag;  // per key, the stated window
    std::uint64_t granted_in_lag_total = 0;
    std::uint64_t forgotten = 0;  // granted by the primary, not on the promoted replica
  };
  const FailoverFigures& failover(std::size_t i) const { return failovers_[i]->figures; }

  // The first successful lease reply at or after `from` (for recovered_after_ms):
  // watch() registers a start, recovered() answers -1 when none came.
  std::size_t watch(Nanos from);
  void note_ok(Nanos at);
  std::int64_t recovered_ns(std::size_t w) const { return watches_[w].second; }

  ShardSeries series;
  std::uint64_t script_runs = 0;
  std::uint64_t lease_keys = 0;      // keys in lease calls
  std::uint64_t give_back_runs = 0;  // script runs of give-back calls (in script_runs too)
  std::uint64_t give_back_keys = 0;
  double bytes = 0;

 private:
  struct Failover {
    Nanos death, cutoff, promote, stated_from;
    std::unique_ptr<tollgate::InProcessStore> replica;
    bool mirroring = true;  // runs what the primary runs
    bool frozen = false;    // past its cutoff
    bool promoted = false;
    FailoverFigures figures;
  };
  void account(Nanos at, std::uint64_t runs, double busy_us);
  std::uint64_t script_runs_for(std::size_t keys) const;
  std::vector<tollgate::LeaseGrant> run_leases(const std::vector<tollgate::LeaseRequest>& r);
  void run_give_backs(std::vector<tollgate::GiveBack> batch);
  void promote(std::size_t i);

  std::size_t index_;
  Loop& loop_;
  std::shared_ptr<tollgate::ManualClock> clock_;
  const CostModel& cost_;
  Nanos start_;
  std::unique_ptr<tollgate::InProcessStore> store_;
  Nanos busy_until_{0};
  std::vector<std::function<void()>> waiting_;           // calls that arrived while stopped
  std::vector<std::unique_ptr<Failover>> failovers_;     // in the order planned
  std::vector<std::pair<Nanos, std::int64_t>> watches_;  // (from, first ok ns or -1)
  std::mt19937_64 rng_;
  std::lognormal_distribution<double> rtt_;
};

// Which GuardedStore index reaches each shard's primary. A replica promoted in a failover
// is a new node: it gets an index of its own (with its own breaker, closed), as the
// cluster store gives it (docs/redis.md, "Shard indices"), so the dead primary's open
// breaker does not hold its keys back. One table for every instance: all follow the
// promotion when it happens.
struct Routing {
  std::vector<std::size_t> index_of;  // per shard: its current primary's index
  std::vector<std::size_t> shard_at;  // per index: the shard it reaches
};

// One instance's connections to every shard: a ShardTransport for the SDK's GuardedStore.
// Routing is the Redis store's (jump hash of the group over the shard count), and so is
// the call timeout (StoreConfig::command_timeout): a call not answered by then fails, and
// a reply that comes later is dropped, as a Redis connection does.
class Transport final : public tollgate::resilience::ShardTransport {
 public:
  Transport(std::vector<std::unique_ptr<Shard>>& shards, const Routing& routing, Loop& loop,
            Nanos command_timeout)
      : shards_(shards), routing_(routing), loop_(loop), timeout_(command_timeout) {}
  std::size_t shard_count() const override { return routing_.shard_at.size(); }
  std::size_t shard_of(const tollgate::Policy& policy, std::string_view key) const override;
  std::string shard_name(std::size_t index) const override {
    return "shard " + std::to_string(routing_.shard_at[index]) +
           (index >= shards_.size() ? " (promoted replica)" : "");
  }
  void send_leases(std::size_t shard, std::vector<const tollgate::LeaseRequest*> requests,
                   std::function<void(tollgate::resilience::ShardOutcome)> done) override;
  void send_give_backs(std::size_t shard, std::vector<tollgate::GiveBack> batch) override;

 private:
  std::vector<std::unique_ptr<Shard>>& shards_;
  const Routing& routing_;
  Loop& loop_;
  Nanos timeout_;
};

}  // namespace fleet
