#include "limiter/epoch.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

namespace tollgate::core {
namespace {

long membarrier(int cmd) {
  return syscall(__NR_membarrier, cmd, 0, 0);
}

bool register_membarrier() {
  long cmds = membarrier(MEMBARRIER_CMD_QUERY);
  if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

// Releases the thread's record when the thread ends, so a new thread can reuse it.
struct RecordOwner {
  EpochRecord* rec = nullptr;
  ~RecordOwner() {
    if (rec != nullptr) rec->in_use.store(false, std::memory_order_release);
  }
};

thread_local RecordOwner tl_owner;
thread_local EpochRecord* tl_record __attribute__((tls_model("initial-exec"))) = nullptr;

}  // namespace

std::atomic<std::uint64_t> Epoch::global_{1};
std::atomic<EpochRecord*> Epoch::records_{nullptr};
bool Epoch::light_ = register_membarrier();

EpochRecord& Epoch::mine() noexcept {
  EpochRecord* rec = tl_record;
  if (__builtin_expect(rec == nullptr, 0)) rec = register_thread();
  return *rec;
}

EpochRecord* Epoch::register_thread() noexcept {
  EpochRecord* rec = nullptr;
  for (EpochRecord* r = records_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    bool expected = false;
    if (!r->in_use.load(std::memory_order_relaxed) &&
        r->in_use.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      rec = r;
      break;
    }
  }
  if (rec == nullptr) {
    rec = new EpochRecord();  // never freed: readers of the list may hold it
    rec->in_use.store(true, std::memory_order_relaxed);
    // Acquire: head->index below reads what the thread that pushed head wrote.
    EpochRecord* head = records_.load(std::memory_order_acquire);
    do {
      rec->next = head;
      rec->index = head == nullptr ? 0 : head->index + 1;
    } while (!records_.compare_exchange_weak(head, rec, std::memory_order_acq_rel));
  }
  tl_record = rec;
  tl_owner.rec = rec;
  return rec;
}

std::uint64_t Epoch::advance() noexcept {
  return global_.fetch_add(1, std::memory_order_seq_cst) + 1;
}

std::uint64_t Epoch::safe_epoch() noexcept {
  // Make every reader's earlier `active` store visible before we look.
#if defined(__SANITIZE_THREAD__)
  constexpr auto kLoadOrder = std::memory_order_seq_cst;  // pairs with EpochGuard under TSan
#else
  constexpr auto kLoadOrder = std::memory_order_acquire;
  if (light_) {
    membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
#endif
  std::uint64_t least = std::numeric_limits<std::uint64_t>::max();
  for (EpochRecord* r = records_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    std::uint64_t a = r->active.load(kLoadOrder);
    if (a != 0) least = std::min(least, a);
  }
  return least;
}

std::size_t RetireList::reclaim() {
  if (items_.empty()) return 0;
  std::uint64_t safe = Epoch::safe_epoch();
  std::size_t freed = 0;
  auto keep = std::stable_partition(items_.begin(), items_.end(),
                                    [safe](const Item& it) { return it.epoch > safe; });
  for (auto it = keep; it != items_.end(); ++it) {
    it->free_fn();
    ++freed;
  }
  items_.erase(keep, items_.end());
  return freed;
}

void RetireList::drain_all() {
  for (auto& it : items_) it.free_fn();
  items_.clear();
}

}  // namespace tollgate::core
