// KeyRef: a key resolved once. The hot path reads the resolved entry and the key table's
// erase count it was resolved at (one consistent pair, under the KeyRef's sequence lock);
// while the table's count is unchanged no entry has been unlinked since, so the entry is
// linked and, inside the EpochGuard, cannot be freed. Otherwise the key is found again.
#include <cstddef>

#include "limiter/limiter_impl.h"

namespace tollgate {

KeyRef::KeyRef(KeyRef&& other) noexcept
    : owner_(std::move(other.owner_)), key_(std::move(other.key_)), hash_(other.hash_) {
  entry_.store(other.entry_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  evictions_.store(other.evictions_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  other.entry_.store(nullptr, std::memory_order_relaxed);
}

KeyRef& KeyRef::operator=(KeyRef&& other) noexcept {
  if (this != &other) {
    owner_ = std::move(other.owner_);
    key_ = std::move(other.key_);
    hash_ = other.hash_;
    entry_.store(other.entry_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    evictions_.store(other.evictions_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    seq_.store(seq_.load(std::memory_order_relaxed) + 2, std::memory_order_relaxed);
    other.entry_.store(nullptr, std::memory_order_relaxed);
  }
  return *this;
}

KeyRef::~KeyRef() = default;

// The hot path's fields (balance to fallback) span at most two cache lines of the entry.
// Never dereferenced here: a stale pointer is harmless to a prefetch.
void KeyRef::prefetch() const noexcept {
#if defined(__GNUC__) || defined(__clang__)
  const auto* e = static_cast<const char*>(entry_.load(std::memory_order_relaxed));
  if (e == nullptr) return;
  __builtin_prefetch(e);
  __builtin_prefetch(e + offsetof(core::Entry, fallback));
#endif
}

void KeyRef::prefetch_policy() const noexcept {
  if (owner_ != nullptr) owner_->prefetch_policy(*this);
}

// The hot path's check (try_acquire below): the entry is read only while it is linked.
void LimiterImpl::prefetch_policy(const KeyRef& k) const noexcept {
#if defined(__GNUC__) || defined(__clang__)
  core::EpochGuard guard;
  const std::uint64_t seq = k.seq_.load(std::memory_order_acquire);
  const auto* e = static_cast<const Entry*>(k.entry_.load(std::memory_order_acquire));
  const std::uint64_t at = k.evictions_.load(std::memory_order_acquire);
  if (e == nullptr || (seq & 1) != 0 || k.seq_.load(std::memory_order_acquire) != seq ||
      at != table_.erasures()) {
    return;
  }
  const auto* p = reinterpret_cast<const char*>(&policy_of(e));
  __builtin_prefetch(p);
  __builtin_prefetch(p + sizeof(CompiledPolicy) - 1);
#else
  (void)k;
#endif
}

KeyRef LimiterImpl::key_ref(std::string_view key) {
  KeyRef k;
  k.owner_ = shared_from_this();
  k.key_ = std::string(key);
  k.hash_ = core::hash_key(key);
  return k;
}

Decision LimiterImpl::try_acquire(const KeyRef& k, std::uint64_t cost) noexcept {
  core::EpochGuard guard;
  const std::uint32_t stripe = guard.thread_index();
  if (k.owner_.get() != this) return deny(Reason::kInvalidArgument, stripe);
  const std::uint64_t seq = k.seq_.load(std::memory_order_acquire);
  auto* e = static_cast<Entry*>(k.entry_.load(std::memory_order_acquire));
  const std::uint64_t at = k.evictions_.load(std::memory_order_acquire);
  if (__builtin_expect(e != nullptr && (seq & 1) == 0 && cost > 0 &&
                           k.seq_.load(std::memory_order_acquire) == seq && at == table_.erasures(),
                       1)) {
    const Decision d = spend(e, cost, stripe, false);
    return __builtin_expect(d.allowed, 1) ? d : shadowed(e, d, stripe);
  }
  Decision failure;
  e = resolve(k, cost, stripe, failure);
  if (e == nullptr) return failure;
  const Decision d = spend(e, cost, stripe, false);
  return d.allowed ? d : shadowed(e, d, stripe);  // as try_acquire(key) decides
}

core::Entry* LimiterImpl::resolve(const KeyRef& k, std::uint64_t cost, std::uint32_t stripe,
                                  Decision& failure) noexcept {
  if (!valid(k.key_, cost)) {
    failure = deny(Reason::kInvalidArgument, stripe);
    return nullptr;
  }
  // Read before the find: an erase after it changes the count, and the next call looks again.
  const std::uint64_t at = table_.erasures();
  Entry* e = table_.find(k.key_, k.hash_);
  if (e == nullptr) e = find_or_create(k.key_, cost, false, stripe, failure);
  if (e == nullptr) return nullptr;
  // Publish (entry, count) unless another thread is publishing now (it found the same).
  std::uint64_t seq = k.seq_.load(std::memory_order_relaxed);
  if ((seq & 1) == 0 && k.seq_.compare_exchange_strong(seq, seq + 1, std::memory_order_acq_rel,
                                                       std::memory_order_relaxed)) {
    k.entry_.store(e, std::memory_order_release);
    k.evictions_.store(at, std::memory_order_release);
    k.seq_.store(seq + 2, std::memory_order_release);
  }
  return e;
}

}  // namespace tollgate
