#include "config/store_sections.h"
#include "facade/store_factory.h"
#include "store/redis/redis_config.h"
#include "store/redis/redis_store.h"

namespace tollgate {

std::shared_ptr<QuotaStore> make_store(const Config& config, std::shared_ptr<const Clock> clock) {
  if (config.store.type == "redis" || config.store.type == "redis_cluster") {
    return std::make_shared<redis::RedisStore>(config.store, std::move(clock));
  }
  return std::make_shared<InProcessStore>(std::move(clock));
}

namespace core {
namespace {

const json::Schema<StoreConfig>& no_fields() {
  static const json::Schema<StoreConfig> s;
  return s;
}

void validate_in_process(const StoreConfig& store) {
  if (!store.shards.empty()) json::fail("store.shards", "only for store type \"redis\"");
  if (!store.nodes.empty()) json::fail("store.nodes", "only for store type \"redis_cluster\"");
}

// The store types' sections, registered with the config when the library loads.
[[maybe_unused]] const bool kStoreSectionsRegistered = [] {
  register_store_section({"in_process", &no_fields, &validate_in_process});
  register_store_section({"redis", &redis::config_fields, &redis::validate_config});
  register_store_section(
      {"redis_cluster", &redis::cluster_config_fields, &redis::validate_cluster_config});
  return true;
}();

}  // namespace
}  // namespace core
}  // namespace tollgate
