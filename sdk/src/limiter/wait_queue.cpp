#include "limiter/wait_queue.h"

#include <algorithm>

namespace tollgate::core {

void complete(Completions& done) noexcept {
  for (auto& [fn, d] : done) {
    try {
      fn(d);
    } catch (...) {
    }
  }
}

WaitQueue::~WaitQueue() {
  for (auto& [id, w] : waits_) delete w;
}

WaitQueue::Added WaitQueue::add(Entry* e, std::uint64_t cost, Nanos deadline,
                                std::size_t max_per_key, Limiter::Completion& done, WaitId& id) {
  std::lock_guard lk(mu_);
  if (e->retired.load(std::memory_order_acquire)) return Added::kRetired;
  auto& queue = queues_[e];
  if (queue.size() >= max_per_key) return Added::kFull;
  auto* w = new Waiter{next_id_++, e, cost, deadline, std::move(done)};
  queue.push_back(w);
  e->waiters.fetch_add(1, std::memory_order_acq_rel);
  waits_.emplace(w->id, w);
  deadlines_.push({w->deadline, w->id});
  id = w->id;
  return Added::kQueued;
}

bool WaitQueue::cancel(WaitId id, Limiter::Completion& done) {
  std::lock_guard lk(mu_);
  auto it = waits_.find(id);
  if (it == waits_.end()) return false;
  Waiter* w = it->second;
  unqueue(w);
  Completions out;
  end(w, Decision{}, out);
  done = std::move(out.front().first);
  return true;
}

WaitQueue::Served WaitQueue::serve(Entry* e, Completions& out) {
  Served served;
  if (e->waiters.load(std::memory_order_acquire) == 0) return served;
  std::lock_guard lk(mu_);
  auto it = queues_.find(e);
  if (it == queues_.end()) return served;
  auto& q = it->second;
  const bool local = e->fallback.load(std::memory_order_relaxed) == kFallbackLocal;
  while (!q.empty()) {
    Waiter* w = q.front();
    const auto cost = static_cast<std::int64_t>(w->cost);
    std::int64_t b = e->balance.load(std::memory_order_acquire);
    bool taken = false;
    while (b >= cost) {
      if (e->balance.compare_exchange_weak(b, b - cost, std::memory_order_acq_rel)) {
        taken = true;
        break;
      }
    }
    if (!taken) break;
    q.pop_front();
    ++served.waits;
    served.tokens += w->cost;
    end(w, Decision{true, local ? Reason::kFallbackLocal : Reason::kOk, b - cost, Nanos{0}}, out);
  }
  if (q.empty()) queues_.erase(it);
  return served;
}

std::uint64_t WaitQueue::head_cost(const Entry* e) const {
  std::lock_guard lk(mu_);
  auto it = queues_.find(e);
  return it != queues_.end() && !it->second.empty() ? it->second.front()->cost : 0;
}

std::size_t WaitQueue::size() const {
  std::lock_guard lk(mu_);
  return waits_.size();
}

Nanos WaitQueue::next_deadline() const {
  std::lock_guard lk(mu_);
  return deadlines_.empty() ? Nanos::max() : deadlines_.top().at;
}

void WaitQueue::end(Waiter* w, Decision d, Completions& out) {
  waits_.erase(w->id);
  w->entry->waiters.fetch_sub(1, std::memory_order_acq_rel);
  out.emplace_back(std::move(w->done), d);
  delete w;
}

void WaitQueue::unqueue(Waiter* w) {
  auto it = queues_.find(w->entry);
  if (it == queues_.end()) return;
  auto& q = it->second;
  q.erase(std::find(q.begin(), q.end(), w));
  if (q.empty()) queues_.erase(it);
}

}  // namespace tollgate::core
