#include "resilience/circuit_breaker.h"

namespace tollgate::resilience {
namespace {
constexpr std::int64_t kBuckets = 10;  // a time window is kept in 10 slices
}

CircuitBreaker::CircuitBreaker(BreakerOptions options, std::shared_ptr<const Clock> clock)
    : options_(options), clock_(clock ? std::move(clock) : SteadyClock::shared()) {}

void CircuitBreaker::set_observer(Observer observer) {
  std::lock_guard lk(mu_);
  observer_ = std::move(observer);
}

CircuitBreaker::Counts CircuitBreaker::counts() const {
  std::lock_guard lk(mu_);
  return counts_;
}

void CircuitBreaker::transition(BreakerState to,
                                std::vector<std::pair<BreakerState, BreakerState>>& events) {
  if (to == state_) return;
  events.emplace_back(state_, to);
  if (to == BreakerState::kOpen) {
    ++counts_.opened;
    opened_at_ = clock_->now().count();
  }
  if (to == BreakerState::kClosed) ++counts_.closed;
  if (to != BreakerState::kOpen) window_.clear();  // a fresh start after a break
  probes_started_ = probes_succeeded_ = 0;
  state_ = to;
}

void CircuitBreaker::refresh(std::int64_t now,
                             std::vector<std::pair<BreakerState, BreakerState>>& events) {
  if (state_ == BreakerState::kOpen && now - opened_at_ >= options_.break_duration.count()) {
    transition(BreakerState::kHalfOpen, events);
  }
}

void CircuitBreaker::notify(const std::vector<std::pair<BreakerState, BreakerState>>& events) {
  if (events.empty()) return;
  Observer obs;
  {
    std::lock_guard lk(mu_);
    obs = observer_;
  }
  if (!obs) return;
  for (auto [from, to] : events) obs(from, to);
}

BreakerState CircuitBreaker::state() {
  std::vector<std::pair<BreakerState, BreakerState>> events;
  BreakerState s;
  {
    std::lock_guard lk(mu_);
    refresh(clock_->now().count(), events);
    s = state_;
  }
  notify(events);
  return s;
}

bool CircuitBreaker::allow() {
  std::vector<std::pair<BreakerState, BreakerState>> events;
  bool ok = false;
  {
    std::lock_guard lk(mu_);
    refresh(clock_->now().count(), events);
    switch (state_) {
      case BreakerState::kClosed:
        ok = true;
        break;
      case BreakerState::kOpen:
        ok = false;
        break;
      case BreakerState::kHalfOpen:
        ok = probes_started_ < options_.permitted_calls_in_half_open;
        if (ok) ++probes_started_;
        break;
    }
    if (!ok) ++counts_.rejected;
  }
  notify(events);
  return ok;
}

void CircuitBreaker::on_success(Nanos duration) {
  record(false, duration);
}
void CircuitBreaker::on_failure(Nanos duration) {
  record(true, duration);
}

void CircuitBreaker::roll(std::int64_t now) {
  const std::int64_t slice =
      std::max<std::int64_t>(1, options_.sampling_duration.count() / kBuckets);
  const std::int64_t start = now - now % slice;
  while (!window_.empty() && window_.front().start <= start - kBuckets * slice) window_.pop_front();
  if (window_.empty() || window_.back().start != start) window_.push_back(Bucket{start, 0, 0, 0});
}

void CircuitBreaker::record(bool failed, Nanos duration) {
  const bool slow = duration >= options_.slow_call_duration_threshold;
  std::vector<std::pair<BreakerState, BreakerState>> events;
  {
    std::lock_guard lk(mu_);
    const std::int64_t now = clock_->now().count();
    refresh(now, events);
    if (state_ == BreakerState::kHalfOpen) {
      if (failed || slow) {
        transition(BreakerState::kOpen, events);
      } else if (++probes_succeeded_ >= options_.permitted_calls_in_half_open) {
        transition(BreakerState::kClosed, events);
      }
    } else if (state_ == BreakerState::kClosed) {
      if (options_.sliding_window_size > 0) {
        window_.push_back(Bucket{0, 1, failed ? 1u : 0u, slow ? 1u : 0u});
        while (window_.size() > options_.sliding_window_size) window_.pop_front();
      } else {
        roll(now);
        Bucket& b = window_.back();
        ++b.calls;
        b.failures += failed ? 1 : 0;
        b.slow += slow ? 1 : 0;
      }
      std::uint64_t calls = 0, failures = 0, slows = 0;
      for (const Bucket& b : window_) {
        calls += b.calls;
        failures += b.failures;
        slows += b.slow;
      }
      if (calls >= options_.minimum_throughput && calls > 0) {
        const double fr = static_cast<double>(failures) / static_cast<double>(calls);
        const double sr = static_cast<double>(slows) / static_cast<double>(calls);
        if (fr >= options_.failure_ratio || sr >= options_.slow_call_rate_threshold) {
          transition(BreakerState::kOpen, events);
        }
      }
    }
    // Outcomes that arrive while open (calls let through before it opened) change nothing.
  }
  notify(events);
}

}  // namespace tollgate::resilience
