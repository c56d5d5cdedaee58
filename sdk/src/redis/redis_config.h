// The redis store's section of the config (store.type "redis"): its fields and its value
// rules, which the config reads through core/store_sections.h.
#pragma once

#include "core/config_schema.h"
#include "tollgate/config.h"

namespace tollgate::redis {

// shards, connect_timeout_ms, command_timeout_ms, tls_ca_file, breaker, bulkhead.
const core::json::Schema<StoreConfig>& config_fields();
// Throws ConfigError naming the field (store.shards[1], store.breaker.failure_ratio, ...).
void validate_config(const StoreConfig& store);

}  // namespace tollgate::redis
