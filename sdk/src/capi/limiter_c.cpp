// tg_limiter_*, acquires, permits and versions: the C face of tollgate::Limiter.
#include <cstring>
#include <functional>
#include <new>
#include <utility>

#include "capi/capi_internal.h"
#include "tollgate/version.h"

using tollgate::capi::guarded;
using tollgate::capi::key_of;
using tollgate::capi::to_c;
using tollgate::capi::write_error;

namespace tollgate::capi {

void CallbackObserver::on_lease_start(const LeaseStartEvent& e) noexcept {
  tg_lease_start_event c{};
  c.id = e.id;
  c.keys = e.keys;
  c.tokens_asked = e.tokens_asked;
  emit(options_.on_lease_start, c);
}

void CallbackObserver::on_lease(const LeaseEvent& e) noexcept {
  tg_lease_event c{};
  c.keys = e.keys;
  c.failed_keys = e.failed_keys;
  c.tokens_asked = e.tokens_asked;
  c.tokens_granted = e.tokens_granted;
  c.duration_ns = e.duration.count();
  c.outcome = static_cast<tg_lease_outcome>(e.outcome);
  c.id = e.id;
  emit(options_.on_lease, c);
}

void CallbackObserver::on_breaker(const BreakerEvent& e) noexcept {
  tg_breaker_event c{e.shard, static_cast<tg_breaker_state>(e.from),
                     static_cast<tg_breaker_state>(e.to)};
  emit(options_.on_breaker, c);
}

void CallbackObserver::on_log(LogLevel level, std::string_view message) noexcept {
  if (static_cast<int>(level) < static_cast<int>(options_.min_log_level)) return;
  std::shared_lock lk(mu_);
  if (closed_ || options_.on_log == nullptr) return;
  options_.on_log(static_cast<tg_log_level>(level), message.data(), message.size(),
                  options_.observer_user_data);
}

void CallbackObserver::close() noexcept {
  std::unique_lock lk(mu_);
  closed_ = true;
}

}  // namespace tollgate::capi

// A C caller may pass any int where an enum is declared; reading it as the C++ enum type
// would be undefined for values outside the enumerators' range, so read its bytes.
namespace {
template <typename Enum>
int as_int(const Enum& e) noexcept {
  static_assert(sizeof(Enum) == sizeof(int));
  int v = 0;
  std::memcpy(&v, &e, sizeof v);
  return v;
}
}  // namespace

namespace {
// The argument checks and the wait id of an async call: `start(limiter, key)` starts the
// wait and returns its id. Once the Limiter has the completion, it runs exactly once; on a
// status other than TG_OK it never runs.
template <typename Done, typename Start>
tg_status start_wait(uint64_t* out_wait_id, tg_limiter* limiter, const char* key, size_t key_len,
                     Done done, Start&& start) {
  if (out_wait_id != nullptr) *out_wait_id = 0;
  if (limiter == nullptr || done == nullptr || (key == nullptr && key_len != 0))
    return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    const tollgate::WaitId id = start(*limiter->limiter, key_of(key, key_len));
    if (out_wait_id != nullptr) *out_wait_id = id;
    return TG_OK;
  });
}
}  // namespace

