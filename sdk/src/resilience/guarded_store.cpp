#include "resilience/guarded_store.h"

#include <atomic>
#include <cmath>
#include <mutex>
#include <random>
#include <stdexcept>

#include "resilience/bulkhead.h"

namespace tollgate::resilience {

namespace {

// One lease() call: its answers, and how many of its keys are still unanswered (plus one
// while lease() is still handing parts out). Each key is written by one piece only.
struct Call {
  std::vector<LeaseRequest> batch;
  std::vector<LeaseGrant> grants;
  std::atomic<std::size_t> pending{0};
  QuotaStore::LeaseCallback done;

  void answered(std::size_t keys) {
    if (keys > 0 && pending.fetch_sub(keys, std::memory_order_acq_rel) == keys) {
      done(std::move(grants));
    }
  }
};

}  // namespace

struct GuardedStore::State : std::enable_shared_from_this<State> {
  std::shared_ptr<ShardTransport> transport;
  RetryOptions retry;
  std::shared_ptr<const Clock> clock;
  std::shared_ptr<Timers> timers;
  std::vector<std::string> names;  // one per shard
  std::vector<std::unique_ptr<CircuitBreaker>> breakers;
  std::vector<std::unique_ptr<Bulkhead>> bulkheads;

  std::mutex observer_mu;  // read by breakers on any thread; set once by the Limiter
  std::shared_ptr<Observer> observer;

  std::mutex rng_mu;
  std::mt19937_64 rng;

  std::atomic<std::uint64_t> calls{0}, batches{0}, failures{0}, retries{0}, short_circuited{0},
      bulkhead_rejected{0};

  std::shared_ptr<Observer> current_observer() {
    std::lock_guard lk(observer_mu);
    return observer;
  }

  Nanos retry_delay(int retry_number) {
    double factor = std::ldexp(1.0, std::min(retry_number, 30));
    if (retry.jitter > 0) {
      std::lock_guard lk(rng_mu);
      factor *= 1.0 + std::uniform_real_distribution<double>(0.0, retry.jitter)(rng);
    }
    return Nanos{static_cast<std::int64_t>(static_cast<double>(retry.delay.count()) * factor)};
  }

