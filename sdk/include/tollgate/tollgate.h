/* Tollgate's C API: distributed quotas from locally held leases.
 *
 * C99, usable from C, and through FFI from .NET, Python and others. Conventions (docs/c-api.md):
 *   - Objects are opaque handles, created by tg_*_create and freed by tg_*_destroy, which takes
 *     a pointer to the handle, accepts NULL (and a NULL handle) and sets the handle to NULL.
 *   - Fallible calls return a tg_status; when they take `errstr`, a message is written there
 *     (always NUL-terminated, truncated to errstr_size). No C++ exception crosses this API.
 *   - Arguments: output parameters first, then the subject (the limiter), then inputs; a
 *     callback travels with a trailing `void *user_data`.
 *   - Keys are bytes (UTF-8 by convention) with an explicit length; they need no NUL.
 *   - Every function is thread-safe unless it says otherwise; the destroy functions end a
 *     handle's life, so no other thread may be using that handle when they are called.
 */
#ifndef TOLLGATE_TOLLGATE_H
#define TOLLGATE_TOLLGATE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define TG_API
#else
#define TG_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Versions ----------------------------------------------------------------------------- */

/* The version this header belongs to; tg_version_num() is the library loaded at run time. */
#define TG_VERSION_MAJOR 0
#define TG_VERSION_MINOR 1
#define TG_VERSION_PATCH 0
#define TG_VERSION_STRING "0.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH */
#define TG_VERSION_NUM (TG_VERSION_MAJOR * 10000 + TG_VERSION_MINOR * 100 + TG_VERSION_PATCH)

/* The loaded library's version, e.g. "0.1.0" (static storage). */
TG_API const char* tg_version(void);
/* The loaded library's version as TG_VERSION_NUM computes it. */
TG_API int tg_version_num(void);

/* ---- Status ------------------------------------------------------------------------------- */

typedef enum tg_status {
  TG_OK = 0,
  TG_ERR_INVALID_ARGUMENT = 1, /* a NULL where a value is needed, an unknown struct version */
  TG_ERR_CONFIG = 2,           /* the config is invalid; the message names the field */
  TG_ERR_NO_MEMORY = 3,
  TG_ERR_INTERNAL = 4 /* anything else; the message says what */
} tg_status;

/* "ok", "invalid argument", … (static storage). */
TG_API const char* tg_status_str(tg_status status);

/* ---- Decisions ---------------------------------------------------------------------------- */

/* Why a decision came out as it did. Same values as tollgate::Reason. */
typedef enum tg_reason {
  TG_REASON_OK = 0,                /* admitted from a locally held lease */
  TG_REASON_OVER_LIMIT = 1,        /* the global quota is spent; retry_after_ns says when */
  TG_REASON_COLD_KEY = 2,          /* first sight of the key; no lease yet */
  TG_REASON_LEASE_PENDING = 3,     /* local lease spent faster than the refill arrived */
  TG_REASON_PENALTY_BOX = 4,       /* denied too often recently */
  TG_REASON_QUEUE_FULL = 5,        /* async acquire: the key's wait queue is full */
  TG_REASON_TIMEOUT = 6,           /* async acquire: no tokens within the timeout */
  TG_REASON_CANCELLED = 7,         /* async acquire: cancelled by tg_cancel */
  TG_REASON_KEY_TABLE_FULL = 8,    /* max_keys reached and nothing could be evicted */
  TG_REASON_NO_POLICY = 9,         /* no policy matches the key */
  TG_REASON_INVALID_ARGUMENT = 10, /* empty or too long key, cost 0, cost above capacity */
  TG_REASON_FALLBACK_LOCAL = 11,   /* store unavailable; decided by the local fallback */
  TG_REASON_FALLBACK_DENY = 12,    /* store unavailable; fallback = deny */
  TG_REASON_FALLBACK_ALLOW = 13,   /* store unavailable; fallback = allow */
  TG_REASON_SHUTDOWN = 14,         /* the limiter is being destroyed */
  TG_REASON_OVER_GROUP_LIMIT = 15, /* the key's group budget (or its fair share of it) is spent */
  TG_REASON_IN_DEBT = 16           /* an over-settled reservation's debt is not paid yet */
} tg_reason;
#define TG_REASON_COUNT 17

