// The counters of tollgate::Stats, declared once (an X-macro list, as Envoy declares its
// stats). Each entry is X(name, version, help): the field's name in Stats, in tg_stats
// (tollgate.h) and in the Python dict; the tg_stats version whose layout first holds it;
// what it counts. Everything else derives from these lists: Stats and StoreStats, the
// Limiter's atomics, the tg_stats copier and the compile-time checks of its layout, the
// Python dict, and the list of fields the .NET tests compare their mirror against.
//
// A new counter is one line in the list of whoever counts it, with the next tg_stats
// version (and a field of the same name appended to tg_stats; the build says so).
#pragma once

// Counted on the hot path, in per-thread stripes, per policy label (Stats::policies; with
// the denials by reason, tollgate.decisions{tollgate.policy}).
#define TOLLGATE_STATS_DECISIONS(X)         \
  X(admitted, 1, "decisions that admitted") \
  X(admitted_tokens, 1, "their summed cost")

// Counted on the hot path, in per-thread stripes.
#define TOLLGATE_STATS_ADMISSIONS(X)                                                           \
  X(shadow_admitted, 4, "denials of shadow policies, admitted anyway (counted in denied too)") \
  X(reserved, 5, "reservations admitted (Limiter::reserve; also counted in admitted)")         \
  X(settled_under, 5, "reservations settled below their estimate")                             \
  X(settled_over, 5, "reservations settled above their estimate")                              \
  X(debt_tokens, 5, "tokens over-settles charged beyond the local balance, carried as debt")

// Counted by the Limiter's scheduler, one atomic each.
#define TOLLGATE_STATS_SCHEDULER(X)                                                 \
  X(leases_asked, 1, "lease requests sent")                                         \
  X(leases_granted, 1, "lease answers with granted > 0")                            \
  X(tokens_leased, 1, "tokens received in leases")                                  \
  X(tokens_given_back, 1, "unspent tokens given back")                              \
  X(tokens_expired, 1, "leased, unspent, expired before they could go back")        \
  X(keys_evicted, 1, "keys evicted from the key table")                             \
  X(lease_failures, 1, "keys whose lease request failed (shard unavailable)")       \
  X(fallback_tokens, 1, "tokens the local fallback buckets handed out")             \
  X(fallback_dropped, 1, "of which unspent when the shard came back")               \
  X(refills_overdue, 4, "keys whose refill was overdue: they went to the fallback") \
  X(config_updates, 4, "config updates applied (Limiter::update)")                  \
  X(config_rejected, 4, "config updates refused; the running config stayed")        \
  X(keys_moved, 4, "keys moved to another policy by an update (or dropped: none left)")

// Read from their owners when stats() is called: the key table, the breaker relay.
#define TOLLGATE_STATS_READ(X)                                           \
  X(keys_tracked, 1, "keys in the key table now")                        \
  X(bytes_used, 1, "key table, entries, wait queues and timers")         \
  X(breaker_transitions, 1, "circuit breaker state changes, all shards") \
  X(breakers_opened, 1, "of which to open")

// Counted by the store (QuotaStore::stats(); zero for a store that counts none of them).
#define TOLLGATE_STATS_STORE(X)                                                        \
  X(bulkhead_rejected, 3, "keys refused at once: their shard's bulkhead was full")     \
  X(short_circuited, 3, "keys failed at once: their shard's circuit breaker was open") \
  X(store_retries, 3, "lease batches sent again after a transport failure")

// Every counter of Stats.
#define TOLLGATE_STATS_COUNTERS(X) \
  TOLLGATE_STATS_DECISIONS(X)      \
  TOLLGATE_STATS_ADMISSIONS(X)     \
  TOLLGATE_STATS_SCHEDULER(X)      \
  TOLLGATE_STATS_READ(X)           \
  TOLLGATE_STATS_STORE(X)
