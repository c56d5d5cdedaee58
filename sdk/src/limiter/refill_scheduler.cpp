#include "limiter/refill_scheduler.h"

#include <algorithm>
#include <exception>

#include "limiter/lease_sizing.h"

namespace tollgate::core {

RefillScheduler::RefillScheduler(std::shared_ptr<QuotaStore> store,
                                 std::shared_ptr<Observer> observer, bool observed, Nanos start,
                                 Counters counters, double phase)
    : store_(std::move(store)),
      observer_(std::move(observer)),
      observed_(observed),
      start_(start),
      counted_(counters),
      phase_(phase >= 0 && phase < 1 ? phase : 0),
      inbox_(std::make_shared<Inbox>()) {
  inbox_->owner = this;
}

double RefillScheduler::phase_of(std::string_view instance_id) noexcept {
  // FNV-1a, then a multiply to mix the low bits up: the same phase on every platform and
  // run, so the fleet simulator's figures do not depend on the build.
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : instance_id) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  h *= 0x9e3779b97f4a7c15ull;
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

RefillScheduler::~RefillScheduler() {
  detach();
}

void RefillScheduler::detach() noexcept {
  std::lock_guard lk(inbox_->mu);
  inbox_->owner = nullptr;
}

void RefillScheduler::sleep(Nanos sleep, bool busy, const std::atomic<bool>& stop) {
  if (!busy) sleeping_.store(true, std::memory_order_seq_cst);
  if (busy || queue_head_.load(std::memory_order_seq_cst) == nullptr) {
    if (!stop.load()) (void)wake_.try_acquire_for(sleep);
    // One wake-up is enough for all; bounded, as threads may keep releasing meanwhile.
    for (int i = 0; i < 4096 && wake_.try_acquire(); ++i) {
    }
  }
  sleeping_.store(false, std::memory_order_relaxed);
}

void RefillScheduler::add_timer(Entry* e, Nanos at) {
  // Never due within the tick that is running, or the timer loop would not end.
  at = std::max(at, tick_now_ + kTick);
  const Ms due = to_ms(at);
  if (e->s.timer_refs > 0 && !ms_before(due, e->s.next_timer)) return;
  timers_.push({at, e});
  ++e->s.timer_refs;
  e->s.next_timer = due;
}

void RefillScheduler::drop_stale_timers() {
  timers_.drop_if([this](const Timer& t) {
    Entry* e = t.entry;
    if (!e->retired.load(std::memory_order_acquire) && !ms_before(e->s.next_timer, to_ms(t.at))) {
      return false;
    }
    --e->s.timer_refs;
    return true;
  });
}

void RefillScheduler::add(LeaseRequest req, Entry* e, std::uint8_t urgency, Nanos now,
                          Nanos refresh, Nanos ttl, Nanos within) {
  std::size_t part = 0;
  try {
    part = store_->partition_of(req);
  } catch (...) {
    part = 0;
  }
  PartitionBatch& pb = batch_[part];
  pb.mins.push_back(req.min);
  pb.wants.push_back(req.want);
  pb.most = std::max(pb.most, urgency);
  pb.within = std::min(pb.within, within);
  e->s.held = urgency != kUrgent;
  pb.requests.push_back(std::move(req));
  pb.entries.push_back(e);
  ++batch_size_;
  // A tick's wishes go out together at its end (within a millisecond), or as soon as one
  // partition's batch holds a full call (kMaxBatch). A batch of 512 over all partitions
  // sent every shard a call whenever 512 keys of all of them had gathered, several times
  // per refresh period at the reference fleet (docs/performance.md).
  if (pb.requests.size() >= kMaxBatch) flush(now, refresh, ttl, true);
}

void RefillScheduler::urge(Entry* e) {
  for (auto& [part, pb] : batch_) {
    if (std::find(pb.entries.begin(), pb.entries.end(), e) != pb.entries.end()) {
      pb.most = kUrgent;  // a key waits in the batch once at most
      break;
    }
  }
  e->s.held = false;
}

void RefillScheduler::flush(Nanos now, Nanos refresh, Nanos ttl, bool force) {
  if (batch_.empty()) return;
  // One store call per partition (a Redis shard), so that a slow or hung shard delays
  // only its own keys' refills: a store answers a call once, when all of it is done.
  // Refills that can wait stay in the batch until their partition's next call is due
  // (LeaseOptions::refresh after its last one); an urgent one takes them all along.
  // (The partition is the store's partition_of when the refill joined the batch; the
  // store routes each key again when the call is made.)
  held_until_ = Nanos::max();
  for (auto it = batch_.begin(); it != batch_.end();) {
    const std::size_t p = it->first;
    const auto last = partition_sent_.find(p);
    Nanos due = now;
    if (last != partition_sent_.end() && it->second.most != kUrgent) {
      // Never longer than a quarter of a TTL: the store's share levels hold that much of a
      // rate, so a longer wait would leave part of an instance's share unused.
      // And no longer than the bucket of a key whose grants found it half full takes to
      // fill (LimiterImpl::consider): what it refills beyond its burst unasked is lost.
      const Nanos period = std::min({refresh, ttl / kHoldTtlDivisor, it->second.within});
      due = it->second.most == kCold
                ? last->second + std::chrono::duration_cast<Nanos>(period * kColdHoldFraction)
                : held_due(last->second, period);
    }
    if (!force && due > now) {
      held_until_ = std::min(held_until_, due);
      ++it;
      continue;
    }
    PartitionBatch out = std::move(it->second);
    it = batch_.erase(it);
    batch_size_ -= out.requests.size();
    partition_sent_[p] = now;
    sent_this_tick_ = true;
    for (Entry* x : out.entries) x->s.held = false;
    counted_.leases_asked->fetch_add(out.requests.size(), std::memory_order_relaxed);
    send(now, p, std::move(out.requests), std::move(out.entries), std::move(out.mins),
         std::move(out.wants));
  }
}

Nanos RefillScheduler::held_due(Nanos last, Nanos period) const noexcept {
  // This instance's calls go at start + (phase + k) x period: instances that started
  // together (a fleet's first second, every key cold at once) would otherwise call each
  // shard in step, every one of them in the same millisecond of every period (the busiest
  // second of a shard held twice the keys of the next at the reference fleet). The first
  // grid point at least a quarter of a period after the last call, never more than a
  // period after it: a call off the grid (urgent, cold) moves the next one onto it, or
  // within a quarter period of it, and the hold stays within its bound.
  if (period <= Nanos{0}) return last;
  const std::int64_t p = period.count();
  const std::int64_t offset = static_cast<std::int64_t>(phase_ * static_cast<double>(p));
  const std::int64_t earliest = (last - start_).count() + p / 4 - offset;
  std::int64_t k = earliest / p;
  if (k * p < earliest) ++k;  // ceil (the division truncates toward zero)
  const Nanos grid = start_ + Nanos{k * p + offset};
  return std::min(grid, last + period);
}

void RefillScheduler::send(Nanos now, std::size_t partition, std::vector<LeaseRequest> batch,
                           std::vector<Entry*> entries, std::vector<std::uint64_t> mins,
                           std::vector<std::uint64_t> wants) {
  const std::uint64_t id = next_batch_++;
  if (observed_) {
    LeaseStartEvent start;
    start.id = id;
    start.keys = static_cast<std::uint32_t>(batch.size());
    for (std::uint64_t w : wants) start.tokens_asked += w;
    observer_->on_lease_start(start);
  }
  in_flight_.emplace(
      id, InFlight{now, std::move(entries), std::move(mins), std::move(wants), partition, false});
  std::weak_ptr<Inbox> weak = inbox_;
  auto done = [weak, id](std::vector<LeaseGrant> grants) {
    auto inbox = weak.lock();
    if (!inbox) return;
    std::lock_guard lk(inbox->mu);
    inbox->items.emplace_back(id, std::move(grants));
    if (inbox->owner != nullptr) inbox->owner->wake();
  };
  const std::size_t n = batch.size();
  try {
    store_->lease(std::move(batch), done);
  } catch (const std::exception& ex) {
    std::vector<LeaseGrant> failed(n);
    for (auto& g : failed) {
      g.ok = false;
      g.error = ex.what();
    }
    done(std::move(failed));
  }
}

std::vector<std::pair<std::uint64_t, std::vector<LeaseGrant>>> RefillScheduler::take_answers() {
  std::vector<std::pair<std::uint64_t, std::vector<LeaseGrant>>> items;
  std::lock_guard lk(inbox_->mu);
  items.swap(inbox_->items);
  return items;
}

LeaseEvent RefillScheduler::answered(std::uint64_t id, const InFlight& f, Nanos now) const {
  LeaseEvent ev;
  ev.id = id;
  ev.keys = static_cast<std::uint32_t>(f.entries.size());
  ev.duration = now - f.sent_at;
  return ev;
}

void RefillScheduler::finished(const InFlight& f, const LeaseEvent& ev, Nanos now) {
  LeaseEvent out = ev;
  if (out.failed_keys > 0) {
    out.outcome = LeaseOutcome::kFailed;
    counted_.lease_failures->fetch_add(out.failed_keys, std::memory_order_relaxed);
  } else {
    // Failed answers (often instant: an open breaker) would drag the estimate down.
    const std::int64_t rtt = (now - f.sent_at).count();
    const std::int64_t old = rtt_ns_.load(std::memory_order_relaxed);
    rtt_ns_.store(old + (rtt - old) / 8, std::memory_order_relaxed);
    round_trips_[f.partition].add(f.sent_at, now);
  }
  observer_->on_lease(out);
}

void RefillScheduler::give_back(GiveBack g, Nanos useful_until) {
  give_backs_.push_back(std::move(g));
  give_backs_until_.push_back(useful_until);
}

void RefillScheduler::end_tick(Nanos now, Nanos refresh) noexcept {
  // A give-back arriving after its lease's expiry in the store credits nothing there.
  const Nanos arrives = now + Nanos{rtt_ns()};
  std::size_t kept = 0;
  for (std::size_t i = 0; i < give_backs_.size(); ++i) {
    if (give_backs_until_[i] <= arrives) {
      counted_.tokens_given_back->fetch_sub(give_backs_[i].tokens, std::memory_order_relaxed);
      counted_.tokens_expired->fetch_add(give_backs_[i].tokens, std::memory_order_relaxed);
      continue;
    }
    if (kept != i) {
      give_backs_[kept] = std::move(give_backs_[i]);
      give_backs_until_[kept] = give_backs_until_[i];
    }
    ++kept;
  }
  give_backs_.resize(kept);
  give_backs_until_.resize(kept);
  if (give_backs_.empty()) give_backs_since_ = Nanos::max();
  if (!give_backs_.empty() && give_backs_since_ == Nanos::max()) give_backs_since_ = now;
  if (sent_this_tick_ || now - give_backs_since_ >= refresh) flush_give_backs();
  sent_this_tick_ = false;
}

void RefillScheduler::flush_give_backs() noexcept {
  give_backs_since_ = Nanos::max();
  if (give_backs_.empty()) return;
  try {
    store_->give_back(std::move(give_backs_));
  } catch (...) {
    // Best effort: tokens not given back expire in the store.
  }
  give_backs_.clear();
  give_backs_until_.clear();
}

Nanos RefillScheduler::next_wakeup(Nanos now, Nanos refresh) const {
  Nanos next = now + kMaxSleep;
  if (!timers_.empty()) next = std::min(next, timers_.top().at);
  if (!in_flight_.empty()) next = std::min(next, now + kTick);
  if (!batch_.empty()) next = std::min(next, std::max(held_until_, now + kTick));
  if (!give_backs_.empty()) {
    const Nanos since = give_backs_since_ == Nanos::max() ? now : give_backs_since_;
    next = std::min(next, std::max(since + refresh, now + kTick));
  }
  return next;
}

}  // namespace tollgate::core