/* "ok", "over_limit", … (static storage); "unknown" for values out of range. */
TG_API const char* tg_reason_str(tg_reason reason);

typedef struct tg_decision {
  int allowed;            /* 1: admitted, 0: denied */
  tg_reason reason;       /* why */
  int64_t remaining;      /* tokens (permits) left in the key's local lease */
  int64_t retry_after_ns; /* when denied: how long until a retry may succeed; 0 = unknown */
} tg_decision;

/* ---- Observer (telemetry) ----------------------------------------------------------------- */

typedef enum tg_breaker_state {
  TG_BREAKER_CLOSED = 0,
  TG_BREAKER_OPEN = 1,
  TG_BREAKER_HALF_OPEN = 2
} tg_breaker_state;

typedef enum tg_log_level {
  TG_LOG_DEBUG = 0,
  TG_LOG_INFO = 1,
  TG_LOG_WARN = 2,
  TG_LOG_ERROR = 3
} tg_log_level;

typedef enum tg_lease_outcome {
  TG_LEASE_OK = 0,    /* every key of the batch answered */
  TG_LEASE_FAILED = 1 /* some keys failed: transport error, timeout, open breaker, full bulkhead */
} tg_lease_outcome;

/* One lease round trip (a batch of keys sent to the store together), reported when it ends.
   It started duration_ns before the callback. */
typedef struct tg_lease_event {
  uint32_t keys;
  uint32_t failed_keys;
  uint64_t tokens_asked;
  uint64_t tokens_granted;
  int64_t duration_ns;
  tg_lease_outcome outcome;
  uint64_t id; /* as in the tg_lease_start_event of this round trip */
} tg_lease_event;

/* A lease round trip begins: reported before the request goes to the store. */
typedef struct tg_lease_start_event {
  uint64_t id; /* the same in the tg_lease_event that ends it */
  uint32_t keys;
  uint64_t tokens_asked;
} tg_lease_start_event;

typedef struct tg_breaker_event {
  uint32_t shard; /* index into store.shards */
  tg_breaker_state from;
  tg_breaker_state to;
} tg_breaker_event;

/* Observer callbacks are called from the SDK's threads (the refill scheduler, the Redis I/O
   thread), never from the thread calling tg_try_acquire, and never after tg_limiter_destroy
   has returned. They must be quick and thread-safe, must not call any tg_* function on the
   limiter that reports to them, and receive pointers valid only during the call. Log lines
   carry no passwords and no keys; `message` is not NUL-terminated. */
typedef void (*tg_lease_start_cb)(const tg_lease_start_event* event, void* user_data);
typedef void (*tg_lease_cb)(const tg_lease_event* event, void* user_data);
typedef void (*tg_breaker_cb)(const tg_breaker_event* event, void* user_data);
typedef void (*tg_log_cb)(tg_log_level level, const char* message, size_t message_len,
                          void* user_data);

/* ---- Limiter ------------------------------------------------------------------------------ */

typedef struct tg_limiter tg_limiter;

#define TG_LIMITER_OPTIONS_VERSION 1
/* Options for tg_limiter_create. Grows only at the end; set `version` with the _INIT macro or
   tg_limiter_options_init. All callbacks may be NULL. */
typedef struct tg_limiter_options {
  unsigned int version;
  tg_lease_cb on_lease;
  tg_breaker_cb on_breaker;
  tg_log_cb on_log;
  tg_log_level min_log_level; /* lines below this level are not passed to on_log */
  void* observer_user_data;   /* passed to every callback */
  tg_lease_start_cb on_lease_start;
} tg_limiter_options;
#define TG_LIMITER_OPTIONS_INIT \
  { TG_LIMITER_OPTIONS_VERSION, NULL, NULL, NULL, TG_LOG_INFO, NULL, NULL }
