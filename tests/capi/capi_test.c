/* The C API from C99: compiled with -std=c99 -pedantic against tollgate.h, linked against
   libtollgate.so, run against the in-process store. Waits are bounded (30 s) but no check
   depends on how long anything takes. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tollgate/tollgate.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    ++checks;                                                                  \
    if (!(cond)) {                                                             \
      ++failures;                                                              \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

static const char* kConfig =
    "{\"policies\": ["
    " {\"match\": \"tenant:*\", \"type\": \"token_bucket\", \"rate\": 0.001, \"burst\": 10},"
    " {\"match\": \"gpu:*\", \"type\": \"concurrency\", \"limit\": 2}],"
    " \"leases\": {\"max_fraction\": 1}}";

/* ---- a completion that records what it was given ---------------------------------------- */

typedef struct completion {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int calls;
  tg_decision decision;
  pthread_t thread;
  tg_reservation* reservation; /* tg_reserve_async: what `done` was given */
} completion;

static void completion_init(completion* c) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
}

static void completion_free(completion* c) {
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
}

static void on_done(const tg_decision* d, void* user_data) {
  completion* c = (completion*)user_data;
  pthread_mutex_lock(&c->mu);
  c->calls++;
  c->decision = *d;
  c->thread = pthread_self();
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void on_reserved(tg_reservation* r, const tg_decision* d, void* user_data) {
  completion* c = (completion*)user_data;
  pthread_mutex_lock(&c->mu);
  c->reservation = r;
  pthread_mutex_unlock(&c->mu);
  on_done(d, user_data);
}

/* Waits until the completion ran (at most 30 s); returns its call count. */
static int completion_wait(completion* c) {
  struct timespec until;
  int calls;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  pthread_mutex_lock(&c->mu);
  while (c->calls == 0 && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0) {
  }
  calls = c->calls;
  pthread_mutex_unlock(&c->mu);
  return calls;
}

/* ---- an observer that counts --------------------------------------------------------------- */

typedef struct observed {
  pthread_mutex_t mu;
  int starts;
  uint64_t max_started_id;
  int ended_unstarted; /* lease ends whose start was not seen first */
  int leases;
  uint64_t tokens_granted;
  int on_caller_thread;
  int after_destroy;
  int destroyed;
  pthread_t caller;
} observed;

static void on_lease_start(const tg_lease_start_event* e, void* user_data) {
  observed* o = (observed*)user_data;
  pthread_mutex_lock(&o->mu);
  o->starts++;
  if (e->id > o->max_started_id) o->max_started_id = e->id;
  if (pthread_equal(pthread_self(), o->caller)) o->on_caller_thread++;
  if (o->destroyed) o->after_destroy++;
  pthread_mutex_unlock(&o->mu);
}

static void on_lease(const tg_lease_event* e, void* user_data) {
  observed* o = (observed*)user_data;
  pthread_mutex_lock(&o->mu);
  o->leases++;
  if (e->id == 0 || e->id > o->max_started_id) o->ended_unstarted++;
  o->tokens_granted += e->tokens_granted;
  if (pthread_equal(pthread_self(), o->caller)) o->on_caller_thread++;
  if (o->destroyed) o->after_destroy++;
  pthread_mutex_unlock(&o->mu);
}

static void on_log(tg_log_level level, const char* message, size_t len, void* user_data) {
  observed* o = (observed*)user_data;
  (void)level;
  (void)message;
  (void)len;
  pthread_mutex_lock(&o->mu);
  if (o->destroyed) o->after_destroy++;
  pthread_mutex_unlock(&o->mu);
}

static tg_limiter* make_limiter(const tg_limiter_options* options) {
  char err[256];
  tg_limiter* l = NULL;
  tg_status s = tg_limiter_create(&l, kConfig, options, err, sizeof err);
  CHECK(s == TG_OK);
  if (s != TG_OK) fprintf(stderr, "create: %s\n", err);
  return l;
}

/* The first lease of a key, through the blocking acquire. */
static void warm(tg_limiter* l, const char* key) {
  tg_decision d;
  CHECK(tg_acquire(&d, l, key, strlen(key), 1, (int64_t)30 * 1000000000) == TG_OK);
  CHECK(d.allowed == 1);
}

/* Spends until a denial gives `reason` (over_limit: the key's global quota; over_group_limit:
   its group's budget), not merely lease_pending (the local lease spent while the refill is on
   its way). Returns that denial; `other` must never be the reason on the way. */
static tg_decision spend_until(tg_limiter* l, const char* key, tg_reason reason, tg_reason other) {
  tg_decision d;
  int tries;
  for (tries = 0; tries < 30000; ++tries) {
    struct timespec ms = {0, 1000000};
    CHECK(tg_try_acquire(&d, l, key, strlen(key), 1) == TG_OK);
    if (!d.allowed && d.reason == reason) return d;
    CHECK(d.allowed || d.reason != other);
    if (!d.allowed) nanosleep(&ms, NULL); /* paces the polling; decides nothing */
  }
  CHECK(!"the quota was not spent within 30 s");
  return d;
}

static void exhaust(tg_limiter* l, const char* key) {
  warm(l, key);
  (void)spend_until(l, key, TG_REASON_OVER_LIMIT, TG_REASON_OVER_GROUP_LIMIT);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_versions(void) {
  CHECK(tg_version_num() == TG_VERSION_NUM);
  CHECK(strcmp(tg_version(), TG_VERSION_STRING) == 0);
  CHECK(strcmp(tg_status_str(TG_ERR_CONFIG), "invalid config") == 0);
  CHECK(strcmp(tg_reason_str(TG_REASON_OVER_LIMIT), "over_limit") == 0);
  CHECK(strcmp(tg_reason_str(TG_REASON_OVER_GROUP_LIMIT), "over_group_limit") == 0);
  CHECK(strcmp(tg_reason_str(TG_REASON_IN_DEBT), "in_debt") == 0);
  CHECK(TG_REASON_COUNT == TG_REASON_IN_DEBT + 1);
  CHECK(strcmp(tg_reason_str((tg_reason)TG_REASON_COUNT), "unknown") == 0);
  CHECK(strcmp(tg_reason_str((tg_reason)99), "unknown") == 0);
}

static void test_create_reports_the_bad_field(void) {
  char err[256];
  char small[8];
  tg_limiter* l = (tg_limiter*)&err; /* must be overwritten with NULL */
  const char* bad =
      "{\"policies\": [{\"match\": \"*\", \"type\": \"token_bucket\", \"rate\": -1}]}";
  CHECK(tg_limiter_create(&l, bad, NULL, err, sizeof err) == TG_ERR_CONFIG);
  CHECK(l == NULL);
  CHECK(strstr(err, "policies[0].rate") != NULL);
  CHECK(tg_config_validate(bad, err, sizeof err) == TG_ERR_CONFIG);
  CHECK(strstr(err, "policies[0].rate") != NULL);
  CHECK(tg_config_validate("{not json", small, sizeof small) == TG_ERR_CONFIG);
  CHECK(strlen(small) == sizeof small - 1); /* truncated, NUL-terminated */
  CHECK(tg_config_validate(kConfig, err, sizeof err) == TG_OK);
  CHECK(err[0] == '\0');
  CHECK(tg_limiter_create(NULL, kConfig, NULL, err, sizeof err) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_limiter_create(&l, NULL, NULL, err, sizeof err) == TG_ERR_INVALID_ARGUMENT);
}

/* The cluster store through the same config JSON: nothing listens on the node, and
 * create neither blocks nor fails (the slot map is read in the background). */
static void test_a_cluster_store_is_configured_by_json(void) {
  char err[256];
  tg_limiter* l = NULL;
  const char* cluster =
      "{\"store\": {\"type\": \"redis_cluster\", \"nodes\": [\"redis://127.0.0.1:1\"],"
      " \"wait_replicas\": 1, \"connect_timeout_ms\": 100},"
      " \"policies\": [{\"match\": \"*\", \"type\": \"token_bucket\", \"rate\": 5}]}";
  const char* no_nodes =
      "{\"store\": {\"type\": \"redis_cluster\"},"
      " \"policies\": [{\"match\": \"*\", \"type\": \"token_bucket\", \"rate\": 5}]}";
  CHECK(tg_config_validate(cluster, err, sizeof err) == TG_OK);
  CHECK(tg_config_validate(no_nodes, err, sizeof err) == TG_ERR_CONFIG);
  CHECK(strstr(err, "store.nodes") != NULL);
  CHECK(tg_limiter_create(&l, cluster, NULL, err, sizeof err) == TG_OK);
  CHECK(l != NULL);
  tg_limiter_destroy(&l);
  CHECK(l == NULL);
}

static void test_options_are_versioned(void) {
  tg_limiter_options o = TG_LIMITER_OPTIONS_INIT;
  tg_limiter_options p;
  char err[128];
  tg_limiter* l = NULL;
  CHECK(o.version == TG_LIMITER_OPTIONS_VERSION);
  CHECK(tg_limiter_options_init(&p, TG_LIMITER_OPTIONS_VERSION) == TG_OK);
  CHECK(p.version == TG_LIMITER_OPTIONS_VERSION && p.on_log == NULL);
  CHECK(tg_limiter_options_init(&p, 99) == TG_ERR_INVALID_ARGUMENT);
  o.version = 99;
  CHECK(tg_limiter_create(&l, kConfig, &o, err, sizeof err) == TG_ERR_INVALID_ARGUMENT);
  CHECK(l == NULL);
}

static void test_destroy_is_null_safe(void) {
  tg_limiter* l = NULL;
  tg_permit* p = NULL;
  tg_limiter_destroy(NULL);
  tg_limiter_destroy(&l);
  tg_permit_destroy(NULL);
  tg_permit_destroy(&p);
  l = make_limiter(NULL);
  tg_limiter_destroy(&l);
  CHECK(l == NULL);
  tg_limiter_destroy(&l); /* a second destroy is a no-op */
}

static void test_try_acquire_admits_within_the_burst(void) {
  tg_limiter* l = make_limiter(NULL);
  tg_decision d;
  int admitted = 1, i;
  CHECK(tg_try_acquire(&d, l, "tenant:a", 8, 1) == TG_OK);
  /* denied cold_key, unless the first lease (asked for by this very call) came first */
  CHECK(d.allowed ? d.reason == TG_REASON_OK : d.reason == TG_REASON_COLD_KEY);
  admitted += d.allowed;
  warm(l, "tenant:a");
  /* burst 10, refilling at one token per 1000 s: at most 10 in all, whatever the timing */
  for (i = 0; i < 50; ++i) {
    CHECK(tg_try_acquire(&d, l, "tenant:a", 8, 1) == TG_OK);
    admitted += d.allowed;
  }
  CHECK(admitted >= 1 && admitted <= 10);
  CHECK(d.allowed == 0);
  CHECK(d.reason == TG_REASON_OVER_LIMIT || d.reason == TG_REASON_LEASE_PENDING);
  /* bad inputs: a status for NULLs, a reason for a bad key or cost */
  CHECK(tg_try_acquire(NULL, l, "tenant:a", 8, 1) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_try_acquire(&d, NULL, "tenant:a", 8, 1) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_try_acquire(&d, l, NULL, 3, 1) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_try_acquire(&d, l, "", 0, 1) == TG_OK && d.reason == TG_REASON_INVALID_ARGUMENT);
  CHECK(tg_try_acquire(&d, l, "tenant:a", 8, 0) == TG_OK && d.reason == TG_REASON_INVALID_ARGUMENT);
  CHECK(tg_try_acquire(&d, l, "other", 5, 1) == TG_OK && d.reason == TG_REASON_NO_POLICY);
  tg_limiter_destroy(&l);
}

static void test_async_completes_once_on_the_sdk_thread(void) {
  tg_limiter* l = make_limiter(NULL);
  completion c;
  uint64_t id = 99;
  completion_init(&c);
  /* A cold key cannot be decided at once: the first lease comes from the SDK's thread. */
  CHECK(tg_acquire_async(&id, l, "tenant:b", 8, 1, (int64_t)30 * 1000000000, on_done, &c) == TG_OK);
  CHECK(completion_wait(&c) == 1);
  CHECK(c.decision.allowed == 1);
  if (id != 0) CHECK(!pthread_equal(c.thread, pthread_self()));
  /* decided at once (invalid cost): inline, id 0 */
  memset(&c.thread, 0, sizeof c.thread);
  c.calls = 0;
  CHECK(tg_acquire_async(&id, l, "tenant:b", 8, 0, 1000, on_done, &c) == TG_OK);
  CHECK(id == 0 && c.calls == 1 && c.decision.reason == TG_REASON_INVALID_ARGUMENT);
  CHECK(pthread_equal(c.thread, pthread_self()));
  CHECK(tg_acquire_async(&id, l, "tenant:b", 8, 1, 1000, NULL, &c) == TG_ERR_INVALID_ARGUMENT);
  tg_limiter_destroy(&l);
  CHECK(c.calls == 1); /* nothing more after destroy */
  completion_free(&c);
}

static void test_cancel_completes_the_wait_with_cancelled(void) {
  tg_limiter* l = make_limiter(NULL);
  completion c;
  uint64_t id = 0;
  int cancelled = -1;
  completion_init(&c);
  exhaust(l, "tenant:c");
  /* the quota is spent for ~1000 s: this wait can only end by cancel */
  CHECK(tg_acquire_async(&id, l, "tenant:c", 8, 1, (int64_t)600 * 1000000000, on_done, &c) ==
        TG_OK);
  CHECK(id != 0);
  CHECK(c.calls == 0);
  CHECK(tg_cancel(&cancelled, l, id) == TG_OK);
  CHECK(cancelled == 1);
  CHECK(c.calls == 1 && c.decision.reason == TG_REASON_CANCELLED && c.decision.allowed == 0);
  CHECK(pthread_equal(c.thread, pthread_self()));
  CHECK(tg_cancel(&cancelled, l, id) == TG_OK && cancelled == 0); /* once only */
  CHECK(tg_cancel(&cancelled, l, 0) == TG_OK && cancelled == 0);
  CHECK(c.calls == 1);
  tg_limiter_destroy(&l);
  completion_free(&c);
}

static void test_destroy_completes_pending_waits_with_shutdown(void) {
  tg_limiter* l = make_limiter(NULL);
  completion c;
  uint64_t id = 0;
  completion_init(&c);
  exhaust(l, "tenant:d");
  CHECK(tg_acquire_async(&id, l, "tenant:d", 8, 1, (int64_t)600 * 1000000000, on_done, &c) ==
        TG_OK);
  CHECK(id != 0);
  tg_limiter_destroy(&l);
  CHECK(c.calls == 1 && c.decision.reason == TG_REASON_SHUTDOWN);
  completion_free(&c);
}

/* Reservations: settle under, at and over the estimate; destroy settles at the estimate and
   nulls the handle; bad estimates and actual costs change nothing. The key's bucket holds 10
   tokens in all (rate 0.001/s). */
static void test_reservations_settle_the_actual_cost(void) {
  tg_limiter* l = make_limiter(NULL);
  tg_reservation* r = NULL;
  tg_settlement s;
  tg_decision d;
  tg_stats st = TG_STATS_INIT;
  CHECK(tg_reserve(&r, &d, l, "tenant:r", 8, 4, 30000000000LL) == TG_OK);
  CHECK(r != NULL && d.allowed == 1);
  CHECK(tg_settle(&s, r, 1) == TG_OK);
  CHECK(s.reason == TG_REASON_OK && s.charged == 1 && s.refunded + s.dropped == 3);
  CHECK(tg_settle(&s, r, 1) == TG_ERR_INVALID_ARGUMENT && s.reason == TG_REASON_INVALID_ARGUMENT);
  tg_reservation_destroy(&r);
  CHECK(r == NULL);
  tg_reservation_destroy(&r); /* NULL-safe */
  tg_reservation_destroy(NULL);
  CHECK(tg_settle(&s, NULL, 1) == TG_ERR_INVALID_ARGUMENT);
  /* bad estimates: no reservation, nothing held */
  CHECK(tg_reserve(&r, &d, l, "tenant:r", 8, 0, 0) == TG_OK);
  CHECK(r == NULL && d.allowed == 0 && d.reason == TG_REASON_INVALID_ARGUMENT);
  CHECK(tg_reserve(&r, &d, l, "tenant:r", 8, 11, 0) == TG_OK);
  CHECK(r == NULL && d.reason == TG_REASON_INVALID_ARGUMENT);
  CHECK(tg_reserve(&r, &d, NULL, "tenant:r", 8, 1, 0) == TG_ERR_INVALID_ARGUMENT && r == NULL);
  /* dropped unsettled: settled at the estimate */
  CHECK(tg_reserve(&r, &d, l, "tenant:r", 8, 2, 30000000000LL) == TG_OK && r != NULL);
  tg_reservation_destroy(&r);
  CHECK(r == NULL);
  /* an actual cost above 2^53 is refused and the reservation stays; over the estimate, the
     extra is charged up to max_overage (the capacity, 10) and what the balance lacks is debt */
  CHECK(tg_reserve(&r, &d, l, "tenant:r", 8, 2, 30000000000LL) == TG_OK && r != NULL);
  CHECK(tg_settle(&s, r, (uint64_t)1 << 60) == TG_ERR_INVALID_ARGUMENT && s.charged == 0);
  CHECK(tg_settle(&s, r, 22) == TG_OK);
  CHECK(s.charged == 12 && s.uncharged == 10 && s.debt >= 2 && s.refunded == 0);
  tg_reservation_destroy(&r);
  CHECK(tg_try_acquire(&d, l, "tenant:r", 8, 1) == TG_OK);
  CHECK(d.allowed == 0 && d.reason == TG_REASON_IN_DEBT && d.retry_after_ns > 0);
  CHECK(strcmp(tg_reason_str(d.reason), "in_debt") == 0);
  CHECK(tg_limiter_stats(&st, l) == TG_OK);
  CHECK(st.reserved == 3 && st.settled_under == 1 && st.settled_over == 1);
  CHECK(st.debt_tokens >= 2 && st.denied_in_debt >= 1);
  tg_limiter_destroy(&l);
}

/* tg_reserve_async: a cold key's reservation arrives from the SDK's thread and is the
   callee's; decided at once it runs inline (id 0); cancelled or shut down, no reservation. */
static void test_reserve_async_hands_over_the_reservation(void) {
  tg_limiter* l = make_limiter(NULL);
  completion c;
  uint64_t id = 99;
  int cancelled = 0;
  tg_settlement s;
  tg_stats st = TG_STATS_INIT;
  completion_init(&c);
  CHECK(tg_reserve_async(&id, l, "tenant:q", 8, 3, (int64_t)30 * 1000000000, on_reserved, &c) ==
        TG_OK);
  CHECK(completion_wait(&c) == 1);
  CHECK(c.decision.allowed == 1 && c.reservation != NULL);
  if (id != 0) CHECK(!pthread_equal(c.thread, pthread_self()));
  CHECK(tg_settle(&s, c.reservation, 1) == TG_OK && s.charged == 1);
  tg_reservation_destroy(&c.reservation);
  /* decided at once (estimate 0): inline, id 0, no reservation */
  c.calls = 0;
  c.reservation = (tg_reservation*)&c; /* must be overwritten */
  CHECK(tg_reserve_async(&id, l, "tenant:q", 8, 0, 1000, on_reserved, &c) == TG_OK);
  CHECK(id == 0 && c.calls == 1 && c.reservation == NULL);
  CHECK(c.decision.reason == TG_REASON_INVALID_ARGUMENT);
  CHECK(tg_reserve_async(&id, l, "tenant:q", 8, 1, 1000, NULL, &c) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_reserve_async(&id, NULL, "tenant:q", 8, 1, 1000, on_reserved, &c) ==
        TG_ERR_INVALID_ARGUMENT);
  /* spent for ~1000 s: the wait ends by cancel, with nothing reserved */
  exhaust(l, "tenant:e");
  c.calls = 0;
  CHECK(tg_reserve_async(&id, l, "tenant:e", 8, 1, (int64_t)600 * 1000000000, on_reserved, &c) ==
        TG_OK);
  CHECK(id != 0 && c.calls == 0);
  CHECK(tg_cancel(&cancelled, l, id) == TG_OK && cancelled == 1);
  CHECK(c.calls == 1 && c.reservation == NULL && c.decision.reason == TG_REASON_CANCELLED);
  /* pending at destroy: shutdown, nothing reserved */
  c.calls = 0;
  CHECK(tg_reserve_async(&id, l, "tenant:e", 8, 1, (int64_t)600 * 1000000000, on_reserved, &c) ==
        TG_OK);
  CHECK(tg_limiter_stats(&st, l) == TG_OK && st.reserved == 1);
  tg_limiter_destroy(&l);
  CHECK(c.calls == 1 && c.reservation == NULL && c.decision.reason == TG_REASON_SHUTDOWN);
  completion_free(&c);
}

static void test_permits_are_bounded_and_return(void) {
  tg_limiter* l = make_limiter(NULL);
  tg_permit* held[8] = {0};
  tg_permit* late = NULL;
  tg_decision d;
  int n = 0, i, tries;
  /* a concurrency key has no blocking acquire: ask until the first lease has arrived */
  for (tries = 0; tries < 30000 && held[0] == NULL; ++tries) {
    struct timespec ms = {0, 1000000};
    CHECK(tg_acquire_permit(&held[0], &d, l, "gpu:x", 5, 1) == TG_OK);
    if (held[0] == NULL) nanosleep(&ms, NULL);
  }
  CHECK(held[0] != NULL && d.allowed == 1);
  n = held[0] != NULL;
  for (i = 1; i < 8; ++i) {
    CHECK(tg_acquire_permit(&held[i], &d, l, "gpu:x", 5, 1) == TG_OK);
    CHECK((held[i] != NULL) == (d.allowed == 1));
    n += held[i] != NULL;
  }
  CHECK(n >= 1 && n <= 2); /* limit 2 */
  for (i = 0; i < 8; ++i) {
    tg_permit_destroy(&held[i]);
    CHECK(held[i] == NULL);
  }
  /* after the returns, a permit is to be had again */
  for (tries = 0; tries < 30000 && late == NULL; ++tries) {
    struct timespec ms = {0, 1000000};
    CHECK(tg_acquire_permit(&late, &d, l, "gpu:x", 5, 1) == TG_OK);
    if (late == NULL) nanosleep(&ms, NULL);
  }
  CHECK(late != NULL);
  /* a permit may outlive its limiter */
  tg_limiter_destroy(&l);
  tg_permit_destroy(&late);
  CHECK(tg_acquire_permit(&late, &d, NULL, "gpu:x", 5, 1) == TG_ERR_INVALID_ARGUMENT);
}

static void test_stats_count_the_decisions(void) {
  tg_limiter* l = make_limiter(NULL);
  tg_stats before = TG_STATS_INIT;
  tg_stats s = TG_STATS_INIT;
  tg_stats bad;
  tg_decision d;
  tg_breaker_state states[4];
  size_t count = 99;
  uint64_t admitted = 0;
  int i;
  CHECK(tg_try_acquire(&d, l, "tenant:e", 8, 1) == TG_OK);
  warm(l, "tenant:e");
  CHECK(tg_limiter_stats(&before, l) == TG_OK);
  for (i = 0; i < 20; ++i) {
    CHECK(tg_try_acquire(&d, l, "tenant:e", 8, 1) == TG_OK);
    admitted += (uint64_t)d.allowed;
  }
  CHECK(tg_limiter_stats(&s, l) == TG_OK);
  CHECK(s.admitted - before.admitted == admitted);
  CHECK(s.admitted_tokens - before.admitted_tokens == admitted);
  CHECK(s.denied_total - before.denied_total == 20 - admitted);
  CHECK(s.leases_granted >= 1 && s.tokens_leased >= s.admitted_tokens);
  CHECK(s.keys_tracked == 1);
  CHECK(s.shards == 0 && s.breakers_open == 0);
  CHECK(tg_limiter_breakers(states, 4, &count, l) == TG_OK && count == 0);
  memset(&bad, 0, sizeof bad);
  CHECK(tg_limiter_stats(&bad, l) == TG_ERR_INVALID_ARGUMENT); /* version 0 */
  bad.version = TG_STATS_VERSION + 1;
  CHECK(tg_limiter_stats(&bad, l) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_stats_init(&bad, TG_STATS_VERSION) == TG_OK && bad.version == TG_STATS_VERSION);
  tg_limiter_destroy(&l);
}

/* tg_limiter_policy_stats / tg_limiter_policy_name: decisions per policy value, "other" at
   label 0 (here: the unnamed override and the key no policy matches), summing to the stats. */
static void test_policy_stats_count_per_policy(void) {
  static const char* config =
      "{\"policies\": ["
      " {\"name\": \"standard\", \"match\": \"tenant:*\", \"type\": \"token_bucket\","
      "  \"rate\": 0.001, \"burst\": 10},"
      " {\"match\": \"tenant:acme\", \"type\": \"token_bucket\", \"rate\": 0.001, \"burst\": 10}],"
      " \"leases\": {\"max_fraction\": 1}}";
  char err[256];
  char name[16];
  tg_limiter* l = NULL;
  tg_stats s = TG_STATS_INIT;
  tg_policy_stats ps[TG_POLICY_VALUES_MAX];
  tg_decision d;
  size_t count = 99, length = 99;
  uint64_t admitted = 0, denied = 0;
  size_t i;
  int r;
  CHECK(tg_limiter_create(&l, config, NULL, err, sizeof err) == TG_OK);
  warm(l, "tenant:e");
  for (i = 0; i < 12; ++i) CHECK(tg_try_acquire(&d, l, "tenant:e", 8, 1) == TG_OK);
  CHECK(tg_try_acquire(&d, l, "tenant:acme", 11, 1) == TG_OK);
  CHECK(tg_try_acquire(&d, l, "nobody", 6, 1) == TG_OK && d.reason == TG_REASON_NO_POLICY);
  CHECK(tg_limiter_policy_stats(ps, TG_POLICY_VALUES_MAX, &count, l) == TG_OK && count == 2);
  CHECK(tg_limiter_stats(&s, l) == TG_OK);
  CHECK(tg_limiter_policy_name(name, sizeof name, &length, l, 0) == TG_OK && length == 5);
  CHECK(strcmp(name, "other") == 0);
  CHECK(tg_limiter_policy_name(name, sizeof name, &length, l, 1) == TG_OK && length == 8);
  CHECK(strcmp(name, "standard") == 0);
  CHECK(tg_limiter_policy_name(name, 4, &length, l, 1) == TG_OK && length == 8); /* too small */
  CHECK(tg_limiter_policy_name(name, sizeof name, &length, l, 2) == TG_ERR_INVALID_ARGUMENT);
  /* every admission is the named policy's: the override's key is still cold */
  CHECK(ps[1].admitted >= 1 && ps[1].admitted == s.admitted);
  CHECK(ps[1].admitted_tokens == s.admitted_tokens);
  CHECK(ps[0].denied[TG_REASON_NO_POLICY] == 1 && ps[0].denied[TG_REASON_COLD_KEY] == 1);
  CHECK(ps[0].admitted == 0 && ps[0].denied[TG_REASON_OK] == 0);
  for (i = 0; i < count; ++i) {
    admitted += ps[i].admitted;
    for (r = 0; r < TG_POLICY_STATS_REASONS; ++r) denied += ps[i].denied[r];
  }
  CHECK(admitted == s.admitted && denied == s.denied_total);
  count = 99;
  CHECK(tg_limiter_policy_stats(NULL, 0, &count, l) == TG_OK && count == 2); /* just count */
  CHECK(tg_limiter_policy_stats(NULL, 1, &count, l) == TG_ERR_INVALID_ARGUMENT && count == 0);
  CHECK(tg_limiter_policy_stats(ps, 1, NULL, l) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_limiter_policy_name(name, sizeof name, &length, NULL, 0) == TG_ERR_INVALID_ARGUMENT);
  tg_limiter_destroy(&l);
}

/* tg_limiter_update: a bad config is refused with the field named and nothing changes; a
   change of store is refused; a good one is counted. NULLs are invalid arguments. */
static void test_update_refuses_a_bad_config_and_counts(void) {
  tg_limiter* l = make_limiter(NULL);
  char err[256];
  tg_stats s = TG_STATS_INIT;
  const char* bad =
      "{\"policies\": [{\"match\": \"tenant:*\", \"type\": \"token_bucket\","
      " \"rate\": -1}]}";
  const char* other_store =
      "{\"store\": {\"type\": \"redis\", \"shards\": [\"redis://127.0.0.1:1\"]},"
      " \"policies\": [{\"match\": \"tenant:*\", \"type\": \"token_bucket\", \"rate\": 5}]}";
  const char* good =
      "{\"policies\": [{\"match\": \"tenant:*\", \"type\": \"token_bucket\","
      " \"rate\": 50, \"burst\": 50}]}";
  CHECK(tg_limiter_update(l, bad, err, sizeof err) == TG_ERR_CONFIG);
  CHECK(strstr(err, "policies[0].rate") != NULL);
  CHECK(tg_limiter_update(l, other_store, err, sizeof err) == TG_ERR_CONFIG);
  CHECK(strncmp(err, "store:", 6) == 0);
  CHECK(tg_limiter_update(l, "{not json", err, sizeof err) == TG_ERR_CONFIG);
  CHECK(tg_limiter_update(l, good, err, sizeof err) == TG_OK);
  CHECK(err[0] == '\0');
  CHECK(tg_limiter_update(NULL, good, err, sizeof err) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_limiter_update(l, NULL, err, sizeof err) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_limiter_stats(&s, l) == TG_OK);
  CHECK(s.config_updates == 1 && s.config_rejected == 3);
  tg_limiter_destroy(&l);
}

/* A group budget (docs/quotas.md) through the C API, in-process store: two tenants with rate
   100 each share a group of rate 10, so spending from one key runs into the group's budget
   (over_group_limit) long before its own rate (over_limit). */
static void test_group_budget_denies_with_over_group_limit(void) {
  static const char* config =
      "{\"groups\": [{\"name\": \"gpu\", \"rate\": 10, \"burst\": 10}],"
      " \"policies\": [{\"match\": \"tenant:*\", \"group\": \"gpu\", \"type\": \"token_bucket\","
      " \"rate\": 100, \"weight\": 2, \"guaranteed_rate\": 1, \"fair_instances\": true}]}";
  static const char* stray_weight =
      "{\"policies\": [{\"match\": \"tenant:*\", \"group\": \"gpu\", \"type\": \"token_bucket\","
      " \"rate\": 100, \"weight\": 2}]}";
  char err[256];
  tg_limiter* l = NULL;
  tg_stats s = TG_STATS_INIT;
  tg_decision d;
  CHECK(tg_config_validate(config, err, sizeof err) == TG_OK);
  CHECK(tg_config_validate(stray_weight, err, sizeof err) == TG_ERR_CONFIG);
  CHECK(strstr(err, "policies[0].weight") != NULL);
  CHECK(tg_limiter_create(&l, config, NULL, err, sizeof err) == TG_OK);
  if (l == NULL) {
    fprintf(stderr, "create: %s\n", err);
    return;
  }
  warm(l, "tenant:g1");
  d = spend_until(l, "tenant:g1", TG_REASON_OVER_GROUP_LIMIT, TG_REASON_OVER_LIMIT);
  CHECK(d.allowed == 0 && d.reason == TG_REASON_OVER_GROUP_LIMIT);
  CHECK(d.retry_after_ns > 0);
  /* the other tenant of the group meets the same spent budget, not its own rate */
  CHECK(tg_acquire(&d, l, "tenant:g2", 9, 1, (int64_t)30 * 1000000000) == TG_OK);
  d = spend_until(l, "tenant:g2", TG_REASON_OVER_GROUP_LIMIT, TG_REASON_OVER_LIMIT);
  CHECK(d.reason == TG_REASON_OVER_GROUP_LIMIT);
  /* counted in its own field at the end (version 2; denied[] keeps version 1's reasons) */
  CHECK(tg_limiter_stats(&s, l) == TG_OK);
  CHECK(s.denied_over_group_limit >= 2);
  CHECK(s.denied[TG_REASON_OVER_LIMIT] == 0);
  CHECK(s.fallback_tokens == 0 && s.fallback_dropped == 0); /* the fields after denied[] */
  /* a caller of version 1 has a struct that ends at fallback_dropped: nothing is written
     past it */
  CHECK(tg_stats_init(&s, 1) == TG_OK);
  s.denied_over_group_limit = 12345;
  CHECK(tg_limiter_stats(&s, l) == TG_OK);
  CHECK(s.denied_total >= 2 && s.denied_over_group_limit == 12345);
  tg_limiter_destroy(&l);
}

static void test_observer_sees_leases_from_the_sdk_thread(void) {
  tg_limiter_options o;
  observed ob;
  tg_limiter* l;
  memset(&ob, 0, sizeof ob);
  pthread_mutex_init(&ob.mu, NULL);
  ob.caller = pthread_self();
  CHECK(tg_limiter_options_init(&o, TG_LIMITER_OPTIONS_VERSION) == TG_OK);
  o.on_lease = on_lease;
  o.on_lease_start = on_lease_start;
  o.on_log = on_log;
  o.min_log_level = TG_LOG_DEBUG;
  o.observer_user_data = &ob;
  l = make_limiter(&o);
  warm(l, "tenant:f");
  tg_limiter_destroy(&l);
  pthread_mutex_lock(&ob.mu);
  ob.destroyed = 1;
  CHECK(ob.leases >= 1);
  CHECK(ob.starts >= ob.leases);
  CHECK(ob.ended_unstarted == 0);
  CHECK(ob.tokens_granted >= 1);
  CHECK(ob.on_caller_thread == 0);
  pthread_mutex_unlock(&ob.mu);
  CHECK(ob.after_destroy == 0);
  pthread_mutex_destroy(&ob.mu);
}

/* A key longer than max_key_length (512 by default) is refused and creates no state, nor
   does a key without a policy; any bytes within the bound are a key of their own. */
static void test_over_long_and_unmatched_keys_create_no_state(void) {
  tg_limiter* l = make_limiter(NULL);
  tg_decision d;
  tg_stats st = TG_STATS_INIT;
  char key[600];
  int i;
  memset(key, 'x', sizeof key);
  memcpy(key, "tenant:", 7);
  CHECK(tg_try_acquire(&d, l, key, 513, 1) == TG_OK && d.reason == TG_REASON_INVALID_ARGUMENT);
  CHECK(tg_acquire(&d, l, key, sizeof key, 1, 0) == TG_OK &&
        d.reason == TG_REASON_INVALID_ARGUMENT);
  for (i = 0; i < 100; ++i) {
    CHECK(tg_try_acquire(&d, l, "nobody", 6, 1) == TG_OK && d.reason == TG_REASON_NO_POLICY);
  }
  CHECK(tg_limiter_stats(&st, l) == TG_OK && st.keys_tracked == 0);
  CHECK(tg_try_acquire(&d, l, "tenant:\0{}\r\n\xff", 14, 1) == TG_OK);
  CHECK(d.reason == TG_REASON_COLD_KEY || d.reason == TG_REASON_OK);
  CHECK(tg_try_acquire(&d, l, key, 512, 1) == TG_OK);
  CHECK(d.reason == TG_REASON_COLD_KEY || d.reason == TG_REASON_OK);
  CHECK(tg_limiter_stats(&st, l) == TG_OK && st.keys_tracked == 2);
  tg_limiter_destroy(&l);
}

/* A resolved key spends from the key's own balance, and outlives its limiter. */
static void test_a_resolved_key_shares_the_keys_quota(void) {
  tg_limiter* l = make_limiter(NULL);
  tg_key* k = NULL;
  tg_key* bad = NULL;
  tg_decision d;
  int admitted = 0, i;
  CHECK(tg_key_create(&k, l, "tenant:k", 8) == TG_OK && k != NULL);
  warm(l, "tenant:k"); /* 1 of the burst of 10, by name */
  /* Through the handle until the key's global quota says over_limit (refills on the way say
     lease_pending: a first lease is an eighth of max_lease). */
  for (i = 0; i < 30000; ++i) {
    struct timespec ms = {0, 1000000};
    CHECK(tg_try_acquire_key(&d, k, 1) == TG_OK);
    admitted += d.allowed;
    if (!d.allowed && d.reason == TG_REASON_OVER_LIMIT) break;
    if (!d.allowed) nanosleep(&ms, NULL);
  }
  CHECK(admitted == 9); /* the same quota as "tenant:k": 10, of which warm() spent 1 */
  CHECK(tg_try_acquire(&d, l, "tenant:k", 8, 1) == TG_OK && d.allowed == 0);
  CHECK(tg_try_acquire_key(NULL, k, 1) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_try_acquire_key(&d, NULL, 1) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_try_acquire_key(&d, k, 0) == TG_OK && d.reason == TG_REASON_INVALID_ARGUMENT);
  CHECK(tg_key_create(NULL, l, "tenant:k", 8) == TG_ERR_INVALID_ARGUMENT);
  CHECK(tg_key_create(&bad, NULL, "tenant:k", 8) == TG_ERR_INVALID_ARGUMENT && bad == NULL);
  CHECK(tg_key_create(&bad, l, "", 0) == TG_OK);
  CHECK(tg_try_acquire_key(&d, bad, 1) == TG_OK && d.reason == TG_REASON_INVALID_ARGUMENT);
  tg_key_destroy(&bad);
  CHECK(bad == NULL);
  tg_limiter_destroy(&l);
  CHECK(tg_try_acquire_key(&d, k, 1) == TG_OK); /* a decision, not a crash (ASan stage) */
  tg_key_destroy(&k);
  CHECK(k == NULL);
  tg_key_destroy(&k);
  tg_key_destroy(NULL);
}

int main(void) {
  test_versions();
  test_create_reports_the_bad_field();
  test_a_cluster_store_is_configured_by_json();
  test_options_are_versioned();
  test_destroy_is_null_safe();
  test_try_acquire_admits_within_the_burst();
  test_async_completes_once_on_the_sdk_thread();
  test_cancel_completes_the_wait_with_cancelled();
  test_destroy_completes_pending_waits_with_shutdown();
  test_permits_are_bounded_and_return();
  test_stats_count_the_decisions();
  test_policy_stats_count_per_policy();
  test_update_refuses_a_bad_config_and_counts();
  test_group_budget_denies_with_over_group_limit();
  test_reservations_settle_the_actual_cost();
  test_reserve_async_hands_over_the_reservation();
  test_observer_sees_leases_from_the_sdk_thread();
  test_over_long_and_unmatched_keys_create_no_state();
  test_a_resolved_key_shares_the_keys_quota();
  printf("capi_test: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
