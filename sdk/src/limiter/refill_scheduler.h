// The refill scheduler's machinery (docs/architecture.md, "The refill scheduler"): the
// refill stack application threads push keys onto and the wake-up of the SDK's thread; the
// keys' timers; the lease requests of a tick, held per store partition until its call is
// due, and sent one call per partition; the calls in flight, the inbox their answers arrive
// in, and which of them are overdue; the give-backs. What a key asks for and what an answer
// does to it stay with the Limiter (LimiterImpl::consider, apply), which a tick calls back.
// Thread-safety: request() and wake() from any thread (lock-free, no system call unless
// the SDK's thread sleeps); the inbox under its own mutex from the store's threads;
// everything else on the scheduler's thread only (under the Limiter's tick_mu_).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <semaphore>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "limiter/entry.h"
#include "limiter/round_trips.h"
#include "tollgate/limiter.h"

namespace tollgate::core {

class RefillScheduler {
 public:
  static constexpr Nanos kTick = std::chrono::milliseconds(1);
  static constexpr std::size_t kMaxBatch = 512;  // lease requests per store call
  // How soon a refill must go (limiter/lease_sizing.h, refill_urgent).
  static constexpr std::uint8_t kCanWait = 0;  // with the partition's next call
  static constexpr std::uint8_t kCold = 1;     // within a short hold
  static constexpr std::uint8_t kUrgent = 2;   // at the end of this tick

  // The Limiter's counters the scheduler adds to (Stats), each as it happens.
  struct Counters {
    std::atomic<std::uint64_t>* leases_asked;
    std::atomic<std::uint64_t>* lease_failures;
    std::atomic<std::uint64_t>* refills_overdue;
    std::atomic<std::uint64_t>* tokens_given_back;
    std::atomic<std::uint64_t>* tokens_expired;
  };
  // `start`: the limiter's time 0 (timers keep limiter milliseconds, Entry::s.next_timer).
  // `observer` hears of every call (LeaseStartEvent only when `observed`) and its answer.
  // `phase` in [0, 1): where in each refresh period this instance's held calls go
  // (phase_of(instance id)), so that a fleet's instances, started together, do not call a
  // shard in step (flush).
  RefillScheduler(std::shared_ptr<QuotaStore> store, std::shared_ptr<Observer> observer,
                  bool observed, Nanos start, Counters counters, double phase = 0);
  // An instance's phase: its id hashed to [0, 1), the same on every run.
  static double phase_of(std::string_view instance_id) noexcept;
  ~RefillScheduler();
  RefillScheduler(const RefillScheduler&) = delete;
  RefillScheduler& operator=(const RefillScheduler&) = delete;

  // --- any thread ---
  // Puts `e` on the refill stack, once (Entry::queued), and wakes the SDK's thread if it
  // sleeps.
  void request(Entry* e) noexcept {
    if (e->queued.load(std::memory_order_relaxed)) return;
    if (e->queued.exchange(true, std::memory_order_acq_rel)) return;
    Entry* head = queue_head_.load(std::memory_order_relaxed);
    do {
      e->next_queued.store(head, std::memory_order_relaxed);
    } while (!queue_head_.compare_exchange_weak(head, e, std::memory_order_seq_cst,
                                                std::memory_order_relaxed));
    if (sleeping_.load(std::memory_order_seq_cst)) wake();
  }
  // A semaphore, not a mutex and a condition variable: an application thread never waits
  // for a lock the SDK's thread holds (it might be preempted holding it).
  void wake() noexcept { wake_.release(); }
  // The store's round trip (EWMA of answered calls), for the hot path's retry_after.
  std::int64_t rtt_ns() const noexcept { return rtt_ns_.load(std::memory_order_relaxed); }

  // --- the SDK's thread, outside a tick ---
  // Sleeps up to `sleep` or until woken (not at all once `stop` is set): while `busy`,
  // without telling application threads to wake it (they would pay a system call per
  // refill).
  void sleep(Nanos sleep, bool busy, const std::atomic<bool>& stop);
  // Answers stop waking a thread (shutdown); they are still taken in.
  void detach() noexcept;

  // --- scheduler (under the Limiter's tick_mu_) ---
  // A tick starts at `now`: no timer may be due within it. On the SDK's own thread
  // (set_own_thread), a tick that comes kLateTick or more after the last one while calls
  // were in flight (the thread sleeps at most kTick then) means the process was not
  // running: its I/O thread may hold answers it had no CPU to hand over, so this tick
  // judges no call overdue (mark_overdue); the next one, on time, does.
  void begin_tick(Nanos now) noexcept {
    late_ = own_thread_ && !in_flight_.empty() && now - tick_now_ >= kLateTick;
    tick_now_ = now;
  }
  static constexpr Nanos kLateTick = std::chrono::milliseconds(5);
  void set_own_thread(bool own) noexcept { own_thread_ = own; }
  // The refill stack, taken whole; the caller clears each entry's `queued`.
  Entry* take_requests() noexcept {
    return queue_head_.exchange(nullptr, std::memory_order_acquire);
  }