/* Sets *options to the defaults of `version`; TG_ERR_INVALID_ARGUMENT for unknown versions. */
TG_API tg_status tg_limiter_options_init(tg_limiter_options* options, unsigned int version);

/* Checks a JSON config (docs/configuration.md) without creating anything. On TG_ERR_CONFIG
   the message is "field: reason", e.g. "policies[0].rate: must be > 0". */
TG_API tg_status tg_config_validate(const char* config_json, char* errstr, size_t errstr_size);

/* Creates a limiter from a JSON config. `options` may be NULL (no observer). On success
   *out_limiter owns a new limiter (free it with tg_limiter_destroy); on failure it is NULL
   and errstr says why. The limiter starts an SDK thread (and, for Redis, an I/O thread). */
TG_API tg_status tg_limiter_create(tg_limiter** out_limiter, const char* config_json,
                                   const tg_limiter_options* options, char* errstr,
                                   size_t errstr_size);

/* Replaces the limiter's config with a JSON config while it runs (docs/configuration.md,
   "Live updates"): policies, groups, cold keys, leases and fallbacks may change; `store`,
   `max_keys` and `instance_id` may not. On TG_ERR_CONFIG the message names the field and the
   running config stays. Keys move to their new policies on the SDK's thread. Thread-safe;
   must not be called from a callback of the same limiter. */
TG_API tg_status tg_limiter_update(tg_limiter* limiter, const char* config_json, char* errstr,
                                   size_t errstr_size);

/* Stops the limiter and frees it; *limiter becomes NULL. NULL and *limiter == NULL are
   no-ops. Pending async acquires complete with TG_REASON_SHUTDOWN on this thread before it
   returns; unspent tokens go back to the store. Must not be called from a callback of the
   same limiter. Permits still held stay valid (see tg_permit_destroy). */
TG_API void tg_limiter_destroy(tg_limiter** limiter);

/* Never blocks, never does I/O. Once the key holds a lease: no allocation, no lock. */
TG_API tg_status tg_try_acquire(tg_decision* out_decision, tg_limiter* limiter, const char* key,
                                size_t key_len, uint64_t cost);

/* Blocks the calling thread up to timeout_ns for tokens. */
TG_API tg_status tg_acquire(tg_decision* out_decision, tg_limiter* limiter, const char* key,
                            size_t key_len, uint64_t cost, int64_t timeout_ns);

/* Called exactly once per tg_acquire_async, with a decision valid only during the call.
   Which thread calls it:
     - the thread calling tg_acquire_async, before it returns, when decided at once
       (then *out_wait_id is 0);
     - the SDK's thread, when tokens arrive or the timeout passes;
     - the thread calling tg_cancel, before tg_cancel returns;
     - the thread calling tg_limiter_destroy (reason TG_REASON_SHUTDOWN).
   It must not block. It may call tg_try_acquire, tg_acquire_async and tg_cancel; it must not
   call tg_acquire or tg_limiter_destroy. */
typedef void (*tg_completion_cb)(const tg_decision* decision, void* user_data);

/* Waits up to timeout_ns for tokens without blocking the caller. *out_wait_id (may be NULL)
   gets the id to cancel with, or 0 when `done` already ran. On a status other than TG_OK,
   `done` is not called. */
TG_API tg_status tg_acquire_async(uint64_t* out_wait_id, tg_limiter* limiter, const char* key,
                                  size_t key_len, uint64_t cost, int64_t timeout_ns,
                                  tg_completion_cb done, void* user_data);

/* Completes the wait with TG_REASON_CANCELLED (its callback runs on this thread).
 *out_cancelled (may be NULL) is 1 when it did, 0 when the wait had already completed. */
TG_API tg_status tg_cancel(int* out_cancelled, tg_limiter* limiter, uint64_t wait_id);

/* ---- Permits (concurrency policies) ------------------------------------------------------- */

typedef struct tg_permit tg_permit;

/* Takes `count` permits without waiting. When admitted, *out_permit owns them (return them
   with tg_permit_destroy); when denied it is NULL. The decision says which. */
