#include "core/store_factory.h"
#include "core/store_sections.h"
#include "redis/redis_config.h"
#include "redis/redis_store.h"

namespace tollgate {

std::shared_ptr<QuotaStore> make_store(const Config& config, std::shared_ptr<const Clock> clock) {
  if (config.store.type == "redis") {
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
}

}  // namespace

const std::vector<StoreSection>& store_sections() {
  static const std::vector<StoreSection> s = {
      {"in_process", &no_fields, &validate_in_process},
      {"redis", &redis::config_fields, &redis::validate_config},
  };
  return s;
}

}  // namespace core
}  // namespace tollgate
