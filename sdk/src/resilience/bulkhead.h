// A bulkhead per shard: at most max_in_flight calls at once and a bounded queue behind
// them. Overflow is refused at once (the caller's thread never waits); a finished call
// starts the oldest queued one. Thread-safe; the work runs outside the lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

namespace tollgate::resilience {

class Bulkhead {
 public:
  Bulkhead(std::size_t max_in_flight, std::size_t max_queue)
      : max_in_flight_(max_in_flight), max_queue_(max_queue) {}

  // Runs `start` now, or queues it, or refuses it (returns false, `start` not called).
  // The work must call done() exactly once when it has finished.
  bool submit(std::function<void()> start) {
    {
      std::lock_guard lk(mu_);
      if (in_flight_ >= max_in_flight_) {
        if (queue_.size() >= max_queue_) {
          ++rejected_;
          return false;
        }
        queue_.push_back(std::move(start));
        return true;
      }
      ++in_flight_;
    }
    start();
    return true;
  }

  void done() {
    std::function<void()> next;
    {
      std::lock_guard lk(mu_);
      if (queue_.empty()) {
        --in_flight_;
        return;
      }
      next = std::move(queue_.front());  // the slot passes straight to the next call
      queue_.pop_front();
    }
    next();
  }

  std::size_t in_flight() const {
    std::lock_guard lk(mu_);
    return in_flight_;
  }
  std::size_t queued() const {
    std::lock_guard lk(mu_);
    return queue_.size();
  }
  std::uint64_t rejected() const {
    std::lock_guard lk(mu_);
    return rejected_;
  }

 private:
  const std::size_t max_in_flight_, max_queue_;
  mutable std::mutex mu_;
  std::size_t in_flight_ = 0;
  std::deque<std::function<void()>> queue_;
  std::uint64_t rejected_ = 0;
};

}  // namespace tollgate::resilience