TG_API tg_status tg_acquire_permit(tg_permit** out_permit, tg_decision* out_decision,
                                   tg_limiter* limiter, const char* key, size_t key_len,
                                   uint32_t count);

/* Returns the permits and frees the handle; *permit becomes NULL. NULL-safe. A permit may
   outlive its limiter's tg_limiter_destroy (the permits then simply expire). */
TG_API void tg_permit_destroy(tg_permit** permit);

/* ---- Reservations: costs known only afterwards (docs/quotas.md, "Estimated costs") ------- */

typedef struct tg_reservation tg_reservation;

/* What tg_settle did with the actual cost. */
typedef struct tg_settlement {
  tg_reason reason;   /* TG_REASON_OK; TG_REASON_INVALID_ARGUMENT: nothing changed */
  uint64_t charged;   /* tokens charged in all: min(actual, estimate + max_overage) */
  uint64_t refunded;  /* held - actual, back in the key's local balance */
  uint64_t dropped;   /* of the refund, its lease had ended: to the store's bucket instead */
  uint64_t debt;      /* charged beyond held and the balance: the key's debt (TG_REASON_IN_DEBT) */
  uint64_t uncharged; /* actual - estimate - max_overage: reported, not charged */
} tg_settlement;

/* Holds part of `estimate` (the estimate times what the limiter's settles have shown of their
   estimates, at least 1/16 of it; docs/quotas.md) of a token-bucket or window policy until
   tg_settle. timeout_ns <= 0:
   never blocks (decided like tg_try_acquire); > 0: waits up to that long, like tg_acquire.
   When admitted, *out_reservation owns the estimate (settle it with tg_settle, or
   tg_reservation_destroy settles it at the estimate); when denied it is NULL and the
   decision says why. An estimate of 0 or above the policy's capacity is
   TG_REASON_INVALID_ARGUMENT and changes nothing. */
TG_API tg_status tg_reserve(tg_reservation** out_reservation, tg_decision* out_decision,
                            tg_limiter* limiter, const char* key, size_t key_len, uint64_t estimate,
                            int64_t timeout_ns);

/* Called exactly once per tg_reserve_async, from the threads and under the rules of
   tg_completion_cb. When admitted, `reservation` is the callee's to settle and destroy, as
   from tg_reserve; when denied it is NULL and the decision (valid only during the call) says
   why (TG_REASON_TIMEOUT, TG_REASON_CANCELLED, TG_REASON_SHUTDOWN, ...). */
typedef void (*tg_reservation_cb)(tg_reservation* reservation, const tg_decision* decision,
                                  void* user_data);

/* tg_reserve's waiting form without blocking the caller: waits up to timeout_ns for the
   estimate. *out_wait_id (may be NULL) gets the id to cancel with (tg_cancel), or 0 when
   `done` already ran. On a status other than TG_OK, `done` is not called. */
TG_API tg_status tg_reserve_async(uint64_t* out_wait_id, tg_limiter* limiter, const char* key,
                                  size_t key_len, uint64_t estimate, int64_t timeout_ns,
                                  tg_reservation_cb done, void* user_data);

/* Settles the reservation at the actual cost, once: under what it holds the rest goes back to
   the key's local balance; over it the extra (the actual cost at most the estimate plus the
   policy's max_overage) is charged,
   and what the balance lacks is the key's debt, paid first out of its next leases.
   *out_settlement (may be NULL) says what happened. TG_ERR_INVALID_ARGUMENT, changing
   nothing, for a NULL reservation, one already settled, or an actual cost above 2^53. Any
   thread; not for two threads at once on one reservation. The handle stays yours: free it
   with tg_reservation_destroy. */
TG_API tg_status tg_settle(tg_settlement* out_settlement, tg_reservation* reservation,
                           uint64_t actual);

/* Settles at the estimate if tg_settle has not run, frees the handle; *reservation becomes
   NULL. NULL-safe. A reservation may outlive its limiter's tg_limiter_destroy. */
