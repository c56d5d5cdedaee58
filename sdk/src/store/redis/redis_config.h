// The Redis stores' sections of the config (store.type "redis" and "redis_cluster"): their
// fields and value rules, which the config reads through config/store_sections.h.
#pragma once

#include "config/config_schema.h"
#include "tollgate/config.h"

namespace tollgate::redis {

// shards, connect_timeout_ms, command_timeout_ms, tls_ca_file, breaker, bulkhead,
// wait_replicas, wait_timeout_ms.
const core::json::Schema<StoreConfig>& config_fields();
// Throws ConfigError naming the field (store.shards[1], store.breaker.failure_ratio, ...).
void validate_config(const StoreConfig& store);
// redis_cluster: nodes instead of shards, the other fields the same.
const core::json::Schema<StoreConfig>& cluster_config_fields();
// Throws ConfigError naming the field (store.nodes[0], ...).
void validate_cluster_config(const StoreConfig& store);

}  // namespace tollgate::redis
