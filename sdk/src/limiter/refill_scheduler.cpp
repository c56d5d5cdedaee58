#include "limiter/refill_scheduler.h"

#include <exception>
#include <numeric>

#include "limiter/lease_sizing.h"

namespace tollgate::core {

RefillScheduler::RefillScheduler(std::shared_ptr<QuotaStore> store,
                                 std::shared_ptr<Observer> observer, bool observed, Nanos start,
                                 Counters counters)
    : store_(std::move(store)),
      observer_(std::move(observer)),
      observed_(observed),
      start_(start),
      counted_(counters),
      inbox_(std::make_shared<Inbox>()) {
  inbox_->owner = this;
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
                          Nanos refresh, Nanos ttl) {
  batch_mins_.push_back(req.min);
  batch_wants_.push_back(req.want);
  batch_urgency_.push_back(urgency);
  e->s.held = urgency != kUrgent;
  batch_.push_back(std::move(req));
  batch_entries_.push_back(e);
  // A tick's wishes go out together at its end (within a millisecond), or as soon as a
  // batch is full.
  if (batch_.size() >= kMaxBatch) flush(now, refresh, ttl, true);
}

void RefillScheduler::urge(Entry* e) {
  for (std::size_t i = 0; i < batch_entries_.size(); ++i) {
    if (batch_entries_[i] == e) batch_urgency_[i] = kUrgent;
  }
  e->s.held = false;
}

void RefillScheduler::flush(Nanos now, Nanos refresh, Nanos ttl, bool force) {
  if (batch_.empty()) return;
  // One store call per partition (a Redis shard), so that a slow or hung shard delays
  // only its own keys' refills: a store answers a call once, when all of it is done.
  // Refills that can wait stay in the batch until their partition's next call is due
  // (LeaseOptions::refresh after its last one); an urgent one takes them all along.
  std::vector<std::size_t> part(batch_.size());
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    try {
      part[i] = store_->partition_of(batch_[i]);
    } catch (...) {
      part[i] = 0;
    }
  }
  std::vector<std::size_t> order(batch_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t x, std::size_t y) { return part[x] < part[y]; });
  std::vector<LeaseRequest> kept;
  std::vector<Entry*> kept_entries;
  std::vector<std::uint64_t> kept_mins, kept_wants;
  std::vector<std::uint8_t> kept_urgency;
  held_until_ = Nanos::max();
  for (std::size_t k = 0; k < order.size();) {
    const std::size_t p = part[order[k]];
    std::size_t end = k;
    std::uint8_t most = kCanWait;
    for (; end < order.size() && part[order[end]] == p; ++end) {
      most = std::max(most, batch_urgency_[order[end]]);
    }
    const auto last = partition_sent_.find(p);
    Nanos due = now;
    if (last != partition_sent_.end() && most != kUrgent) {
      // Never longer than a quarter of a TTL: the store's share levels hold that much of a
      // rate, so a longer wait would leave part of an instance's share unused.
      const Nanos period = std::min(refresh, ttl / kHoldTtlDivisor);
      const Nanos hold =
          most == kCold ? std::chrono::duration_cast<Nanos>(period * kColdHoldFraction) : period;

      due = last->second + hold;
    }
    const bool go = force || due <= now;
    std::vector<LeaseRequest> batch;
    std::vector<Entry*> entries;
    std::vector<std::uint64_t> mins, wants;
    for (; k < end; ++k) {
      const std::size_t i = order[k];
      if (go) {
        batch.push_back(std::move(batch_[i]));
        entries.push_back(batch_entries_[i]);
        mins.push_back(batch_mins_[i]);
        wants.push_back(batch_wants_[i]);
      } else {
        kept.push_back(std::move(batch_[i]));
        kept_entries.push_back(batch_entries_[i]);
        kept_mins.push_back(batch_mins_[i]);
        kept_wants.push_back(batch_wants_[i]);
        kept_urgency.push_back(batch_urgency_[i]);
      }
    }
    if (!go) {
      held_until_ = std::min(held_until_, due);
      continue;
    }
    partition_sent_[p] = now;
    sent_this_tick_ = true;
    for (Entry* x : entries) x->s.held = false;
    counted_.leases_asked->fetch_add(batch.size(), std::memory_order_relaxed);
    send(now, p, std::move(batch), std::move(entries), std::move(mins), std::move(wants));
  }
  batch_ = std::move(kept);
  batch_entries_ = std::move(kept_entries);
  batch_mins_ = std::move(kept_mins);
  batch_wants_ = std::move(kept_wants);
  batch_urgency_ = std::move(kept_urgency);
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
    round_trips_[f.partition].add(Nanos{rtt}, now);
  }
  observer_->on_lease(out);
}

void RefillScheduler::end_tick(Nanos now, Nanos refresh) noexcept {
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