  // Timers: one pending per key at or before `at` is enough; when it fires, the key's
  // maintenance sets the next one. Never due within the tick that is running.
  void add_timer(Entry* e, Nanos at);
  // Fires the timers due at `now` (each key's earliest only: a later one that an earlier
  // add_timer superseded is stale), calling fire(e) for keys still in the table.
  template <typename Fire>
  void fire_timers(Nanos now, Fire fire) {
    while (!timers_.empty() && timers_.top().at <= now) {
      const Timer t = timers_.top();
      Entry* e = t.entry;
      timers_.pop();
      --e->s.timer_refs;
      // Running stale ones too made every fired duplicate push another, and the heap grew
      // without bound (timers are 16 bytes; timer_refs is 16 bits).
      if (to_ms(t.at) != e->s.next_timer) continue;
      e->s.next_timer = to_ms(now) + kNoTimer;  // unknown: the next add_timer pushes
      if (!e->retired.load(std::memory_order_acquire)) fire(e);
    }
    timer_count_.store(timers_.size(), std::memory_order_relaxed);
  }
  // Drops the timers of evicted keys and those an earlier one made redundant (a key needs
  // only its earliest; when it fires, its maintenance sets the next).
  void drop_stale_timers();
  std::size_t timers() const noexcept { return timers_.size(); }
  // timers() after the last tick, from any thread (stats).
  std::size_t timers_counted() const noexcept {
    return timer_count_.load(std::memory_order_relaxed);
  }
  static constexpr std::size_t kTimerBytes = sizeof(Nanos) + sizeof(Entry*);

  // The batch: `req` for `e` waits for its partition's call (the store's partition_of,
  // looked up once, here), by `urgency`; while it waits, the partition's calls come at most
  // `within` apart (a key whose grants found its bucket filling up: LimiterImpl::consider).
  // Flushed at once (force) when kMaxBatch requests wait.
  void add(LeaseRequest req, Entry* e, std::uint8_t urgency, Nanos now, Nanos refresh, Nanos ttl,
           Nanos within = Nanos::max());
  // A held request of `e` goes with this tick's calls after all.
  void urge(Entry* e);
  // One store call per partition whose call is due (an urgent request takes the rest of
  // its partition along); a request that can wait stays until its partition's next call,
  // `refresh` after the last (at most ttl / kHoldTtlDivisor and the shortest `within` of
  // its requests; a cold key's, a fraction of that) or, when sooner but at least a quarter
  // of that after the last, at this instance's phase of the period (held_due).
  void flush(Nanos now, Nanos refresh, Nanos ttl, bool force = false);
  bool batch_empty() const noexcept { return batch_size_ == 0; }

  // Takes in the answers of calls that came back: apply(e, min, want, grant, sent_at) per
  // key, in the order asked (a grant missing from a short answer is a failure); the round
  // trip of a call without failures goes into the EWMA and its partition's record.
  template <typename Apply>
  void drain(Nanos now, Apply apply) {
    for (auto& [id, grants] : take_answers()) {
      auto it = in_flight_.find(id);
      if (it == in_flight_.end()) continue;
      InFlight f = std::move(it->second);
      in_flight_.erase(it);
      LeaseEvent ev = answered(id, f, now);
      for (std::size_t i = 0; i < f.entries.size(); ++i) {
        LeaseGrant g;
        if (i < grants.size()) {
          g = std::move(grants[i]);
        } else {
          g.ok = false;
          g.error = "store answered fewer keys than asked";
        }
        ev.tokens_asked += f.wants[i];
        if (g.ok) {
          ev.tokens_granted += g.granted;
        } else {
          ++ev.failed_keys;
        }
        apply(f.entries[i], f.mins[i], f.wants[i], g, f.sent_at);
      }
      finished(f, ev, now);
    }
  }
  // Calls unanswered past their partition's overdue time (`floor`, or 4 x its p99 round
  // trip): overdue(e) for each of their keys still in the table, once per call.
  template <typename Overdue>
  void mark_overdue(Nanos now, Nanos floor, Overdue overdue) {
    if (floor <= Nanos{0} || late_) return;
    for (auto& [id, f] : in_flight_) {
      if (f.overdue) continue;
      const auto rt = round_trips_.find(f.partition);
      if (rt == round_trips_.end() || !rt->second.overdue(f.sent_at, now, floor, 4.0)) continue;
      f.overdue = true;
      counted_.refills_overdue->fetch_add(f.entries.size(), std::memory_order_relaxed);
      for (Entry* e : f.entries) {
        if (!e->retired.load(std::memory_order_acquire)) overdue(e);
      }
    }
  }
  bool in_flight() const noexcept { return !in_flight_.empty(); }

  // Give-backs travel with the next lease call, or once they have waited `refresh`.
  // `useful_until` (the local clock): when the store stops crediting them (the lease's
  // expiry there; Nanos::max() for a debt, which the store always counts).
  void give_back(GiveBack g, Nanos useful_until = Nanos::max());
  // The end of a tick: give-backs the store would no longer credit are dropped (counted
  // as expired: they cost a call and credit nothing); the rest go if a call went or they
  // have waited long enough.
  void end_tick(Nanos now, Nanos refresh) noexcept;
  void flush_give_backs() noexcept;