extern "C" {

const char* tg_version(void) {
  return TOLLGATE_VERSION_STRING;
}

int tg_version_num(void) {
  return TG_VERSION_NUM;
}

const char* tg_status_str(tg_status status) {
  switch (as_int(status)) {
    case TG_OK:
      return "ok";
    case TG_ERR_INVALID_ARGUMENT:
      return "invalid argument";
    case TG_ERR_CONFIG:
      return "invalid config";
    case TG_ERR_NO_MEMORY:
      return "out of memory";
    case TG_ERR_INTERNAL:
      return "internal error";
  }
  return "unknown status";
}

const char* tg_reason_str(tg_reason reason) {
  const int r = as_int(reason);
  if (r < 0 || r >= TG_REASON_COUNT) return "unknown";
  // to_string returns views of string literals, so data() is NUL-terminated.
  return tollgate::to_string(static_cast<tollgate::Reason>(r)).data();
}

tg_status tg_limiter_options_init(tg_limiter_options* options, unsigned int version) {
  if (options == nullptr || version == 0 || version > TG_LIMITER_OPTIONS_VERSION)
    return TG_ERR_INVALID_ARGUMENT;
  *options = tg_limiter_options TG_LIMITER_OPTIONS_INIT;
  return TG_OK;
}

tg_status tg_config_validate(const char* config_json, char* errstr, size_t errstr_size) {
  return guarded(errstr, errstr_size, [&] {
    if (config_json == nullptr) {
      write_error(errstr, errstr_size, "config_json is NULL");
      return TG_ERR_INVALID_ARGUMENT;
    }
    (void)tollgate::Config::from_json(config_json);
    return TG_OK;
  });
}

tg_status tg_limiter_create(tg_limiter** out_limiter, const char* config_json,
                            const tg_limiter_options* options, char* errstr, size_t errstr_size) {
  if (out_limiter != nullptr) *out_limiter = nullptr;
  return guarded(errstr, errstr_size, [&] {
    if (out_limiter == nullptr || config_json == nullptr) {
      write_error(errstr, errstr_size, "out_limiter and config_json must not be NULL");
      return TG_ERR_INVALID_ARGUMENT;
    }
    if (options != nullptr &&
        (options->version == 0 || options->version > TG_LIMITER_OPTIONS_VERSION)) {
      write_error(errstr, errstr_size, "unknown tg_limiter_options version");
      return TG_ERR_INVALID_ARGUMENT;
    }
    auto handle = std::make_unique<tg_limiter>();
    tollgate::Limiter::Options lo;
    if (options != nullptr && (options->on_lease != nullptr || options->on_lease_start != nullptr ||
                               options->on_breaker != nullptr || options->on_log != nullptr)) {
      handle->observer = std::make_shared<tollgate::capi::CallbackObserver>(*options);
      lo.observer = handle->observer;
    }
    handle->limiter = std::make_unique<tollgate::Limiter>(tollgate::Config::from_json(config_json),
                                                          std::move(lo));
    *out_limiter = handle.release();
    return TG_OK;
  });
}

tg_status tg_limiter_update(tg_limiter* limiter, const char* config_json, char* errstr,
                            size_t errstr_size) {
  return guarded(errstr, errstr_size, [&] {
    if (limiter == nullptr || config_json == nullptr) {
      write_error(errstr, errstr_size, "limiter and config_json must not be NULL");
      return TG_ERR_INVALID_ARGUMENT;
    }
    limiter->limiter->update(std::string_view(config_json));
    return TG_OK;
  });
}

void tg_limiter_destroy(tg_limiter** limiter) {
  if (limiter == nullptr || *limiter == nullptr) return;
  tg_limiter* l = *limiter;
  *limiter = nullptr;
  try {
    l->limiter.reset();
  } catch (...) {
  }
  if (l->observer) l->observer->close();
  delete l;
}

tg_status tg_try_acquire(tg_decision* out_decision, tg_limiter* limiter, const char* key,
                         size_t key_len, uint64_t cost) {
  if (out_decision == nullptr || limiter == nullptr || (key == nullptr && key_len != 0))
    return TG_ERR_INVALID_ARGUMENT;
  // Limiter::try_acquire is noexcept: no guard needed on the hot path.
  to_c(out_decision, limiter->limiter->try_acquire(key_of(key, key_len), cost));
  return TG_OK;
}

tg_status tg_key_create(tg_key** out_key, tg_limiter* limiter, const char* key, size_t key_len) {
  if (out_key != nullptr) *out_key = nullptr;
  if (out_key == nullptr || limiter == nullptr || (key == nullptr && key_len != 0))
    return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    *out_key = new tg_key{limiter->limiter->key_ref(key_of(key, key_len))};
    return TG_OK;
  });
}

void tg_key_destroy(tg_key** key) {
  if (key == nullptr || *key == nullptr) return;
  delete *key;  // ~KeyRef drops its share of the core; noexcept
  *key = nullptr;
}

tg_status tg_try_acquire_key(tg_decision* out_decision, tg_key* key, uint64_t cost) {
  if (out_decision == nullptr || key == nullptr) return TG_ERR_INVALID_ARGUMENT;
  // KeyRef::try_acquire is noexcept: no guard needed on the hot path.
  to_c(out_decision, key->key.try_acquire(cost));
  return TG_OK;
}

tg_status tg_acquire(tg_decision* out_decision, tg_limiter* limiter, const char* key,
                     size_t key_len, uint64_t cost, int64_t timeout_ns) {
  if (out_decision == nullptr || limiter == nullptr || (key == nullptr && key_len != 0))
    return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    to_c(out_decision,
         limiter->limiter->acquire(key_of(key, key_len), cost, tollgate::Nanos{timeout_ns}));
    return TG_OK;
  });
}

tg_status tg_acquire_async(uint64_t* out_wait_id, tg_limiter* limiter, const char* key,
                           size_t key_len, uint64_t cost, int64_t timeout_ns, tg_completion_cb done,
                           void* user_data) {
  return start_wait(out_wait_id, limiter, key, key_len, done,
                    [&](tollgate::Limiter& l, std::string_view k) {
                      return l.acquire_async(k, cost, tollgate::Nanos{timeout_ns},
                                             [done, user_data](const tollgate::Decision& d) {
                                               tg_decision c;
                                               to_c(&c, d);
                                               done(&c, user_data);
                                             });
                    });
}

