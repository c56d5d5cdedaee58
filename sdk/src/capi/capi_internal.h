// What the C API's translation units share: the handle structs and the guard that turns
// every C++ exception into a status and a message.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string_view>

#include "tollgate/limiter.h"
#include "tollgate/tollgate.h"

namespace tollgate::capi {

// Forwards observer calls to the C callbacks until close(); after close() returns, no
// callback runs (tg_limiter_destroy's promise, even when a permit keeps the core alive).
class CallbackObserver final : public Observer {
 public:
  explicit CallbackObserver(const tg_limiter_options& o) : options_(o) {}
  void on_lease_start(const LeaseStartEvent& e) noexcept override;
  void on_lease(const LeaseEvent& e) noexcept override;
  void on_breaker(const BreakerEvent& e) noexcept override;
  void on_log(LogLevel level, std::string_view message) noexcept override;
  void close() noexcept;

 private:
  // Calls `callback` with `event` unless it is unset or close() has run (under mu_).
  template <typename Event>
  void emit(void (*callback)(const Event*, void*), const Event& event) noexcept {
    std::shared_lock lk(mu_);
    if (closed_ || callback == nullptr) return;
    callback(&event, options_.observer_user_data);
  }
  tg_limiter_options options_;
  std::shared_mutex mu_;
  bool closed_ = false;
};

}  // namespace tollgate::capi

struct tg_limiter {
  std::unique_ptr<tollgate::Limiter> limiter;
  std::shared_ptr<tollgate::capi::CallbackObserver> observer;  // null without callbacks
};

struct tg_permit {
  tollgate::Permit permit;
};

struct tg_reservation {
  tollgate::Reservation reservation;  // keeps the limiter's core alive
};

struct tg_key {
  tollgate::KeyRef key;  // keeps the limiter's core alive
};

namespace tollgate::capi {

// Copies `message` into errstr (NUL-terminated, truncated).
inline void write_error(char* errstr, std::size_t size, std::string_view message) noexcept {
  if (errstr == nullptr || size == 0) return;
  std::size_t n = message.size() < size - 1 ? message.size() : size - 1;
  std::memcpy(errstr, message.data(), n);
  errstr[n] = '\0';
}

inline void to_c(tg_decision* out, const Decision& d) noexcept {
  out->allowed = d.allowed ? 1 : 0;
  out->reason = static_cast<tg_reason>(d.reason);
  out->remaining = d.remaining;
  out->retry_after_ns = d.retry_after.count();
}

// Runs `body` (returning tg_status) and converts whatever it throws.
template <typename Body>
tg_status guarded(char* errstr, std::size_t size, Body&& body) noexcept {
  try {
    tg_status s = body();
    if (s == TG_OK) write_error(errstr, size, "");
    return s;
  } catch (const ConfigError& e) {
    write_error(errstr, size, e.what());
    return TG_ERR_CONFIG;
  } catch (const std::bad_alloc&) {
    write_error(errstr, size, "out of memory");
    return TG_ERR_NO_MEMORY;
  } catch (const std::exception& e) {
    write_error(errstr, size, e.what());
    return TG_ERR_INTERNAL;
  } catch (...) {
    write_error(errstr, size, "unknown error");
    return TG_ERR_INTERNAL;
  }
}

template <typename Body>
tg_status guarded(Body&& body) noexcept {
  return guarded(nullptr, 0, std::forward<Body>(body));
}

inline std::string_view key_of(const char* key, std::size_t len) noexcept {
  return key == nullptr ? std::string_view{} : std::string_view{key, len};
}

}  // namespace tollgate::capi