TG_API void tg_reservation_destroy(tg_reservation** reservation);

/* ---- Keys resolved once ------------------------------------------------------------------- */

typedef struct tg_key tg_key;

/* Resolves `key` once, for tg_try_acquire_key: no hashing, no key copy and no table probe per
   call while the key's entry stays in the table (it is found again after an eviction). The
   key is copied. *out_key owns the handle (free it with tg_key_destroy). A tg_key keeps its
   limiter's core alive, like a permit: it may be destroyed before or after tg_limiter_destroy,
   and decisions through it after tg_limiter_destroy spend only what is held locally. An
   invalid key (empty, too long) gives a handle whose decisions are invalid_argument. */
TG_API tg_status tg_key_create(tg_key** out_key, tg_limiter* limiter, const char* key,
                               size_t key_len);

/* Frees the handle; *key becomes NULL. NULL-safe. No call through it may be running. */
TG_API void tg_key_destroy(tg_key** key);

/* tg_try_acquire through a resolved key: never blocks, never does I/O; once the key holds a
   lease, a pointer, an eviction-count check and a CAS. Safe from many threads at once. */
TG_API tg_status tg_try_acquire_key(tg_decision* out_decision, tg_key* key, uint64_t cost);

/* ---- Stats -------------------------------------------------------------------------------- */

#define TG_STATS_VERSION 5
/* The reasons of version 1, which denied[] counts; reasons added since have fields of their
   own at the end, so that the struct only ever grows there. */
#define TG_STATS_DENIED_SLOTS 15
/* Counters since the limiter started. Grows only at the end. What each counter counts is
   declared once in tollgate/stats_list.h (the C++ Stats has the same names); the library's
   build checks that every counter there has its field here, within its version. */
typedef struct tg_stats {
  unsigned int version;
  uint64_t admitted;        /* decisions that admitted */
  uint64_t admitted_tokens; /* their summed cost */
  uint64_t denied_total;
  uint64_t denied[TG_STATS_DENIED_SLOTS]; /* denials by tg_reason, for reasons below 15 */
  uint64_t leases_asked;
  uint64_t leases_granted;
  uint64_t tokens_leased;
  uint64_t tokens_given_back;
  uint64_t tokens_expired;
  uint64_t keys_tracked;
  uint64_t keys_evicted;
  uint64_t bytes_used;
  uint64_t lease_failures;
  uint64_t breaker_transitions; /* all shards */
  uint64_t breakers_opened;     /* transitions to open */
  uint32_t shards;              /* breakers below count these; 0 for the in-process store */
  uint32_t breakers_closed;
  uint32_t breakers_open;
  uint32_t breakers_half_open;
  uint64_t fallback_tokens;  /* tokens the local fallback buckets handed out */
  uint64_t fallback_dropped; /* of which unspent when the shard came back */
  /* version 2 */
  uint64_t denied_over_group_limit; /* denials with TG_REASON_OVER_GROUP_LIMIT */
  /* version 3: the Redis store's own counters */
  uint64_t bulkhead_rejected; /* keys refused at once: their shard's bulkhead was full */
  uint64_t short_circuited;   /* keys failed at once: their shard's circuit breaker was open */
  uint64_t store_retries;     /* lease batches sent again after a transport failure */
  /* version 4: overdue refills; live updates (tg_limiter_update) */
  uint64_t refills_overdue; /* keys whose refill was overdue: they went to the fallback */
  uint64_t config_updates;  /* config updates applied */
  uint64_t config_rejected; /* config updates refused; the running config stayed */
  uint64_t keys_moved;      /* keys moved to another policy by an update */
  uint64_t shadow_admitted; /* denials of shadow policies, admitted anyway */
  /* version 5: reservations (tg_reserve, tg_settle) */
  uint64_t reserved;       /* reservations admitted (also counted in admitted) */
  uint64_t settled_under;  /* reservations settled below their estimate */
  uint64_t settled_over;   /* reservations settled above their estimate */
  uint64_t debt_tokens;    /* tokens over-settles charged beyond the local balance */
  uint64_t denied_in_debt; /* denials with TG_REASON_IN_DEBT */
} tg_stats;
#define TG_STATS_INIT                                                                              \
  {                                                                                                \
    TG_STATS_VERSION, 0, 0, 0, {0}, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, \
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0                                                               \
  }