  // When the scheduler has work next (at most kMaxSleep after now): the earliest timer, a
  // held partition's call, give-backs due, or the next tick while calls are in flight.
  Nanos next_wakeup(Nanos now, Nanos refresh) const;
  static constexpr Nanos kMaxSleep = std::chrono::milliseconds(250);

 private:
  static constexpr Ms kNoTimer = 0x7fffffff;  // "no timer known" offset
  struct Timer {
    Nanos at;
    Entry* entry;
    bool operator>(const Timer& o) const noexcept { return at > o.at; }
  };
  static_assert(sizeof(Timer) == kTimerBytes);
  // A heap of timers that can drop some: an evicted entry's memory is otherwise held until
  // its lease timers would have fired.
  struct TimerQueue : std::priority_queue<Timer, std::vector<Timer>, std::greater<>> {
    template <typename Drop>
    void drop_if(Drop drop) {
      auto end = std::remove_if(c.begin(), c.end(), drop);
      if (end == c.end()) return;
      c.erase(end, c.end());
      if (c.capacity() > 4 * c.size() + 1024) c.shrink_to_fit();
      std::make_heap(c.begin(), c.end(), comp);
    }
  };
  struct InFlight {
    Nanos sent_at;
    std::vector<Entry*> entries;
    std::vector<std::uint64_t> mins;
    std::vector<std::uint64_t> wants;
    std::size_t partition = 0;
    bool overdue = false;  // its keys decide by their fallback until the answer
  };
  // Store answers arrive here from whatever thread the store uses.
  struct Inbox {
    std::mutex mu;
    std::vector<std::pair<std::uint64_t, std::vector<LeaseGrant>>> items;
    RefillScheduler* owner = nullptr;  // null after detach()
  };

  Ms to_ms(Nanos t) const noexcept { return static_cast<Ms>((t - start_).count() / 1'000'000); }
  void send(Nanos now, std::size_t partition, std::vector<LeaseRequest> batch,
            std::vector<Entry*> entries, std::vector<std::uint64_t> mins,
            std::vector<std::uint64_t> wants);
  std::vector<std::pair<std::uint64_t, std::vector<LeaseGrant>>> take_answers();
  LeaseEvent answered(std::uint64_t id, const InFlight& f, Nanos now) const;
  void finished(const InFlight& f, const LeaseEvent& ev, Nanos now);
  // When a held call of a partition last called at `last` is due, `period` being its hold.
  Nanos held_due(Nanos last, Nanos period) const noexcept;

  const std::shared_ptr<QuotaStore> store_;
  const std::shared_ptr<Observer> observer_;
  const bool observed_;
  const Nanos start_;
  const Counters counted_;
  const double phase_;

  // Refill stack: a lock-free stack that application threads push to.
  std::atomic<Entry*> queue_head_{nullptr};
  std::atomic<bool> sleeping_{false};
  std::atomic<std::int64_t> rtt_ns_{1'000'000};  // EWMA of store round trips
  std::counting_semaphore<> wake_{0};

  TimerQueue timers_;
  Nanos tick_now_{0};                        // the time of the tick that is running
  bool own_thread_ = false;                  // ticked by the SDK's thread (set_own_thread)
  bool late_ = false;                        // this tick came late (begin_tick)
  std::atomic<std::size_t> timer_count_{0};  // timers_.size() after the last tick, for stats
  // Refills waiting for their partition's next store call, by partition (looked up once,
  // when the refill joins), in the order they joined: a tick looks at each partition, not
  // at each waiting refill.
  struct PartitionBatch {
    std::vector<LeaseRequest> requests;
    std::vector<Entry*> entries;
    std::vector<std::uint64_t> mins, wants;
    std::uint8_t most = kCanWait;  // the most urgent of them
    Nanos within = Nanos::max();   // the shortest of their add()'s within
  };
  std::map<std::size_t, PartitionBatch> batch_;
  std::size_t batch_size_ = 0;                             // refills in batch_, all partitions
  std::unordered_map<std::size_t, Nanos> partition_sent_;  // last store call per partition
  Nanos held_until_ = Nanos::max();  // when the earliest held partition is due
  bool sent_this_tick_ = false;
  Nanos give_backs_since_ = Nanos::max();  // when give_backs_ began to wait
  std::vector<GiveBack> give_backs_;
  std::vector<Nanos> give_backs_until_;  // give_back's useful_until, one per give_backs_
  std::unordered_map<std::uint64_t, InFlight> in_flight_;
  // Per partition (shard): its recent answered round trips, for mark_overdue().
  std::unordered_map<std::size_t, RoundTrips> round_trips_;
  std::uint64_t next_batch_ = 1;
  std::shared_ptr<Inbox> inbox_;
};

}  // namespace tollgate::core