tg_status tg_cancel(int* out_cancelled, tg_limiter* limiter, uint64_t wait_id) {
  if (out_cancelled != nullptr) *out_cancelled = 0;
  if (limiter == nullptr) return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    bool cancelled = wait_id != 0 && limiter->limiter->cancel(wait_id);
    if (out_cancelled != nullptr) *out_cancelled = cancelled ? 1 : 0;
    return TG_OK;
  });
}

tg_status tg_acquire_permit(tg_permit** out_permit, tg_decision* out_decision, tg_limiter* limiter,
                            const char* key, size_t key_len, uint32_t count) {
  if (out_permit != nullptr) *out_permit = nullptr;
  if (out_permit == nullptr || out_decision == nullptr || limiter == nullptr ||
      (key == nullptr && key_len != 0))
    return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    tollgate::Permit p = limiter->limiter->acquire_permit(key_of(key, key_len), count);
    to_c(out_decision, p.decision());
    if (p) *out_permit = new tg_permit{std::move(p)};
    return TG_OK;
  });
}

void tg_permit_destroy(tg_permit** permit) {
  if (permit == nullptr || *permit == nullptr) return;
  delete *permit;  // ~Permit returns the permits; noexcept
  *permit = nullptr;
}

tg_status tg_reserve(tg_reservation** out_reservation, tg_decision* out_decision,
                     tg_limiter* limiter, const char* key, size_t key_len, uint64_t estimate,
                     int64_t timeout_ns) {
  if (out_reservation != nullptr) *out_reservation = nullptr;
  if (out_reservation == nullptr || out_decision == nullptr || limiter == nullptr ||
      (key == nullptr && key_len != 0))
    return TG_ERR_INVALID_ARGUMENT;
  return guarded([&] {
    tollgate::Limiter& l = *limiter->limiter;
    tollgate::Reservation r =
        timeout_ns > 0 ? l.reserve(key_of(key, key_len), estimate, tollgate::Nanos{timeout_ns})
                       : l.reserve(key_of(key, key_len), estimate);
    to_c(out_decision, r.decision());
    // Settled at the estimate by ~Reservation when the allocation throws (guarded answers).
    if (r.pending()) *out_reservation = new tg_reservation{std::move(r)};
    return TG_OK;
  });
}

tg_status tg_reserve_async(uint64_t* out_wait_id, tg_limiter* limiter, const char* key,
                           size_t key_len, uint64_t estimate, int64_t timeout_ns,
                           tg_reservation_cb done, void* user_data) {
  // The completion runs on the SDK's thread too, so nothing may throw out of it: a handle
  // that cannot be allocated settles the reservation at the estimate (~Reservation) and
  // says shutdown.
  return start_wait(
      out_wait_id, limiter, key, key_len, done, [&](tollgate::Limiter& l, std::string_view k) {
        return l.reserve_async(k, estimate, tollgate::Nanos{timeout_ns},
                               [done, user_data](tollgate::Reservation r) noexcept {
                                 tg_decision c;
                                 to_c(&c, r.decision());
                                 tg_reservation* out = nullptr;
                                 if (r.pending()) {
                                   out = new (std::nothrow) tg_reservation{std::move(r)};
                                   if (out == nullptr) {
                                     c.allowed = 0;
                                     c.reason = TG_REASON_SHUTDOWN;
                                   }
                                 }
                                 done(out, &c, user_data);
                               });
      });
}

tg_status tg_settle(tg_settlement* out_settlement, tg_reservation* reservation, uint64_t actual) {
  if (out_settlement != nullptr)
    *out_settlement = tg_settlement{TG_REASON_INVALID_ARGUMENT, 0, 0, 0, 0, 0};
  if (reservation == nullptr) return TG_ERR_INVALID_ARGUMENT;
  // Reservation::settle is noexcept.
  const tollgate::Settlement s = reservation->reservation.settle(actual);
  if (out_settlement != nullptr) {
    *out_settlement = tg_settlement{
        static_cast<tg_reason>(s.reason), s.charged, s.refunded, s.dropped, s.debt, s.uncharged};
  }
  return s ? TG_OK : TG_ERR_INVALID_ARGUMENT;
}

void tg_reservation_destroy(tg_reservation** reservation) {
  if (reservation == nullptr || *reservation == nullptr) return;
  delete *reservation;  // ~Reservation settles at the estimate if still pending; noexcept
  *reservation = nullptr;
}

}  // extern "C"