TG_API tg_status tg_stats_init(tg_stats* stats, unsigned int version);

/* Fills *out_stats, whose `version` the caller has set (TG_STATS_INIT or tg_stats_init). */
TG_API tg_status tg_limiter_stats(tg_stats* out_stats, tg_limiter* limiter);

/* The fields of tg_stats (this library's TG_STATS_VERSION), for bindings that mirror the
   struct and check their mirror: the name of the field at `index` (from 0, in no particular
   order; static storage, never freed) and its byte offset into *out_offset; past the last
   field, NULL and sizeof(tg_stats). `denied` is the array of TG_STATS_DENIED_SLOTS. */
TG_API const char* tg_stats_field(size_t* out_offset, size_t index);

/* Copies each shard's breaker state into out_states (room for `capacity`), and the number of
   shards into *out_count (which may exceed capacity). */
TG_API tg_status tg_limiter_breakers(tg_breaker_state* out_states, size_t capacity,
                                     size_t* out_count, tg_limiter* limiter);

/* ---- Decisions per policy ----------------------------------------------------------------- */

/* Room for the reasons to come, so that tg_policy_stats never changes. */
#define TG_POLICY_STATS_REASONS 32
/* The most policy values a limiter counts under: "other" and 15 names. */
#define TG_POLICY_VALUES_MAX 16
/* The decisions under one value of the tollgate.policy attribute (docs/observability.md,
   "Decisions per policy"): a policy's configured name, or "other" for the policies without a
   name of their own (unset, or equal to their match), the decisions no policy made, and the
   names past the first 15. Never a key. */
typedef struct tg_policy_stats {
  uint64_t admitted;        /* decisions that admitted */
  uint64_t admitted_tokens; /* their summed cost */
  /* denials by tg_reason; [TG_REASON_OK] and the slots past TG_REASON_COUNT are 0 */
  uint64_t denied[TG_POLICY_STATS_REASONS];
} tg_policy_stats;

/* Copies each policy value's decisions into out_stats (room for `capacity`), indexed by the
   value's label, 0 being "other"; the number of values goes to *out_count (which may exceed
   capacity; never above TG_POLICY_VALUES_MAX). A label keeps its name for the limiter's
   life, so a name read once (tg_limiter_policy_name) stays true. The values sum to the
   admitted, admitted_tokens and denied counters of tg_limiter_stats. */
TG_API tg_status tg_limiter_policy_stats(tg_policy_stats* out_stats, size_t capacity,
                                         size_t* out_count, tg_limiter* limiter);

/* The name of the policy value `label`, as snprintf writes (like tg_limiter_prometheus_text:
   its length to *out_length, the name and a NUL to out_name when the length is below
   `capacity`). TG_ERR_INVALID_ARGUMENT for a label the limiter has not given out. */
TG_API tg_status tg_limiter_policy_name(char* out_name, size_t capacity, size_t* out_length,
                                        tg_limiter* limiter, size_t label);

/* ---- Prometheus exposition ---------------------------------------------------------------- */

/* The limiter's metrics in the Prometheus text format 0.0.4 (docs/observability.md), as
   snprintf writes: the text's length without its NUL goes to *out_length, and when it is
   below `capacity` the text and a NUL are written to out_text; otherwise nothing is written
   (call again with *out_length + 1 bytes, or more: the counters may have grown meanwhile).
   out_text may be NULL when capacity is 0. Serve it as
   "text/plain; version=0.0.4; charset=utf-8". */
TG_API tg_status tg_limiter_prometheus_text(char* out_text, size_t capacity, size_t* out_length,
                                            tg_limiter* limiter);

#ifdef __cplusplus
}
#endif

#endif /* TOLLGATE_TOLLGATE_H */