  void admit(std::size_t shard, const std::shared_ptr<Call>& call, std::vector<std::size_t> idx);
  void send(std::size_t shard, const std::shared_ptr<Call>& call, std::vector<std::size_t> idx,
            int retried);
  void answered(std::size_t shard, const std::shared_ptr<Call>& call, std::vector<std::size_t> idx,
                int retried, Nanos sent, ShardOutcome outcome);
  void finish(std::size_t shard, const std::shared_ptr<Call>& call, std::size_t keys) {
    bulkheads[shard]->release(keys);  // queued parts start before this call is answered
    call->answered(keys);
  }
};

void GuardedStore::State::admit(std::size_t shard, const std::shared_ptr<Call>& call,
                                std::vector<std::size_t> idx) {
  auto part = std::make_shared<const std::vector<std::size_t>>(std::move(idx));
  // The bulkhead belongs to this state, so its queued starts may hold it by pointer.
  const std::size_t refused = bulkheads[shard]->submit(
      part->size(), [this, shard, call, part](std::size_t from, std::size_t to) {
        send(shard, call,
             std::vector<std::size_t>(part->begin() + static_cast<std::ptrdiff_t>(from),
                                      part->begin() + static_cast<std::ptrdiff_t>(to)),
             0);
      });
  if (refused == 0) return;
  for (std::size_t k = part->size() - refused; k < part->size(); ++k) {
    LeaseGrant& g = call->grants[(*part)[k]];
    g.ok = false;
    g.error = names[shard] + ": bulkhead full";
  }
  bulkhead_rejected += refused;
  call->answered(refused);
}

void GuardedStore::State::send(std::size_t shard, const std::shared_ptr<Call>& call,
                               std::vector<std::size_t> idx, int retried) {
  if (!breakers[shard]->allow()) {
    // The shard is failing: answer at once instead of queueing behind it.
    for (std::size_t i : idx) {
      LeaseGrant& g = call->grants[i];
      g.ok = false;
      g.error = names[shard] + ": circuit open";
    }
    short_circuited += idx.size();
    finish(shard, call, idx.size());
    return;
  }
  std::vector<const LeaseRequest*> requests;
  requests.reserve(idx.size());
  for (std::size_t i : idx) requests.push_back(&call->batch[i]);
  calls += idx.size();
  ++batches;
  const Nanos sent = clock->now();
  transport->send_leases(shard, std::move(requests),
                         [weak = weak_from_this(), shard, call, idx = std::move(idx), retried,
                          sent](ShardOutcome outcome) mutable {
                           if (auto self = weak.lock()) {
                             self->answered(shard, call, std::move(idx), retried, sent,
                                            std::move(outcome));
                           }
                         });
}

void GuardedStore::State::answered(std::size_t shard, const std::shared_ptr<Call>& call,
                                   std::vector<std::size_t> idx, int retried, Nanos sent,
                                   ShardOutcome outcome) {
  const Nanos took = clock->now() - sent;
  if (outcome.error.empty()) {
    breakers[shard]->on_success(took);
  } else {
    breakers[shard]->on_failure(took);
  }
  // A call refused before it was written did not run: nothing to find out by sending it
  // again (the Limiter asks again). One that failed after it was written may have run (a
  // lost reply, a dropped connection): the same requests go again once the transport has
  // had time to recover, and their ids make the shard answer what it answered the first
  // time, so nothing is granted twice and nothing granted is lost.
  if (!outcome.error.empty() && !outcome.unsent && retried < retry.max_retries) {
    ++retries;
    timers->after(retry_delay(retried),
                  [weak = weak_from_this(), shard, call, idx = std::move(idx), retried]() mutable {
                    if (auto self = weak.lock())
                      self->send(shard, call, std::move(idx), retried + 1);
                  });
    return;
  }
  for (std::size_t k = 0; k < idx.size(); ++k) {
    LeaseGrant& g = call->grants[idx[k]];
    if (!outcome.error.empty()) {
      g.ok = false;
      g.error = names[shard] + ": " + outcome.error;
    } else if (k < outcome.grants.size()) {
      g = std::move(outcome.grants[k]);
    } else {
      g.ok = false;
      g.error = names[shard] + ": answered fewer keys than asked";
    }
    if (!g.ok) ++failures;
  }
  finish(shard, call, idx.size());
}

GuardedStore::GuardedStore(std::shared_ptr<ShardTransport> transport, const BreakerConfig& breaker,
                           const BulkheadConfig& bulkhead, RetryOptions retry,
                           std::shared_ptr<const Clock> clock, std::shared_ptr<Timers> timers)
    : state_(std::make_shared<State>()) {
  if (!transport || !timers) throw std::invalid_argument("GuardedStore: a transport and timers");
  State& s = *state_;
  s.transport = std::move(transport);
  s.retry = retry;
  s.clock = clock ? std::move(clock) : SteadyClock::shared();
  s.timers = std::move(timers);
  s.rng.seed(retry.seed != 0 ? retry.seed : std::random_device{}());
  const BreakerOptions& options = breaker;  // one struct (tollgate/breaker_config.h)
  for (std::size_t i = 0; i < s.transport->shard_count(); ++i) {
    s.names.push_back(s.transport->shard_name(i));
    s.breakers.push_back(std::make_unique<CircuitBreaker>(options, s.clock));
    // Breakers live in the state; their observer holds it weakly.
    s.breakers.back()->set_observer(
        [weak = std::weak_ptr<State>(state_), shard = i](BreakerState from, BreakerState to) {
          auto self = weak.lock();
          if (!self) return;
          auto ob = self->current_observer();
          if (!ob) return;
          ob->on_breaker(BreakerEvent{static_cast<std::uint32_t>(shard), from, to});
          ob->on_log(to == BreakerState::kOpen ? LogLevel::kWarn : LogLevel::kInfo,
                     self->names[shard] + ": circuit breaker " + std::string(to_string(from)) +
                         " -> " + std::string(to_string(to)));
        });
    s.bulkheads.push_back(std::make_unique<Bulkhead>(bulkhead.max_in_flight, bulkhead.max_queue));
  }
}

GuardedStore::~GuardedStore() = default;

void GuardedStore::lease(std::vector<LeaseRequest> batch, LeaseCallback done) {
  State& s = *state_;
  auto call = std::make_shared<Call>();
  call->grants.resize(batch.size());
  std::vector<std::vector<std::size_t>> by_shard(s.breakers.size());
  std::size_t answered_now = 1;  // the hold of lease() itself
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].policy) {
      call->grants[i].ok = false;
      call->grants[i].error = "lease request without a policy";
      ++answered_now;
      continue;
    }
    by_shard[s.transport->shard_of(*batch[i].policy, batch[i].key)].push_back(i);
  }
  call->pending.store(batch.size() + 1, std::memory_order_relaxed);
  call->batch = std::move(batch);
  call->done = std::move(done);
  for (std::size_t shard = 0; shard < by_shard.size(); ++shard) {
    if (!by_shard[shard].empty()) s.admit(shard, call, std::move(by_shard[shard]));
  }
  call->answered(answered_now);
}

void GuardedStore::give_back(std::vector<GiveBack> batch) {
  State& s = *state_;
  std::vector<std::vector<GiveBack>> by_shard(s.breakers.size());
  for (GiveBack& g : batch) {
    if (!g.policy || g.tokens == 0) continue;
    by_shard[s.transport->shard_of(*g.policy, g.key)].push_back(std::move(g));
  }
  for (std::size_t shard = 0; shard < by_shard.size(); ++shard) {
    if (by_shard[shard].empty()) continue;
    s.calls += by_shard[shard].size();
    ++s.batches;
    s.transport->send_give_backs(shard, std::move(by_shard[shard]));
  }
}

std::size_t GuardedStore::partition_of(const LeaseRequest& request) const {
  return request.policy ? state_->transport->shard_of(*request.policy, request.key) : 0;
}

void GuardedStore::set_observer(std::shared_ptr<Observer> observer) {
  std::lock_guard lk(state_->observer_mu);
  state_->observer = std::move(observer);
}

std::vector<BreakerState> GuardedStore::breaker_states() const {
  std::vector<BreakerState> out;
  out.reserve(state_->breakers.size());
  for (const auto& b : state_->breakers) out.push_back(b->state());
  return out;
}

BreakerState GuardedStore::breaker_state(std::size_t shard) const {
  return state_->breakers.at(shard)->state();
}

CircuitBreaker::Counts GuardedStore::breaker_counts(std::size_t shard) const {
  return state_->breakers.at(shard)->counts();
}

GuardedStore::Counters GuardedStore::counters() const noexcept {
  const State& s = *state_;
  std::uint64_t most = 0;
  for (const auto& b : s.bulkheads) most = std::max<std::uint64_t>(most, b->most_in_flight());
  return {s.calls.load(),
          s.batches.load(),
          s.failures.load(),
          s.retries.load(),
          s.short_circuited.load(),
          s.bulkhead_rejected.load(),
          most};
}

}  // namespace tollgate::resilience
