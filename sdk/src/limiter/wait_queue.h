// The wait queue: callers of acquire / acquire_async waiting for tokens, FIFO per key,
// with their deadlines (docs/architecture.md, "The parts of the Limiter"). A wait ends
// exactly once: served from the key's balance, at its deadline, cancelled, or finished
// with a decision for all of a key's waits (fallback, a key dropped, shutdown).
// Thread-safe: every method takes the queue's own mutex (a leaf lock); completions come
// back in a Completions list, to be called with complete() once no lock is held.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <utility>
#include <vector>

#include "limiter/entry.h"
#include "tollgate/limiter.h"

namespace tollgate::core {

struct Waiter {
  WaitId id = 0;
  Entry* entry = nullptr;
  std::uint64_t cost = 0;
  Nanos deadline{0};
  Limiter::Completion done;
};

// Completions of ended waits, to be called outside any lock.
using Completions = std::vector<std::pair<Limiter::Completion, Decision>>;
// Calls each completion in order; a throwing completion is its own business.
void complete(Completions& done) noexcept;

class WaitQueue {
 public:
  WaitQueue() = default;
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;
  ~WaitQueue();

  enum class Added : std::uint8_t { kQueued, kRetired, kFull };
  // Queues a wait for `cost` tokens of `e` until `deadline`, behind the key's other waits.
  // Refused when `e` has left the table (kRetired: checked under the lock, so a key being
  // dropped or evicted takes no new waiter) or holds `max_per_key` waits (kFull); then
  // `done` is left as it was, for the caller to complete. `id` is the new wait's.
  Added add(Entry* e, std::uint64_t cost, Nanos deadline, std::size_t max_per_key,
            Limiter::Completion& done, WaitId& id);

  // Ends the wait `id` (its completion goes to `done`); false when no such wait is queued.
  bool cancel(WaitId id, Limiter::Completion& done);

  struct Served {
    std::uint64_t waits = 0;
    std::uint64_t tokens = 0;
  };
  // Serves `e`'s waits in order from its balance (one CAS each) while the first one's cost
  // is there: admitted (ok, or fallback_local while the key spends its local bucket).
  Served serve(Entry* e, Completions& out);

  // Ends every wait of `e` with decide(waiter); unlink() runs first under the same lock
  // (a key leaving the table: no wait can join it after).
  template <typename Decide, typename Unlink>
  void finish_key(Entry* e, Decide decide, Completions& out, Unlink unlink) {
    std::lock_guard lk(mu_);
    unlink();
    auto it = queues_.find(e);
    if (it == queues_.end()) return;
    for (Waiter* w : it->second) end(w, decide(*w), out);
    queues_.erase(it);
  }
  template <typename Decide>
  void finish_key(Entry* e, Decide decide, Completions& out) {
    finish_key(e, decide, out, [] {});
  }

  // When `e` has no waits, runs unlink() under the lock (no wait can join after) and
  // forgets the key; false, having done nothing, while it has any.
  template <typename Unlink>
  bool close_if_idle(Entry* e, Unlink unlink) {
    std::lock_guard lk(mu_);
    if (e->waiters.load(std::memory_order_acquire) != 0) return false;
    unlink();
    queues_.erase(e);
    return true;
  }

  // Ends the waits whose deadline is at or before `now`, earliest deadline first, with
  // decide(waiter). Returns how many ended.
  template <typename Decide>
  std::size_t expire(Nanos now, Decide decide, Completions& out) {
    std::lock_guard lk(mu_);
    std::size_t n = 0;
    while (!deadlines_.empty() && deadlines_.top().at <= now) {
      const WaitId id = deadlines_.top().id;
      deadlines_.pop();
      auto it = waits_.find(id);
      if (it == waits_.end()) continue;  // served or cancelled before its deadline
      Waiter* w = it->second;
      unqueue(w);
      end(w, decide(*w), out);
      ++n;
    }
    return n;
  }

  // Ends every wait, of every key, with decide(waiter).
  template <typename Decide>
  void finish_all(Decide decide, Completions& out) {
    std::lock_guard lk(mu_);
    for (auto& [id, w] : waits_) {
      out.emplace_back(std::move(w->done), decide(*w));
      w->entry->waiters.store(0, std::memory_order_relaxed);
      delete w;
    }
    waits_.clear();
    queues_.clear();
  }

  // The cost of `e`'s first wait (0: none).
  std::uint64_t head_cost(const Entry* e) const;
  // Waits queued, of all keys.
  std::size_t size() const;
  // The earliest deadline still queued (Nanos::max(): none). A served or cancelled wait's
  // deadline may still count until it is due: the scheduler then wakes for nothing.
  Nanos next_deadline() const;

 private:
  struct Deadline {
    Nanos at;
    WaitId id;
    bool operator>(const Deadline& o) const noexcept { return at > o.at; }
  };
  // Under mu_: the wait ends with `d`; it is out of its key's queue already.
  void end(Waiter* w, Decision d, Completions& out);
  // Under mu_: takes `w` out of its key's queue.
  void unqueue(Waiter* w);

  mutable std::mutex mu_;
  std::unordered_map<WaitId, Waiter*> waits_;
  std::unordered_map<const Entry*, std::deque<Waiter*>> queues_;  // FIFO per key
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;
  WaitId next_id_ = 1;
};

}  // namespace tollgate::core
