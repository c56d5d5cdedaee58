// The compiled policies by slot, and the running config's set (its index and each policy's
// slot), as an update publishes them: a policy equal to one that keys hold keeps its slot,
// the others get free slots; replaced arrays and sets are freed through the epoch once no
// reader can hold them, and a retired slot is reused once no key holds it. Thread-safety:
// at() and published() from any thread under an EpochGuard, lock-free; the rest on the
// scheduler's thread only (under the Limiter's tick_mu_).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "limiter/compiled_policy.h"
#include "limiter/epoch.h"
#include "limiter/policy_index.h"
#include "limiter/policy_labels.h"
#include "tollgate/config.h"

namespace tollgate::core {

// What application threads read of the running config; replaced whole by an update.
struct PolicySet {
  std::shared_ptr<const Config> config;
  PolicyIndex index;                   // key -> position in config->policies
  std::vector<std::uint16_t> slot_of;  // position -> slot of the compiled policies
  std::size_t max_key_length = 0;
  explicit PolicySet(std::shared_ptr<const Config> c);
};

class PolicySlots {
 public:
  // Readers (under an EpochGuard, or the scheduler). The slot array is published before the
  // set that points into it: a slot found in the set is in the array.
  const CompiledPolicy& at(std::uint16_t slot) const noexcept {
    return slots_.load(std::memory_order_acquire)[slot];
  }
  const PolicySet& published() const noexcept { return *set_.load(std::memory_order_acquire); }

  // Scheduler: compiles `config` into slots and publishes it (slots first, then the set).
  // Throws ConfigError before changing anything when more than 65,536 slots would be held.
  void publish(const std::shared_ptr<const Config>& config, PolicyLabels& labels);
  const PolicySet& current() const noexcept { return *set_owned_; }
  const CompiledPolicy& compiled(std::uint16_t slot) const noexcept { return (*array_)[slot]; }
  // Whether some slot of an earlier config is still retiring (a tick need not look if not),
  // and whether `slot` is one of them.
  bool retiring() const noexcept { return retiring_; }
  bool retiring(std::uint16_t slot) const noexcept { return state_[slot].use == Use::kRetiring; }
  // No key holds a retiring slot any more: they are free for a later update once no reader
  // is older than now.
  void free_retiring();
  void reclaim() { retired_.reclaim(); }  // frees replaced arrays and sets no reader holds

 private:
  enum class Use : std::uint8_t { kFree, kCurrent, kRetiring };
  struct State {
    Use use = Use::kFree;
    std::uint64_t freed_epoch = 0;  // kFree: reusable once no reader is older than this
  };
  std::atomic<const CompiledPolicy*> slots_{nullptr};
  std::atomic<const PolicySet*> set_{nullptr};
  std::unique_ptr<std::vector<CompiledPolicy>> array_;  // what slots_ points into
  std::unique_ptr<PolicySet> set_owned_;                // what set_ points to
  std::vector<State> state_;
  bool retiring_ = false;  // some state_ is kRetiring
  RetireList retired_;     // replaced arrays and sets, until no reader holds them
};

}  // namespace tollgate::core
