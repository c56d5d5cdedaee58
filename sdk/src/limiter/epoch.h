// Epoch-based reclamation for the key table: readers never lock, and memory that a
// reader may still see is freed only after every reader that could see it has left.
// Readers pay two thread-local stores; the reclaimer pays a membarrier(2) (or, where
// the kernel lacks it, readers pay a full fence instead).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

namespace tollgate::core {

struct alignas(64) EpochRecord {
  std::atomic<std::uint64_t> active{0};  // 0: outside; else the epoch seen on entry
  std::atomic<bool> in_use{false};
  std::uint32_t depth = 0;      // nesting, touched only by the owning thread
  std::uint32_t index = 0;      // small stable number, for striped counters
  EpochRecord* next = nullptr;  // registry list; records are never freed
};

// Process-wide: one registry of reader threads serves every Limiter.
class Epoch {
 public:
  // The calling thread's record (registered on first use).
  static EpochRecord& mine() noexcept;
  static std::uint64_t current() noexcept { return global_.load(std::memory_order_acquire); }
  // Call after unlinking: returns the epoch the unlinked memory belongs to.
  static std::uint64_t advance() noexcept;
  // Smallest epoch any reader is in right now (UINT64_MAX when none). Memory retired
  // with epoch e may be freed when e <= safe_epoch().
  static std::uint64_t safe_epoch() noexcept;
  static bool light_fences() noexcept { return light_; }

 private:
  friend class EpochGuard;
  static EpochRecord* register_thread() noexcept;
  static std::atomic<std::uint64_t> global_;
  static std::atomic<EpochRecord*> records_;
  static bool light_;
};

class EpochGuard {
 public:
  EpochGuard() noexcept : rec_(Epoch::mine()) {
    if (rec_.depth++ == 0) {
#if defined(__SANITIZE_THREAD__)
      // TSan models neither membarrier nor fences: a seq_cst store says the same to it.
      rec_.active.store(Epoch::current(), std::memory_order_seq_cst);
#else
      rec_.active.store(Epoch::current(), std::memory_order_relaxed);
      if (Epoch::light_fences()) {
        std::atomic_signal_fence(std::memory_order_seq_cst);
      } else {
        std::atomic_thread_fence(std::memory_order_seq_cst);
      }
#endif
    }
  }
  ~EpochGuard() {
    if (--rec_.depth == 0) rec_.active.store(0, std::memory_order_release);
  }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;
  std::uint32_t thread_index() const noexcept {
    return rec_.index;
  }

 private:
  EpochRecord& rec_;
};

// Memory waiting for its readers to leave. Not thread-safe: one owner.
class RetireList {
 public:
  ~RetireList() { drain_all(); }
  void retire(std::function<void()> free_fn) {
    items_.push_back({Epoch::advance(), std::move(free_fn)});
  }
  // Frees what no reader can see any more; returns how many were freed.
  std::size_t reclaim();
  void drain_all();  // only when no reader can be inside (destruction)
  bool empty() const noexcept { return items_.empty(); }

 private:
  struct Item {
    std::uint64_t epoch;
    std::function<void()> free_fn;
  };
  std::vector<Item> items_;
};

}  // namespace tollgate::core
