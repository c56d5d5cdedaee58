#include "model.h"

#include <cmath>

#include "store/redis/keys.h"

namespace fleet {

using tollgate::GiveBack;
using tollgate::LeaseGrant;
using tollgate::LeaseRequest;
using tollgate::resilience::ShardOutcome;

void Loop::at(Nanos when, std::function<void()> fn) {
  if (when < now()) when = now();
  q_.push(Event{when, seq_++, std::move(fn)});
}

void Loop::run_until(Nanos until) {
  while (!q_.empty() && q_.top().when <= until) {
    // top() is const; moving the event out is safe, pop() only compares when and seq.
    Event e = std::move(const_cast<Event&>(q_.top()));
    q_.pop();
    if (e.when > now()) clock_->set(e.when);
    e.fn();
  }
  if (until > now()) clock_->set(until);
}

Shard::Shard(std::size_t index, Loop& loop, std::shared_ptr<tollgate::ManualClock> clock,
             const CostModel& cost, Nanos start, std::uint64_t seed)
    : index_(index),
      loop_(loop),
      clock_(std::move(clock)),
      cost_(cost),
      start_(start),
      store_(std::make_unique<tollgate::InProcessStore>(clock_)),
      rng_(seed),
      // Mean of a lognormal is exp(mu + sigma^2/2): mu chosen so the mean is rtt_us.
      rtt_(std::log(cost.rtt_us) - cost.rtt_sigma * cost.rtt_sigma / 2, cost.rtt_sigma) {}

Nanos Shard::one_way() {
  return Nanos{static_cast<std::int64_t>(rtt_(rng_) * 500.0)};  // half the round trip, in ns
}

double Shard::coin() {
  return std::uniform_real_distribution<double>(0, 1)(rng_);
}

std::uint64_t Shard::script_runs_for(std::size_t keys) const {
  const std::size_t per = std::max<std::size_t>(1, cost_.keys_per_script);
  return (keys + per - 1) / per;
}

void Shard::account(Nanos at, std::uint64_t runs, double busy_us) {
  const auto since = (at - start_).count();
  if (since < 0) return;
  const auto s = static_cast<std::size_t>(since / 1'000'000'000);
  const auto d = static_cast<std::size_t>(since / 100'000'000);
  if (series.calls_per_s.size() <= s) {
    series.calls_per_s.resize(s + 1, 0);
    series.busy_s_per_s.resize(s + 1, 0);
  }
  if (series.calls_per_100ms.size() <= d) series.calls_per_100ms.resize(d + 1, 0);
  series.calls_per_s[s] += runs;
  series.busy_s_per_s[s] += busy_us / 1e6;
  series.calls_per_100ms[d] += static_cast<std::uint32_t>(runs);
  script_runs += runs;
}

void Shard::arrive(std::shared_ptr<std::vector<LeaseRequest>> requests, Reply reply) {
  if (killed) return;  // the connection is gone: the client's timeout answers
  if (stopped) {
    waiting_.push_back(
        [this, requests, reply] { serve(requests, reply, loop_.now(), Nanos::max()); });
    return;
  }
  serve(std::move(requests), std::move(reply), loop_.now(), Nanos::max());
}

// One event per call when nothing goes wrong: the call's arrival, its turn in the queue
// and the reply's way back are known when it is sent, so the store's work and the reply
// happen together at the reply's time (the store decides a one-way delay late, which
// only its own clock sees). A call whose reply would come after `deadline` still runs
// when its turn comes; the client's timeout answers it.
bool Shard::serve(std::shared_ptr<std::vector<LeaseRequest>> requests, Reply reply, Nanos arrival,
                  Nanos deadline) {
  const std::uint64_t runs = script_runs_for(requests->size());
  lease_keys += requests->size();
  double us = cost_.call_us + cost_.script_us * static_cast<double>(runs);
  for (const LeaseRequest& r : *requests) {
    const bool shared = r.policy && (r.policy->has_group_budget() || r.policy->shares_instances());
    us += shared ? cost_.shared_lease_us : cost_.lease_us;
  }
  const Nanos begin = std::max(arrival, busy_until_);
  busy_until_ = begin + Nanos{static_cast<std::int64_t>(us * 1000)};
  account(begin, runs, us);
  bytes += cost_.lease_bytes * static_cast<double>(requests->size());
  Nanos back = busy_until_ + one_way();
  if (slow_ms > 0) back += Nanos{static_cast<std::int64_t>(coin() * slow_ms * 1e6)};
  const bool lost = dropping && coin() < 0.5;
  auto run = [this, requests] { return run_leases(*requests); };
  if (back > deadline) {
    loop_.at(busy_until_, [this, run] {
      if (!killed) run();
    });
    return false;  // the timeout answers
  }
  loop_.at(back, [this, run, lost, reply = std::move(reply)] {
    if (killed) {
      reply(ShardOutcome{{}, "connection lost", false});
      return;
    }
    auto grants = run();
    // With `lost` it ran, but the connection dropped before the reply came back.
    if (lost) {
      reply(ShardOutcome{{}, "connection lost", false});
    } else {
      reply(ShardOutcome{std::move(grants), "", false});
    }
  });
  return true;
}

void Shard::arrive_give_backs(std::vector<GiveBack> batch) {
  if (killed) return;
  if (stopped) {
    waiting_.push_back([this, batch = std::move(batch)]() mutable {
      serve_give_backs(std::move(batch), loop_.now());
    });
    return;
  }
  serve_give_backs(std::move(batch), loop_.now());
}

void Shard::serve_give_backs(std::vector<GiveBack> batch, Nanos arrival) {
  const std::uint64_t runs = script_runs_for(batch.size());
  give_back_runs += runs;
  give_back_keys += batch.size();
  const double us = cost_.call_us + cost_.script_us * static_cast<double>(runs) +
                    cost_.give_back_us * static_cast<double>(batch.size());
  const Nanos begin = std::max(arrival, busy_until_);
  busy_until_ = begin + Nanos{static_cast<std::int64_t>(us * 1000)};
  account(begin, runs, us);
  bytes += cost_.give_back_bytes * static_cast<double>(batch.size());
  loop_.at(busy_until_, [this, batch = std::move(batch)]() mutable {
    if (!killed) run_give_backs(std::move(batch));
  });
}

std::vector<LeaseGrant> Shard::run_leases(const std::vector<LeaseRequest>& requests) {
  std::vector<LeaseGrant> grants;
  store_->lease(requests, [&](std::vector<LeaseGrant> g) { grants = std::move(g); });
  const Nanos now = loop_.now();
  for (auto& f : failovers_) {
    if (f->promoted) continue;
    if (f->mirroring) {
      f->replica->lease(requests, [](std::vector<LeaseGrant>) {});
    } else if (now < f->death) {
      for (const LeaseGrant& g : grants) f->figures.forgotten += g.granted;
    }
    if (now >= f->stated_from && now < f->death) {
      for (std::size_t i = 0; i < grants.size() && i < requests.size(); ++i) {
        if (grants[i].granted == 0) continue;
        f->figures.granted_in_lag[requests[i].key] += grants[i].granted;
        f->figures.granted_in_lag_total += grants[i].granted;
      }
    }
  }
  return grants;
}

void Shard::run_give_backs(std::vector<GiveBack> batch) {
  for (auto& f : failovers_) {
    if (!f->promoted && f->mirroring) f->replica->give_back(batch);
  }
  store_->give_back(std::move(batch));
}

std::size_t Shard::plan_failover(Nanos death, Nanos cutoff, Nanos promote_at, Nanos stated_from) {
  auto f = std::make_unique<Failover>();
  f->death = death;
  f->cutoff = cutoff;
  f->promote = promote_at;
  f->stated_from = stated_from;
  f->replica = std::make_unique<tollgate::InProcessStore>(clock_);
  const std::size_t i = failovers_.size();
  failovers_.push_back(std::move(f));
  // At the cutoff this replica stops receiving, and so do the replicas of later failovers:
  // what the primary runs from now on dies with it.
  loop_.at(cutoff, [this, i] {
    Failover& me = *failovers_[i];
    me.frozen = true;
    for (auto& o : failovers_) {
      if (!o->promoted && o->death >= me.death) o->mirroring = false;
    }
  });
  loop_.at(death, [this] { killed = true; });
  loop_.at(promote_at, [this, i] { promote(i); });
  return i;
}

void Shard::promote(std::size_t i) {
  Failover& me = *failovers_[i];
  me.promoted = true;
  store_ = std::move(me.replica);
  busy_until_ = loop_.now();
  killed = false;
  // Later failovers' replicas stopped at this one's cutoff (or their own, earlier): each
  // holds what the promoted one holds, and follows it from now on unless past its cutoff.
  for (auto& o : failovers_) {
    if (o->promoted || o->death < me.death) continue;
    o->figures.forgotten = 0;
    if (!o->frozen) o->mirroring = true;
  }
}

std::size_t Shard::watch(Nanos from) {
  watches_.emplace_back(from, -1);
  return watches_.size() - 1;
}

void Shard::note_ok(Nanos at) {
  for (auto& [from, ok] : watches_) {
    if (ok < 0 && at >= from) ok = (at - from).count();
  }
}

void Shard::resume() {
  stopped = false;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& w : waiting) w();
}

void Shard::wipe() {
  store_ = std::make_unique<tollgate::InProcessStore>(clock_);
  busy_until_ = loop_.now();
}

std::size_t Transport::shard_of(const tollgate::Policy& policy, std::string_view key) const {
  const std::string_view group = policy.group.empty() ? key : std::string_view(policy.group);
  return routing_.index_of[static_cast<std::size_t>(
      tollgate::redis::shard_of(group, static_cast<std::int32_t>(shards_.size())))];
}

void Transport::send_leases(std::size_t index, std::vector<const LeaseRequest*> requests,
                            std::function<void(ShardOutcome)> done) {
  struct Call {
    bool answered = false;
    std::function<void(ShardOutcome)> done;
  };
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  Shard& s = *shards_[routing_.shard_at[index]];
  auto finish = [call, &s, this](ShardOutcome o) {
    if (call->answered) return;
    call->answered = true;
    if (o.error.empty()) s.note_ok(loop_.now());
    auto d = std::move(call->done);
    d(std::move(o));
  };
  if (s.killed) {
    // Connection refused: nothing was written.
    loop_.after(s.one_way() * 2, [finish] {
      finish(ShardOutcome{{}, "connection refused", true});
    });
    return;
  }
  auto copies = std::make_shared<std::vector<LeaseRequest>>();
  copies->reserve(requests.size());
  for (const LeaseRequest* r : requests) copies->push_back(*r);
  const Nanos deadline = loop_.now() + timeout_;
  if (s.stopped) {
    // Written, and waiting in the stopped server's socket: the timeout answers first.
    loop_.at(deadline, [finish] { finish(ShardOutcome{{}, "timeout", false}); });
    s.arrive(copies, finish);
    return;
  }
  // The one-way trip is folded into the queue: the call is served from now + one way.
  Nanos arrival = loop_.now() + s.one_way();
  if (s.moving) {
    // The slot is moving: MOVED (or ASK) back from the old owner, then the resend.
    arrival += s.one_way() + s.one_way();
    ++s.redirects;
  }
  if (!s.serve(copies, finish, arrival, deadline)) {
    loop_.at(deadline, [finish] { finish(ShardOutcome{{}, "timeout", false}); });
  }
}

void Transport::send_give_backs(std::size_t index, std::vector<GiveBack> batch) {
  Shard& s = *shards_[routing_.shard_at[index]];
  if (s.killed) return;
  if (s.stopped) {
    s.arrive_give_backs(std::move(batch));
    return;
  }
  s.serve_give_backs(std::move(batch), loop_.now() + s.one_way());
}

}  // namespace fleet
