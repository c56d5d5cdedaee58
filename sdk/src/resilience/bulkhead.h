// A bulkhead per shard, keys as slots: at most max_in_flight keys sent and not yet
// answered, and at most max_queue keys waiting behind them. A part (the keys of one call
// for one shard) goes out at once only if no part waits; what does not fit is queued
// (first come, first sent, the oldest part split to fit the free slots); what the queue
// cannot hold is refused at once — the caller's thread never waits. Used by GuardedStore.
// Thread-safe; the work starts outside the lock.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace tollgate::resilience {

class Bulkhead {
 public:
  // Starts keys [from, to) of a part; called once per piece, perhaps on several threads.
  using Start = std::function<void(std::size_t from, std::size_t to)>;

  Bulkhead(std::size_t max_in_flight, std::size_t max_queue)
      : max_in_flight_(max_in_flight), max_queue_(max_queue) {}

  // Admits a part of `keys` keys and returns how many were refused: its last ones,
  // [keys - refused, keys), for which `start` is never called. The keys that go now are
  // started before this returns; queued ones by a later release().
  std::size_t submit(std::size_t keys, Start start) {
    std::size_t now = 0, later = 0;
    {
      std::lock_guard lk(mu_);
      const std::size_t free = max_in_flight_ - std::min(max_in_flight_, in_flight_);
      // Keys already waiting go first: a new part only goes straight out if none wait.
      now = queue_.empty() ? std::min(free, keys) : 0;
      const std::size_t room = max_queue_ - std::min(max_queue_, queued_);
      later = std::min(room, keys - now);
      in_flight_ += now;
      most_in_flight_ = std::max(most_in_flight_, in_flight_);
      rejected_ += keys - now - later;
      if (later > 0) {
        queued_ += later;
        queue_.push_back(Waiting{now, now + later, std::make_shared<Start>(start)});
      }
    }
    if (now > 0) start(0, now);
    return keys - now - later;
  }

  // `keys` slots are free again (their answers came): starts the queued keys that now fit.
  void release(std::size_t keys) {
    struct Piece {
      std::shared_ptr<Start> start;
      std::size_t from, to;
    };
    std::vector<Piece> pieces;
    {
      std::lock_guard lk(mu_);
      in_flight_ -= std::min(keys, in_flight_);
      while (!queue_.empty() && in_flight_ < max_in_flight_) {
        Waiting& w = queue_.front();
        const std::size_t take = std::min(w.to - w.from, max_in_flight_ - in_flight_);
        pieces.push_back(Piece{w.start, w.from, w.from + take});
        w.from += take;
        if (w.from == w.to) queue_.pop_front();
        in_flight_ += take;
        queued_ -= take;
        most_in_flight_ = std::max(most_in_flight_, in_flight_);
      }
    }
    for (const Piece& p : pieces) (*p.start)(p.from, p.to);
  }

  // One call as one slot: runs `start` now, or queues it, or refuses it (returns false,
  // `start` not called). The work must call done() exactly once when it has finished.
  bool submit(std::function<void()> start) {
    return submit(1, [start = std::move(start)](std::size_t, std::size_t) { start(); }) == 0;
  }
  void done() { release(1); }

  std::size_t in_flight() const {
    std::lock_guard lk(mu_);
    return in_flight_;
  }
  std::size_t queued() const {
    std::lock_guard lk(mu_);
    return queued_;
  }
  std::uint64_t rejected() const {  // keys refused
    std::lock_guard lk(mu_);
    return rejected_;
  }
  std::size_t most_in_flight() const {
    std::lock_guard lk(mu_);
    return most_in_flight_;
  }

 private:
  struct Waiting {
    std::size_t from, to;  // the part's keys not started yet
    std::shared_ptr<Start> start;
  };
  const std::size_t max_in_flight_, max_queue_;
  mutable std::mutex mu_;
  std::size_t in_flight_ = 0;
  std::size_t queued_ = 0;  // keys, over all waiting parts
  std::size_t most_in_flight_ = 0;
  std::uint64_t rejected_ = 0;
  std::deque<Waiting> queue_;
};

}  // namespace tollgate::resilience
