// The Prometheus text exposition (format 0.0.4) of a Limiter's stats, in the one metric
// vocabulary of docs/observability.md.
#pragma once

#include <string>

#include "tollgate/export.h"
#include "tollgate/limiter.h"

namespace tollgate {

// Every metric of the vocabulary, with its # HELP and # TYPE lines: decisions by result and
// reason, lease and token counters (_total), the lease duration histogram by outcome, the
// key table, and each shard's breaker state. No label carries a key or tenant id. One
// limiter's families: a process with several limiters serves one of them per endpoint (or
// adds a target label when scraping). Thread-safe; reads limiter.stats(). Serve it with
// Content-Type "text/plain; version=0.0.4; charset=utf-8".
TOLLGATE_API std::string prometheus_text(const Limiter& limiter);

// The same for stats already read (what prometheus_text(limiter) does with limiter.stats()).
TOLLGATE_API std::string prometheus_text(const Stats& stats);

}  // namespace tollgate
