#include "store/redis/redis_config.h"

#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

#include "config/config_rules.h"
#include "store/redis/shard_url.h"

namespace tollgate::redis {
namespace {

using namespace core::json;

constexpr std::size_t kMaxShards = 1024;

const Schema<BreakerConfig>& breaker_fields() {
  static const Schema<BreakerConfig> s = {
      member("failure_ratio", &BreakerConfig::failure_ratio),
      member("slow_call_rate_threshold", &BreakerConfig::slow_call_rate_threshold),
      millis("slow_call_duration_threshold_ms", &BreakerConfig::slow_call_duration_threshold),
      millis("sampling_duration_ms", &BreakerConfig::sampling_duration),
      member("sliding_window_size", &BreakerConfig::sliding_window_size),
      member("minimum_throughput", &BreakerConfig::minimum_throughput),
      millis("break_duration_ms", &BreakerConfig::break_duration),
      member("permitted_calls_in_half_open", &BreakerConfig::permitted_calls_in_half_open),
  };
  return s;
}

const Schema<BulkheadConfig>& bulkhead_fields() {
  static const Schema<BulkheadConfig> s = {
      member("max_in_flight", &BulkheadConfig::max_in_flight),
      member("max_queue", &BulkheadConfig::max_queue),
  };
  return s;
}

// "shards" or "nodes": an array of URLs.
auto urls(const char* name, std::vector<std::string> StoreConfig::*field) {
  return custom<StoreConfig>(name, [name, field](const Fields& f, StoreConfig& c) {
    if (!f.has(name)) return;
    const Json& arr = f.at(name);
    if (!arr.is_array()) fail(f.path(name), "must be an array of redis:// URLs");
    for (std::size_t i = 0; i < arr.size(); ++i) {
      if (!arr[i].is_string()) fail(indexed(f.path(name), i), "must be a string");
      (c.*field).push_back(arr[i].get<std::string>());
    }
  });
}

// The fields and rules both Redis stores have: TLS, timeouts, breaker, bulkhead, WAIT.
void validate_common(const StoreConfig& store);

}  // namespace

namespace {

// The fields both Redis stores read, after the one that names their servers.
Schema<StoreConfig> redis_fields(SchemaField<StoreConfig> servers) {
  return {
      std::move(servers),
      millis("connect_timeout_ms", &StoreConfig::connect_timeout),
      millis("command_timeout_ms", &StoreConfig::command_timeout),
      member("tls_ca_file", &StoreConfig::tls_ca_file),
      object("breaker", &StoreConfig::breaker, &breaker_fields),
      object("bulkhead", &StoreConfig::bulkhead, &bulkhead_fields),
      member("wait_replicas", &StoreConfig::wait_replicas),
      millis("wait_timeout_ms", &StoreConfig::wait_timeout),
  };
}

}  // namespace

const Schema<StoreConfig>& config_fields() {
  static const Schema<StoreConfig> s = redis_fields(urls("shards", &StoreConfig::shards));
  return s;
}

const Schema<StoreConfig>& cluster_config_fields() {
  static const Schema<StoreConfig> s = redis_fields(urls("nodes", &StoreConfig::nodes));
  return s;
}

void validate_config(const StoreConfig& store) {
  if (store.shards.empty()) fail("store.shards", "at least one redis:// URL");
  if (store.shards.size() > kMaxShards) {
    fail("store.shards", "at most " + std::to_string(kMaxShards) + " shards");
  }
  for (std::size_t i = 0; i < store.shards.size(); ++i) {
    try {
      (void)core::ShardUrl::parse(store.shards[i]);
    } catch (const std::invalid_argument& ex) {
      fail(indexed("store.shards", i), ex.what());  // the message never holds the password
    }
  }
  if (!store.nodes.empty()) fail("store.nodes", "only for store type \"redis_cluster\"");
  validate_common(store);
}

void validate_cluster_config(const StoreConfig& store) {
  if (store.nodes.empty()) fail("store.nodes", "at least one redis:// URL of a cluster node");
  if (store.nodes.size() > kMaxShards) {
    fail("store.nodes", "at most " + std::to_string(kMaxShards) + " nodes");
  }
  for (std::size_t i = 0; i < store.nodes.size(); ++i) {
    int db = 0;
    try {
      db = core::ShardUrl::parse(store.nodes[i]).db;
    } catch (const std::invalid_argument& ex) {
      fail(indexed("store.nodes", i), ex.what());  // the message never holds the password
    }
    if (db != 0) fail(indexed("store.nodes", i), "a cluster has only database 0");
  }
  if (!store.shards.empty()) fail("store.shards", "only for store type \"redis\"");
  validate_common(store);
}

namespace {

void validate_common(const StoreConfig& store) {
  using core::check_duration;
  if (store.wait_replicas > 16) fail("store.wait_replicas", "must be 0 .. 16");
  check_duration("store.wait_timeout_ms", store.wait_timeout, true);
  if (!store.tls_ca_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(store.tls_ca_file, ec)) {
      fail("store.tls_ca_file", "no such file " + in_quotes(store.tls_ca_file));
    }
  }
  const BreakerConfig& b = store.breaker;
  if (!(b.failure_ratio > 0 && b.failure_ratio <= 1)) {
    fail("store.breaker.failure_ratio", "must be > 0 and <= 1");
  }
  if (!(b.slow_call_rate_threshold > 0)) {
    fail("store.breaker.slow_call_rate_threshold", "must be > 0 (above 1: off)");
  }
  check_duration("store.breaker.slow_call_duration_threshold_ms", b.slow_call_duration_threshold,
                 true);
  check_duration("store.breaker.sampling_duration_ms", b.sampling_duration, true);
  check_duration("store.breaker.break_duration_ms", b.break_duration, true);
  if (b.minimum_throughput < 1) fail("store.breaker.minimum_throughput", "must be >= 1");
  if (b.permitted_calls_in_half_open < 1) {
    fail("store.breaker.permitted_calls_in_half_open", "must be >= 1");
  }
  if (store.bulkhead.max_in_flight < 1 || store.bulkhead.max_in_flight > 1'000'000) {
    fail("store.bulkhead.max_in_flight", "must be 1 .. 1000000");
  }
  if (store.bulkhead.max_queue > 10'000'000) {
    fail("store.bulkhead.max_queue", "must be <= 10000000");
  }
  if (b.sliding_window_size > 100'000) {
    fail("store.breaker.sliding_window_size", "must be <= 100000");
  }
  check_duration("store.connect_timeout_ms", store.connect_timeout, true);
  check_duration("store.command_timeout_ms", store.command_timeout, true);
}

}  // namespace

}  // namespace tollgate::redis
