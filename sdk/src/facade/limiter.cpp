// The public Limiter: the API over LimiterImpl, and the place a store is wired in from
// the config.
#include <condition_variable>
#include <mutex>
#include <utility>

#include "facade/store_factory.h"
#include "limiter/limiter_impl.h"

namespace tollgate {

Limiter::Limiter(Config config) : Limiter(std::move(config), Options{}) {}

// The store is the one the config names unless the options bring one: built here, above
// both the limiter and the stores, so neither knows the other.
Limiter::Limiter(Config config, Options options) {
  config.validate();
  if (!options.clock) options.clock = SteadyClock::shared();
  if (!options.store) options.store = make_store(config, options.clock);
  impl_ = std::make_shared<LimiterImpl>(std::move(config), std::move(options));
  impl_->start();
}

Limiter::~Limiter() {
  impl_->shutdown();
}

Decision Limiter::try_acquire(std::string_view key, std::uint64_t cost) noexcept {
  return impl_->try_acquire(key, cost);
}

KeyRef Limiter::key_ref(std::string_view key) const {
  return impl_->key_ref(key);
}

Decision Limiter::try_acquire(const KeyRef& key, std::uint64_t cost) noexcept {
  return impl_->try_acquire(key, cost);
}

Decision KeyRef::try_acquire(std::uint64_t cost) const noexcept {
  if (!owner_) return Decision{false, Reason::kInvalidArgument, 0, Nanos{0}};
  return owner_->try_acquire(*this, cost);
}

Decision Limiter::acquire(std::string_view key, std::uint64_t cost, Nanos timeout) {
  struct Sync {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Decision d;
  };
  auto sync = std::make_shared<Sync>();
  impl_->acquire_async(key, cost, timeout, [sync](const Decision& d) {
    std::lock_guard lk(sync->mu);
    sync->d = d;
    sync->done = true;
    sync->cv.notify_all();
  });
  std::unique_lock lk(sync->mu);
  sync->cv.wait(lk, [&] { return sync->done; });
  return sync->d;
}

WaitId Limiter::acquire_async(std::string_view key, std::uint64_t cost, Nanos timeout,
                              Completion done) {
  return impl_->acquire_async(key, cost, timeout, std::move(done));
}

bool Limiter::cancel(WaitId id) {
  return impl_->cancel(id);
}

Permit Limiter::acquire_permit(std::string_view key, std::uint32_t count) noexcept {
  return impl_->acquire_permit(key, count);
}

Reservation Limiter::reserve(std::string_view key, std::uint64_t estimate) noexcept {
  return impl_->reserve(key, estimate);
}

Reservation Limiter::reserve(std::string_view key, std::uint64_t estimate, Nanos timeout) {
  Decision failure;
  std::uint32_t ends = 0;
  std::uint64_t tokens = 0;
  void* held = impl_->hold(key, estimate, failure, ends, tokens);
  if (held == nullptr) return Reservation({}, nullptr, 0, 0, 0, failure);
  Decision d;
  try {
    d = acquire(key, tokens, timeout);
  } catch (...) {
    impl_->reservation(held, estimate, tokens, ends,
                       Decision{false, Reason::kShutdown, 0, Nanos{0}});
    throw;
  }
  return impl_->reservation(held, estimate, tokens, ends, d);
}

WaitId Limiter::reserve_async(std::string_view key, std::uint64_t estimate, Nanos timeout,
                              ReservationDone done) {
  Decision failure;
  std::uint32_t ends = 0;
  std::uint64_t tokens = 0;
  void* held = impl_->hold(key, estimate, failure, ends, tokens);
  if (held == nullptr) {
    done(Reservation({}, nullptr, 0, 0, 0, failure));
    return 0;
  }
  try {
    return impl_->acquire_async(
        key, tokens, timeout,
        [impl = impl_, held, estimate, tokens, ends, done = std::move(done)](const Decision& d) {
          done(impl->reservation(held, estimate, tokens, ends, d));
        });
  } catch (...) {  // the completion was never taken: let go of the entry
    impl_->reservation(held, estimate, tokens, ends,
                       Decision{false, Reason::kShutdown, 0, Nanos{0}});
    throw;
  }
}

Stats Limiter::stats() const {
  return impl_->stats();
}
void Limiter::update(Config config) {
  impl_->update(std::move(config));
}
void Limiter::update(std::string_view json) {
  impl_->update_json(json);
}
std::shared_ptr<const Config> Limiter::config() const {
  return impl_->config();
}
const std::string& Limiter::instance_id() const noexcept {
  return impl_->instance_id();
}
void Limiter::poll() {
  impl_->tick();
}

Permit::Permit(Permit&& other) noexcept
    : owner_(std::move(other.owner_)),
      entry_(std::exchange(other.entry_, nullptr)),
      count_(std::exchange(other.count_, 0)),
      decision_(other.decision_) {}

Permit& Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::move(other.owner_);
    entry_ = std::exchange(other.entry_, nullptr);
    count_ = std::exchange(other.count_, 0);
    decision_ = other.decision_;
  }
  return *this;
}

Permit::~Permit() {
  release();
}

void Permit::release() noexcept {
  if (entry_ != nullptr && owner_) owner_->release_permit(entry_, count_);
  entry_ = nullptr;
  count_ = 0;
  owner_.reset();
}

}  // namespace tollgate
